//! Line edits of SDP text: the one loop behind the offer rewrites (new ICE credentials for a
//! restart in `restart.rs`, a room player's msids here for `multitrack.rs`).

use str0m::media::{MediaKind, Mid};

use super::multitrack::track_name;

/// What becomes of one SDP line.
pub(super) enum Edit {
    /// Kept as it is.
    Keep,
    /// Replaced by this line.
    Replace(String),
    /// Left out.
    Drop,
}

/// Appends `lines` to `out`, each ended by CRLF, as `edit` says.
pub(super) fn edit_lines<'a>(
    out: &mut String,
    lines: impl IntoIterator<Item = &'a str>,
    mut edit: impl FnMut(&str) -> Edit,
) {
    for line in lines {
        match edit(line) {
            Edit::Keep => out.push_str(line),
            Edit::Replace(new) => out.push_str(&new),
            Edit::Drop => continue,
        }
        out.push_str("\r\n");
    }
}

/// Sets each m-section's msid (`a=msid:` and `a=ssrc:<n> msid:`) to its subtrack's names.
///
/// str0m fixes an m-line's msid when the m-line is added; a reused m-line must announce the
/// subtrack it carries now. Only the offer's text changes: str0m does not read its own msids.
pub(super) fn rewrite_msids(sdp: &str, names: &[(Mid, String)]) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(sec) = sections.last_mut() {
            sec.push(line);
        }
    }
    for sec in &sections {
        let kind = sec.first().and_then(|l| {
            if l.starts_with("m=audio") {
                Some(MediaKind::Audio)
            } else if l.starts_with("m=video") {
                Some(MediaKind::Video)
            } else {
                None
            }
        });
        let name = sec
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .and_then(|mid| names.iter().find(|(m, _)| m.to_string() == mid))
            .map(|(_, n)| n.as_str());
        let msid = match (kind, name) {
            (Some(k), Some(n)) => format!("{n} {}", track_name(k, n)),
            _ => {
                edit_lines(&mut out, sec.iter().copied(), |_| Edit::Keep);
                continue;
            }
        };
        edit_lines(&mut out, sec.iter().copied(), |line| {
            if line.starts_with("a=msid:") {
                Edit::Replace(format!("a=msid:{msid}"))
            } else if let Some((head, _)) = line
                .strip_prefix("a=ssrc:")
                .and_then(|rest| rest.split_once(" msid:"))
            {
                Edit::Replace(format!("a=ssrc:{head} msid:{msid}"))
            } else {
                Edit::Keep
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msids_follow_the_names() {
        let sdp = "v=0\r\na=msid-semantic: WMS old\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:old ARDAMSaold\r\n\
                   a=ssrc:11 cname:x\r\na=ssrc:11 msid:old ARDAMSaold\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:old ARDAMSvold\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";
        let names = vec![(Mid::from("0"), "bob".to_string())];
        let out = rewrite_msids(sdp, &names);
        assert!(
            out.contains("a=mid:0\r\na=msid:bob ARDAMSabob\r\n"),
            "{out}"
        );
        assert!(out.contains("a=ssrc:11 cname:x\r\na=ssrc:11 msid:bob ARDAMSabob\r\n"));
        // Unnamed sections and the session part are untouched.
        assert!(
            out.contains("a=mid:1\r\na=msid:old ARDAMSvold\r\n"),
            "{out}"
        );
        assert!(out.starts_with("v=0\r\na=msid-semantic: WMS old\r\n"));
        assert!(out.ends_with("a=mid:2\r\n"));
    }

    #[test]
    fn kept_replaced_and_dropped_lines_end_with_crlf() {
        let mut out = String::from("v=0\r\n");
        edit_lines(&mut out, ["a=x", "a=y", "a=z"], |l| match l {
            "a=x" => Edit::Keep,
            "a=y" => Edit::Replace("a=Y".into()),
            _ => Edit::Drop,
        });
        assert_eq!(out, "v=0\r\na=x\r\na=Y\r\n");
    }
}
