//! This process's own resource use, read from `/proc` (Linux). Used by `sync --report-json`
//! so the benchmark can measure the sync process alone, without the emulator.

use serde::{Deserialize, Serialize};

/// Peak resident set size and CPU time of this process so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcStats {
    /// `VmHWM`: the peak resident set size, in KiB. 0 when unknown.
    pub peak_rss_kib: u64,
    /// User + system CPU time of every thread, in milliseconds. 0 when unknown.
    pub cpu_ms: u64,
}

/// Clock ticks per second of `/proc/*/stat` (`USER_HZ`): 100 on every Linux architecture we
/// build for.
const USER_HZ: u64 = 100;

/// Read the current process's stats; fields that cannot be read are 0.
pub fn current() -> ProcStats {
    ProcStats {
        peak_rss_kib: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_vm_hwm(&s))
            .unwrap_or(0),
        cpu_ms: std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_cpu_ticks(&s))
            .map_or(0, |ticks| ticks * 1000 / USER_HZ),
    }
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// utime + stime (fields 14 and 15). The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t  4242 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(4242));
        let stat = "1234 (my (odd) prog) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = current();
        if cfg!(target_os = "linux") {
            assert!(s.peak_rss_kib > 0);
        }
    }
}
