//! The webhook host allow-list (`--webhook-allow-host`), used by [`super::HookQueue`].

/// Most entries in an [`AllowList`].
pub const MAX_ALLOWED_HOSTS: usize = 256;

/// The hosts webhook calls may go to (operator setting `--webhook-allow-host`).
///
/// Empty (the default): any host. The hook URLs come from the application settings and the
/// broadcast records, which only the admin (REST behind the admin gate, or the settings file)
/// can set, so by default every URL the admin sets is called. With entries, a call whose URL's
/// host (and port, if the entry names one) matches none is dropped, logged and counted as
/// `dropped_url`: a leaked admin token then cannot make the server call arbitrary hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<(String, Option<u16>)>);

impl AllowList {
    /// Parses `HOST` or `HOST:PORT` entries (`[v6]:PORT` for an IPv6 address with a port).
    /// Host names compare without case.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        if entries.len() > MAX_ALLOWED_HOSTS {
            return Err(format!(
                "at most {MAX_ALLOWED_HOSTS} webhook hosts may be allowed"
            ));
        }
        let mut out = Vec::new();
        for e in entries {
            let e = e.as_ref();
            let bad = || format!("webhook allow-list entry {e:?} is not HOST or HOST:PORT");
            if e.is_empty()
                || e.len() > 255 + 8
                || e.bytes()
                    .any(|b| b <= b' ' || b == 0x7f || b"/@?#".contains(&b))
            {
                return Err(bad());
            }
            let (host, port) = if let Some(v6) = e.strip_prefix('[') {
                let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
                match tail.strip_prefix(':') {
                    Some(p) => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
                    None if tail.is_empty() => (h, None),
                    None => return Err(bad()),
                }
            } else if e.matches(':').count() == 1 {
                let (h, p) = e.split_once(':').ok_or_else(bad)?;
                (h, Some(p.parse::<u16>().map_err(|_| bad())?))
            } else {
                // A name, an IPv4 address, or a bare IPv6 address (any port).
                (e, None)
            };
            if host.is_empty() || port == Some(0) {
                return Err(bad());
            }
            out.push((host.to_ascii_lowercase(), port));
        }
        Ok(AllowList(out))
    }

    /// No entries: every host is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls to `host:port` are allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|(h, p)| h.eq_ignore_ascii_case(host) && p.is_none_or(|p| p == port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_parses_hosts_and_ports() {
        let a =
            AllowList::parse(&["hooks.example", "10.0.0.7:8080", "[::1]:81", "fe80::2"]).unwrap();
        assert!(a.allows("HOOKS.example", 80));
        assert!(a.allows("hooks.example", 9999));
        assert!(a.allows("10.0.0.7", 8080));
        assert!(!a.allows("10.0.0.7", 80));
        assert!(a.allows("::1", 81));
        assert!(!a.allows("::1", 80));
        assert!(a.allows("fe80::2", 1));
        assert!(!a.allows("evil.example", 80));
        assert!(!a.allows("hooks.example.evil", 80));
        assert!(AllowList::default().allows("anything", 1));
        for bad in [
            "", "h:0", "h:x", "h:70000", "http://h", "h/p", "u@h", "[::1", "[::1]x", " h",
        ] {
            assert!(AllowList::parse(&[bad]).is_err(), "{bad:?}");
        }
        let many = vec!["h"; MAX_ALLOWED_HOSTS + 1];
        assert!(AllowList::parse(&many).is_err());
    }
}
