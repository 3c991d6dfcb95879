//! Process CPU time and resident memory from `/proc` (Linux).

use std::time::Duration;

/// `USER_HZ` (100 on every Linux ABI in use).
const TICKS_PER_SEC: u64 = 100;

/// User + system CPU time of process `pid` (`None` = this process), summed over its threads.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    parse_cpu(&stat)
}

/// Parses `utime + stime` out of a `/proc/<pid>/stat` line.
pub fn parse_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may contain spaces: fields after it follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SEC,
    ))
}

/// Time the main thread of process `pid` spent runnable but waiting for a CPU (the second
/// field of `/proc/<pid>/schedstat`, ns). Over a hold, a server that drops datagrams while
/// its CPU is well below a core either stalls itself (this stays near zero) or was not given
/// the CPU (this is large: another process had its core).
pub fn run_queue_wait(pid: u32) -> Option<Duration> {
    parse_schedstat(&std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?)
}

/// The run-queue wait out of a `schedstat` line (`<run ns> <wait ns> <slices>`).
pub fn parse_schedstat(line: &str) -> Option<Duration> {
    let wait: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(wait))
}

/// Resident set size of process `pid` (`None` = this process) in KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Datagrams the kernel dropped because a UDP socket's receive buffer was full (the `drops`
/// column of `/proc/net/udp` and `/proc/net/udp6`, this network namespace), split into the
/// sockets of process `pid` and all others: `(pid's sockets, others)`. Counters of closed
/// sockets vanish, so compare two readings only across a time both sets of sockets lived.
pub fn udp_drops(pid: u32) -> Option<(u64, u64)> {
    let mut inodes = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if let Ok(link) = std::fs::read_link(e.path()) {
            let l = link.to_string_lossy();
            if let Some(n) = l
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
            {
                inodes.push(n);
            }
        }
    }
    inodes.sort_unstable();
    let mut table = std::fs::read_to_string("/proc/net/udp").ok()?;
    table.push_str(&std::fs::read_to_string("/proc/net/udp6").unwrap_or_default());
    Some(split_udp_drops(&table, &inodes))
}

/// Sums the `drops` column of `/proc/net/udp` text: `(rows whose inode is in the sorted
/// `inodes`, other rows)`. Header and malformed lines are skipped.
pub fn split_udp_drops(table: &str, inodes: &[u64]) -> (u64, u64) {
    let (mut mine, mut others) = (0, 0);
    for line in table.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        let (Some(inode), Some(drops)) = (
            f.get(9).and_then(|v| v.parse::<u64>().ok()),
            f.get(12).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if inodes.binary_search(&inode).is_ok() {
            mine += drops;
        } else {
            others += drops;
        }
    }
    (mine, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_udp_drops_by_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:C350 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5001 2 0000000000000000 76987
  124: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5002 2 0000000000000000 10
  125: 0100007F:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5003 2 0000000000000000 5
  garbage line
";
        assert_eq!(split_udp_drops(table, &[5001]), (76987, 15));
        assert_eq!(split_udp_drops(table, &[5002, 5003]), (15, 76987));
        assert_eq!(split_udp_drops(table, &[]), (0, 77002));
    }

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let line =
            "1234 (my prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_cpu(line), Some(Duration::from_millis(3000)));
    }

    #[test]
    fn parses_schedstat_wait() {
        assert_eq!(
            parse_schedstat("5170591563 2500000000 12345\n"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_schedstat("17"), None);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(cpu_time(None).is_some());
        assert!(run_queue_wait(std::process::id()).is_some());
        assert!(rss_kib(None).is_some_and(|k| k > 0));
    }
}
