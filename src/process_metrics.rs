//! Process metrics for /metrics, read from `/proc/self` at scrape time (Linux): CPU seconds,
//! resident and virtual memory, open file descriptors, start time — the standard
//! `process_*` names Prometheus client libraries use, so stock dashboards and the load
//! generator's CPU/RSS report work. Elsewhere the gauges are simply not updated.
//! Reading procfs is a few small in-memory reads; the handler runs it on the blocking pool.

/// Process figures at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub vsize_bytes: u64,
    pub open_fds: u64,
    pub start_time_seconds: f64,
}

/// Clock ticks per second for `/proc/*/stat` times (USER_HZ, 100 on every mainstream Linux).
const TICKS_PER_SEC: f64 = 100.0;
const PAGE_SIZE: u64 = 4096;

/// Read `/proc/{pid}/stat` (or `self`); `None` where procfs is unavailable.
pub fn read(pid: Option<u32>) -> Option<ProcessStats> {
    let base = pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"));
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // After ')': state=0, utime=11, stime=12, starttime=19, vsize=20, rss=21 (pages).
    let cpu_seconds = (num(11) + num(12)) as f64 / TICKS_PER_SEC;
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let open_fds = std::fs::read_dir(format!("{base}/fd")).map_or(0, |d| d.count() as u64);
    Some(ProcessStats {
        cpu_seconds,
        rss_bytes: num(21) * PAGE_SIZE,
        vsize_bytes: num(20),
        open_fds,
        start_time_seconds: boot_time.unwrap_or(0.0) + num(19) as f64 / TICKS_PER_SEC,
    })
}

/// Append the process metrics in Prometheus text format (as the Go/Python clients name them).
pub fn render(out: &mut String) {
    use std::fmt::Write;
    let Some(s) = read(None) else { return };
    let rows: [(&str, &str, &str, f64); 5] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            s.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            s.rss_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            s.vsize_bytes as f64,
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            s.open_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            s.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in rows {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let Some(s) = read(None) else { return };
        assert!(s.rss_bytes > 1_000_000, "{s:?}");
        assert!(s.open_fds >= 3);
        assert!(s.start_time_seconds > 1.6e9);
        let burn: u64 = (0..20_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(burn > 0);
        let later = read(None).unwrap_or_default();
        assert!(later.cpu_seconds >= s.cpu_seconds);
    }
}
