//! What every report records about the machine it ran on.

use std::{path::Path, process::Command};

use serde::Serialize;

/// The machine and the build, as measured at the start of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Env {
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    /// The CPU the measuring thread was pinned to.
    pub pinned_cpu: usize,
    /// `/proc/loadavg` (1, 5, 15 minutes) at the start and at the end of the run.
    pub load_start: String,
    pub load_end: String,
    pub bpf_jit_enable: String,
    pub bpf_jit_harden: String,
    pub bpf_stats_enabled: String,
    pub spectre_v2: String,
    pub mem_total_mb: u64,
    pub mem_available_mb: u64,
    /// UTC, RFC 3339.
    pub date: String,
    pub commit: String,
    pub rustc: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

/// The 1/5/15-minute load average.
pub fn loadavg() -> String {
    read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A field of /proc/meminfo, in MiB.
pub fn meminfo_mb(field: &str) -> u64 {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// A field of /proc/self/status, in MiB.
pub fn status_mb(field: &str) -> u64 {
    read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit of the workspace, with `-dirty` when it has uncommitted changes.
fn commit(root: &Path) -> String {
    let Some(head) = output(Command::new("git").arg("-C").arg(root).args(["rev-parse", "--short=12", "HEAD"])) else {
        return "unknown".into();
    };
    let dirty = output(Command::new("git").arg("-C").arg(root).args(["status", "--porcelain", "--untracked-files=no"]))
        .is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

impl Env {
    pub fn capture(root: &Path, pinned_cpu: usize) -> Env {
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)).map(|m| m.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        Env {
            kernel: read("/proc/sys/kernel/osrelease"),
            cpu_model,
            cpus: crate::sys::ncpus(),
            pinned_cpu,
            load_start: loadavg(),
            load_end: String::new(),
            bpf_jit_enable: read("/proc/sys/net/core/bpf_jit_enable"),
            bpf_jit_harden: read("/proc/sys/net/core/bpf_jit_harden"),
            bpf_stats_enabled: read("/proc/sys/kernel/bpf_stats_enabled"),
            spectre_v2: read("/sys/devices/system/cpu/vulnerabilities/spectre_v2"),
            mem_total_mb: meminfo_mb("MemTotal"),
            mem_available_mb: meminfo_mb("MemAvailable"),
            date: filter_user::time::rfc3339(filter_user::time::now()),
            commit: commit(root),
            rustc: output(Command::new("rustc").arg("--version")).unwrap_or_else(|| "unknown".into()),
        }
    }
}
