//! The process's own figures, read from `/proc/self` (Linux; elsewhere they read as zero): CPU time, resident
//! memory and open files. CPU use is the CPU time spent between two readings over the wall time between them.

use std::time::Instant;

/// Clock ticks per second of `/proc/self/stat` times: 100 on every Linux build this runs on.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_BYTES: i64 = 4096;

/// The last CPU reading, to measure the next one against.
#[derive(Debug)]
pub struct CpuReading {
    at: Instant,
    ticks: u64,
}

impl CpuReading {
    pub fn now() -> CpuReading {
        CpuReading {
            at: Instant::now(),
            ticks: cpu_ticks().unwrap_or(0),
        }
    }

    /// CPU use since `self` in percent of one core (two busy cores read 200), and the new reading.
    pub fn percent_since(&self) -> (f64, CpuReading) {
        let next = CpuReading::now();
        let wall = next.at.duration_since(self.at).as_secs_f64();
        let busy = next.ticks.saturating_sub(self.ticks) as f64 / TICKS_PER_SECOND;
        let percent = if wall > 0.0 { busy / wall * 100.0 } else { 0.0 };
        (percent, next)
    }
}

/// User plus system CPU ticks of this process.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory in bytes.
pub fn resident_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map_or(0, |pages| pages * PAGE_BYTES)
}

/// Open file descriptors (sockets included).
pub fn open_files() -> i64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64)
}

/// This process's name among instances: host and process id.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_its_own_figures() {
        assert!(cpu_ticks().is_some());
        assert!(resident_bytes() > 0);
        assert!(open_files() > 0);
        let (percent, _) = CpuReading::now().percent_since();
        assert!(percent >= 0.0);
    }
}
