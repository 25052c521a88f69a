//! The standard `process_*` metrics (what the official Prometheus clients export and dashboards expect): CPU
//! seconds, resident and virtual memory, open and maximum file descriptors, threads and start time. Read from
//! `/proc/self` at each scrape; on other systems nothing is exported.
//!
//! Only `/proc/self` is read, never `/proc/stat` or `/proc/uptime`: the systemd unit's `ProcSubset=pid` hides those.
//! The start time is therefore the wall clock minus the process's age on `CLOCK_BOOTTIME` (the clock of
//! `/proc/self/stat`'s `starttime` since Linux 4.17).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug, Default)]
pub struct ProcessCollector {
    start_time: std::sync::OnceLock<Option<f64>>,
}

/// The fields of `/proc/self/stat` this collector uses, in the units they are exported in.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcStat {
    pub cpu_seconds: f64,
    pub threads: i64,
    /// Seconds after boot (on `CLOCK_BOOTTIME`) at which the process started.
    pub started_after_boot: f64,
    pub virtual_bytes: i64,
    pub resident_bytes: i64,
}

/// Parses `/proc/self/stat` (proc(5)). The command name (field 2) is in parentheses and may contain spaces and
/// parentheses itself, so fields are counted from the last `)`. `None` for text that is not in that shape.
pub fn parse_stat(text: &str, ticks_per_second: f64, page_size: i64) -> Option<ProcStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    // Fields from 3 (state) on; field N is at index N - 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let number = |n: usize| field(n)?.parse::<i64>().ok();
    let utime = number(14)? as f64;
    let stime = number(15)? as f64;
    Some(ProcStat {
        cpu_seconds: (utime + stime) / ticks_per_second,
        threads: number(20)?,
        started_after_boot: number(22)? as f64 / ticks_per_second,
        virtual_bytes: number(23)?,
        resident_bytes: number(24)?.saturating_mul(page_size),
    })
}

#[cfg(target_os = "linux")]
mod os {
    pub fn ticks_per_second() -> f64 {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 { ticks as f64 } else { 100.0 }
    }

    pub fn page_size() -> i64 {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 { size as i64 } else { 4096 }
    }

    pub fn max_fds() -> Option<i64> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the valid struct it is given.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as i64)
    }

    pub fn open_fds() -> Option<i64> {
        // One entry is the directory handle read_dir itself holds open.
        let count = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        Some((count - 1).max(0))
    }

    fn clock(id: libc::clockid_t) -> Option<f64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the valid struct it is given.
        let ok = unsafe { libc::clock_gettime(id, &mut ts) } == 0;
        ok.then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    }

    /// Unix time at which a process that started `started_after_boot` seconds after boot started.
    pub fn start_time(started_after_boot: f64) -> Option<f64> {
        let now = clock(libc::CLOCK_REALTIME)?;
        let since_boot = clock(libc::CLOCK_BOOTTIME)?;
        Some((now - (since_boot - started_after_boot)).round())
    }

    pub fn stat() -> Option<super::ProcStat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        super::parse_stat(&text, ticks_per_second(), page_size())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    let metric_encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(metric_encoder)
}

impl Collector for ProcessCollector {
    #[cfg(target_os = "linux")]
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(stat) = os::stat() {
            let cpu = ConstCounter::new(stat.cpu_seconds);
            let metric_encoder = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?;
            cpu.encode(metric_encoder)?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                stat.resident_bytes as f64,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                stat.virtual_bytes as f64,
            )?;
            gauge(
                &mut encoder,
                "process_threads",
                "Number of OS threads in the process",
                stat.threads as f64,
            )?;
            let started = *self
                .start_time
                .get_or_init(|| os::start_time(stat.started_after_boot));
            if let Some(started) = started {
                gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds",
                    started,
                )?;
            }
        }
        if let Some(open) = os::open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                open as f64,
            )?;
        }
        if let Some(max) = os::max_fds() {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                max as f64,
            )?;
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_name_parses() {
        let line = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 50 0 0 20 0 7 0 12345 \
                    104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_stat(line, 100.0, 4096).expect("parses");
        assert_eq!(
            stat,
            ProcStat {
                cpu_seconds: 3.0,
                threads: 7,
                started_after_boot: 123.45,
                virtual_bytes: 104_857_600,
                resident_bytes: 2560 * 4096,
            }
        );
    }

    #[test]
    fn a_truncated_or_garbled_stat_line_is_none_not_a_panic() {
        for text in [
            "",
            "1 (x",
            "1 (x) S 1 2",
            "1 (x) S a b c d e f g h i j k l m n o p q r s t u v",
        ] {
            assert_eq!(parse_stat(text, 100.0, 4096), None, "{text:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reports_plausible_values() {
        let stat = os::stat().expect("/proc/self/stat");
        assert!(stat.resident_bytes > 0 && stat.threads >= 1);
        let started = os::start_time(stat.started_after_boot).expect("start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
        assert!(os::open_fds().is_some_and(|n| n >= 3));
    }
}
