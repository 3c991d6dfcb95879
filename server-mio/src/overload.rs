//! Process CPU overload detection (AMS's `highResourceUsage`: CPU over `server.cpu_limit`,
//! 75 % by default).
//!
//! [`CpuMonitor`] is pure: the runtime reads the process CPU time (see [`read_process_cpu`])
//! every [`CHECK_INTERVAL`] and feeds it in. The first interval after start-up is only a
//! baseline (start-up work such as key generation must not mark the server overloaded), and a
//! hysteresis band ([`HYSTERESIS_POINTS`] below the limit) keeps the state from flapping
//! around the limit. A [`CpuLimit`] of 0 or 100 % and above turns admission control off.

use std::time::{Duration, Instant};

/// How often the runtime samples the CPU time.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// AMS's default CPU limit, in percent of one core (the loop is one thread).
pub const DEFAULT_CPU_LIMIT: u32 = 75;
/// Back to normal at or below the limit minus this many percentage points.
pub const HYSTERESIS_POINTS: u32 = 10;

/// The CPU share above which new publishers and players are refused with
/// `highResourceUsage`, or none (admission control off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLimit(Option<u32>);

impl CpuLimit {
    /// Admission control off: never overloaded.
    pub const OFF: CpuLimit = CpuLimit(None);

    /// A limit in percent of one core; 0 and 100 or more turn admission control off (one
    /// thread cannot use more than a core, so such a limit would never be reached).
    pub fn from_percent(percent: u32) -> CpuLimit {
        if percent == 0 || percent >= 100 {
            CpuLimit::OFF
        } else {
            CpuLimit(Some(percent))
        }
    }

    /// The limit in percent, or `None` when admission control is off.
    pub fn percent(self) -> Option<u32> {
        self.0
    }

    /// For logs: `75%` or `off`.
    pub fn describe(self) -> String {
        match self.0 {
            Some(p) => format!("{p}%"),
            None => "off".to_string(),
        }
    }
}

impl Default for CpuLimit {
    fn default() -> CpuLimit {
        CpuLimit::from_percent(DEFAULT_CPU_LIMIT)
    }
}

/// Linux `USER_HZ`: the unit of `utime`/`stime` in `/proc/self/stat` (100 on every Linux ABI
/// in use; `sysconf` would need `unsafe`).
const CLOCK_TICKS_PER_SEC: u64 = 100;

/// Turns CPU-time samples into overload transitions.
#[derive(Debug, Clone, Default)]
pub struct CpuMonitor {
    limit: CpuLimit,
    last: Option<(Instant, Duration)>,
    overloaded: bool,
}

impl CpuMonitor {
    /// A monitor with the default limit ([`DEFAULT_CPU_LIMIT`]), in the normal state with no
    /// baseline.
    pub fn new() -> Self {
        CpuMonitor::default()
    }

    /// A monitor with `limit`, in the normal state with no baseline.
    pub fn with_limit(limit: CpuLimit) -> Self {
        CpuMonitor {
            limit,
            ..CpuMonitor::default()
        }
    }

    /// The limit.
    pub fn limit(&self) -> CpuLimit {
        self.limit
    }

    /// Whether the last transition was into overload.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// Feeds the process CPU time `cpu` measured at `now`. Returns the new state when it changes.
    /// The first sample only sets the baseline. With the limit off, nothing ever changes.
    pub fn sample(&mut self, now: Instant, cpu: Duration) -> Option<bool> {
        let limit = f64::from(self.limit.percent()?) / 100.0;
        let normal = f64::from(self.limit.percent()?.saturating_sub(HYSTERESIS_POINTS)) / 100.0;
        let prev = self.last.replace((now, cpu));
        let (then, cpu_then) = prev?;
        let wall = now.checked_duration_since(then)?;
        if wall.is_zero() {
            return None;
        }
        let share = cpu.saturating_sub(cpu_then).as_secs_f64() / wall.as_secs_f64();
        let next = if self.overloaded {
            share > normal
        } else {
            share > limit
        };
        (next != self.overloaded).then(|| {
            self.overloaded = next;
            next
        })
    }

    /// The current state as a word, for logs.
    pub fn describe(&self) -> &'static str {
        if self.overloaded {
            "overloaded"
        } else {
            "normal"
        }
    }
}

/// Parses `utime + stime` out of the text of `/proc/<pid>/stat`.
pub fn parse_proc_stat(text: &str) -> Option<Duration> {
    // Field 2 (comm) is in parentheses and may contain spaces or ')': split after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_ascii_whitespace();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(
        ticks.checked_mul(1000 / CLOCK_TICKS_PER_SEC)?,
    ))
}

/// This process's CPU time (user + system), from `/proc/self/stat`. `None` off Linux or on
/// a read error.
pub fn read_process_cpu() -> Option<Duration> {
    parse_proc_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one base instant; the tests add durations to it
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_comm() {
        let line = "1234 (we ird) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0 \
                    100 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(parse_proc_stat(line), Some(Duration::from_millis(3000)));
        assert_eq!(parse_proc_stat("garbage"), None);
        assert_eq!(parse_proc_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn reads_own_cpu_time() {
        if cfg!(target_os = "linux") {
            assert!(read_process_cpu().is_some());
        }
    }

    #[test]
    fn first_sample_is_only_a_baseline() {
        let t0 = Instant::now();
        let mut m = CpuMonitor::new();
        // Start-up burned lots of CPU before the first sample: no transition.
        assert_eq!(m.sample(t0, Duration::from_secs(30)), None);
        assert!(!m.is_overloaded());
    }

    #[test]
    fn transitions_with_hysteresis() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + CHECK_INTERVAL * n as u32;
        let mut m = CpuMonitor::new();
        let mut cpu = Duration::ZERO;
        assert_eq!(m.sample(s(0), cpu), None);
        // 50 %: normal.
        cpu += CHECK_INTERVAL / 2;
        assert_eq!(m.sample(s(1), cpu), None);
        // 90 %: overloaded.
        cpu += CHECK_INTERVAL * 9 / 10;
        assert_eq!(m.sample(s(2), cpu), Some(true));
        assert_eq!(m.describe(), "overloaded");
        // 70 %: still overloaded (inside the band).
        cpu += CHECK_INTERVAL * 7 / 10;
        assert_eq!(m.sample(s(3), cpu), None);
        assert!(m.is_overloaded());
        // 10 %: back.
        cpu += CHECK_INTERVAL / 10;
        assert_eq!(m.sample(s(4), cpu), Some(false));
        // 70 %: not enough to enter.
        cpu += CHECK_INTERVAL * 7 / 10;
        assert_eq!(m.sample(s(5), cpu), None);
    }

    #[test]
    fn limit_is_configurable() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + CHECK_INTERVAL * n as u32;
        let mut m = CpuMonitor::with_limit(CpuLimit::from_percent(90));
        assert_eq!(m.limit().percent(), Some(90));
        let mut cpu = Duration::ZERO;
        assert_eq!(m.sample(s(0), cpu), None);
        // 85 %: over the default limit, not over 90.
        cpu += CHECK_INTERVAL * 85 / 100;
        assert_eq!(m.sample(s(1), cpu), None);
        // 95 %: overloaded.
        cpu += CHECK_INTERVAL * 95 / 100;
        assert_eq!(m.sample(s(2), cpu), Some(true));
        // 85 %: inside the band (80-90), still overloaded.
        cpu += CHECK_INTERVAL * 85 / 100;
        assert_eq!(m.sample(s(3), cpu), None);
        // 80 %: back.
        cpu += CHECK_INTERVAL * 80 / 100;
        assert_eq!(m.sample(s(4), cpu), Some(false));
        // A limit under the hysteresis band leaves at 0 %.
        let mut m = CpuMonitor::with_limit(CpuLimit::from_percent(5));
        let mut cpu = Duration::ZERO;
        assert_eq!(m.sample(s(0), cpu), None);
        cpu += CHECK_INTERVAL / 10;
        assert_eq!(m.sample(s(1), cpu), Some(true));
        cpu += CHECK_INTERVAL / 100;
        assert_eq!(m.sample(s(2), cpu), None);
        assert_eq!(m.sample(s(3), cpu), Some(false));
    }

    #[test]
    fn zero_or_full_limit_turns_admission_control_off() {
        assert_eq!(CpuLimit::default().percent(), Some(DEFAULT_CPU_LIMIT));
        assert_eq!(CpuLimit::from_percent(1).percent(), Some(1));
        assert_eq!(CpuLimit::from_percent(99).percent(), Some(99));
        for off in [0, 100, 250] {
            assert_eq!(CpuLimit::from_percent(off), CpuLimit::OFF, "{off}");
        }
        assert_eq!(CpuLimit::OFF.describe(), "off");
        assert_eq!(CpuLimit::from_percent(75).describe(), "75%");
        let t0 = Instant::now();
        let mut m = CpuMonitor::with_limit(CpuLimit::from_percent(0));
        let mut cpu = Duration::ZERO;
        for n in 0..5u32 {
            // A full core (and more: other threads) every interval: never overloaded.
            cpu += CHECK_INTERVAL * 2;
            assert_eq!(m.sample(t0 + CHECK_INTERVAL * n, cpu), None);
        }
        assert!(!m.is_overloaded());
    }

    #[test]
    fn zero_interval_is_ignored() {
        let t0 = Instant::now();
        let mut m = CpuMonitor::new();
        assert_eq!(m.sample(t0, Duration::ZERO), None);
        assert_eq!(m.sample(t0, Duration::from_secs(5)), None);
        assert!(!m.is_overloaded());
    }
}
