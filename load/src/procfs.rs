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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let line =
            "1234 (my prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_cpu(line), Some(Duration::from_millis(3000)));
    }

    #[test]
    fn own_process_is_readable() {
        assert!(cpu_time(None).is_some());
        assert!(rss_kib(None).is_some_and(|k| k > 0));
    }
}
