//! Where the testbed's work runs and how much CPU it takes: pinning processes and kernel
//! threads, threaded NAPI on the veth ends, per-task and per-CPU times from /proc.
//!
//! On a veth pair the receive work of a frame runs on the sender's CPU, in its softirq, unless
//! the receiving end's NAPI is threaded (`/sys/class/net/DEV/threaded`): then it runs in a
//! kernel thread `napi/DEV-ID` that can be pinned and whose CPU time can be read like a
//! process's.

use std::{collections::BTreeSet, path::Path, process::Command};

use crate::{Netns, Result, cmd};

/// Clock ticks per second of /proc's times (`USER_HZ`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// User plus system time in seconds of process `pid` (all its threads, living and exited):
/// fields 14 and 15 of `/proc/PID/stat`.
pub fn task_seconds(pid: libc::pid_t) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let fields: Vec<&str> =
        text.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(u), Some(s)) => Ok((u + s) as f64 / ticks_per_second()),
        _ => Err(format!("{path}: no utime/stime in {text:?}")),
    }
}

/// User plus system time in seconds of this process's children that have been waited for
/// (`getrusage(RUSAGE_CHILDREN)`): the delta over a load run whose generator was reaped in it
/// is the generator's CPU time.
pub fn children_seconds() -> f64 {
    // SAFETY: a zeroed rusage is valid; getrusage writes into it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

/// CPU time in seconds of process `pid`: the sum over its living threads of the scheduler's
/// run time (field 1 of `/proc/PID/task/TID/schedstat`, in ns). Exact, unlike the tick-sampled
/// utime+stime of [`task_seconds`], which charges a whole 10 ms tick to whatever runs at the
/// tick: at 100k short wake-ups a second that sampling is biased. Threads that exited are
/// missed (the testbed's processes keep theirs).
pub fn run_seconds(pid: libc::pid_t) -> Result<f64> {
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let mut ns = 0u64;
    for t in tasks.flatten() {
        let path = t.path().join("schedstat");
        // A thread may exit between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{}: {text:?}", path.display()))?;
    }
    Ok(ns as f64 / 1e9)
}

/// Pins every thread of process `pid` to `cpu` (`taskset -apc CPU PID`).
pub fn pin(pid: libc::pid_t, cpu: usize) -> Result<()> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| format!("/proc/{pid}/task: {e}"))?;
    for tid in tasks.flatten().filter_map(|t| t.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok())) {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within it for cpu < 1024.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            return Err(format!("pin task {tid} of {pid} to CPU {cpu}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Busy and total time in seconds of every CPU, from `/proc/stat` (busy = total − idle − iowait).
pub fn cpu_times() -> Result<Vec<(f64, f64)>> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let hz = ticks_per_second();
    Ok(text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal (guest times are inside user).
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            ((total - idle) as f64 / hz, total as f64 / hz)
        })
        .collect())
}

/// The kernel threads whose name starts like those of `dev`'s threaded NAPI (`napi/DEV-ID`,
/// cut to the kernel's 15 characters: the same for every device of that name in any namespace).
pub fn napi_threads(dev: &str) -> BTreeSet<libc::pid_t> {
    let prefix: String = format!("napi/{dev}-").chars().take(15).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(&prefix)))
        .collect()
}

/// Writes `value` to `/sys/class/net/DEV/threaded` of namespace `ns` (through `ip netns exec`,
/// which mounts the namespace's own /sys).
fn write_threaded(ns: &Netns, dev: &str, value: u8) -> Result<()> {
    let path = Path::new("/sys/class/net").join(dev).join("threaded");
    let script = format!("echo {value} > {}", path.display());
    cmd::run(Command::new("ip").args(["netns", "exec", &ns.name, "sh", "-c", &script])).map(drop)
}

/// Turns threaded NAPI on for `dev` in `ns` (off first, so that its threads are created anew)
/// and returns the NAPI threads it got: those that appeared. Another device of the same name
/// made threaded at the same instant would be mistaken for it; each testbed makes its own
/// threaded only here, and this is only used by the benchmark, which runs alone.
pub fn threaded_napi(ns: &Netns, dev: &str) -> Result<Vec<libc::pid_t>> {
    write_threaded(ns, dev, 0)?;
    let before = napi_threads(dev);
    write_threaded(ns, dev, 1)?;
    let new: Vec<libc::pid_t> = napi_threads(dev).difference(&before).copied().collect();
    if new.is_empty() {
        return Err(format!("no NAPI thread appeared for {dev} in {} (is NAPI on: GRO or XDP?)", ns.name));
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_times_and_cpus() {
        let me = std::process::id() as libc::pid_t;
        assert!(task_seconds(me).unwrap() >= 0.0);
        assert!(run_seconds(me).unwrap() > 0.0);
        let cpus = cpu_times().unwrap();
        assert!(!cpus.is_empty() && cpus.iter().all(|&(busy, total)| busy <= total));
        assert!(napi_threads("no-such-device-x").is_empty());
    }
}
