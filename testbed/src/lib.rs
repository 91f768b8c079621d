//! A DNS testbed in network namespaces, shared by the end-to-end tests (`tests/tests/e2e.rs`)
//! and `cargo xtask demo`:
//!
//! ```text
//!  client netns                              edge netns
//!  dig, kdig, dnsperf                        dnsfilter (XDP on veth-edge), Unbound
//!  veth-client 10.53.0.1 fd53::1  <------>   veth-edge 10.53.0.2 fd53::2
//! ```
//!
//! Every piece is a guard that removes what it made when dropped, also when a test fails or the
//! demo is interrupted: [`Testbed`] (the namespaces, the veth pair and the client's XDP_PASS
//! program), [`Unbound`], [`DnsFilter`] (the daemon, its pins and its folders), [`WorkDir`],
//! [`Child`], and [`Lab`], which holds one of each. Each also has `keep()`, which leaves it in
//! place (`cargo xtask demo --keep`).
//!
//! The crate depends on libc and serde_json only: xtask uses it and must build on a fresh
//! machine, before the BPF toolchain that the `dnsfilter` crates need is installed. Errors are
//! `Result<_, String>`; the demo prints them, the tests `.expect()` them.

pub mod bind;
pub mod cmd;
pub mod cpu;
pub mod dig;
pub mod dnsfilter;
pub mod dnsperf;
pub mod fleet;
pub mod knot;
pub mod kxdpgun;
pub mod lab;
pub mod netns;
pub mod primary;
pub mod topology;
pub mod unbound;
pub mod xdp;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

pub use bind::Bind;
pub use dig::{Client, Opts, Reply, Who};
pub use dnsfilter::DnsFilter;
pub use knot::{Knot, KnotZone};
pub use lab::{Lab, Paths};
pub use netns::{Child, Netns};
pub use primary::{PrimaryNet, Transfer, TsigKey, Xfr};
pub use topology::{CLIENT_IF, CLIENT_V4, CLIENT_V6, EDGE_IF, EDGE_V4, EDGE_V6, Testbed};
pub use unbound::{RESOLVER_V4, RESOLVER_V6, Unbound};

/// The testbed's error: a message for a person.
pub type Result<T> = std::result::Result<T, String>;

/// A name no other test or process of this machine uses: `dnsf-TAG-PID-N`.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("dnsf-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT, SIGTERM and SIGHUP into a flag that [`wait_for`], [`sleep`] and
/// [`check_interrupt`] report as an error, so that the caller unwinds and its guards tear the
/// testbed down. The processes the testbed starts are in process groups of their own: Ctrl-C
/// reaches only the caller.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_interrupt as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// `Err("interrupted")` once a signal caught by [`catch_interrupts`] arrived.
pub fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) { Err("interrupted".into()) } else { Ok(()) }
}

/// Sleeps `d`, waking early (with an error) on an interrupt.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupt()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// The factor by which the testbed's deadlines stretch: `DNSF_TIME_SCALE`, a whole number, 1
/// when unset. The kernel matrix of `cargo xtask test` sets it in its guests, which run under
/// software emulation, many times slower than the host (xtask/src/kernels.rs).
pub fn time_scale() -> u32 {
    std::env::var("DNSF_TIME_SCALE").ok().and_then(|s| s.parse().ok()).filter(|n| *n >= 1).unwrap_or(1)
}

/// Polls `ok` every 100 ms until it holds; an error from `ok` ends the wait at once. After
/// `timeout` (times [`time_scale`]) the error says what was awaited.
pub fn wait_for(timeout: Duration, what: &str, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let timeout = timeout * time_scale();
    let start = Instant::now();
    loop {
        if ok()? {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        sleep(Duration::from_millis(100))?;
    }
}

/// A scratch folder (configs, logs, state), removed when dropped. When dropped during a panic
/// it first prints the `*.log` files in it, so a failing test shows what its processes said.
pub struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    /// Creates `path` afresh (a leftover of that name is removed first).
    pub fn create(path: impl Into<PathBuf>) -> Result<WorkDir> {
        let path = path.into();
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(WorkDir { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `path/name`.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.file(name);
        write_file(&path, text)?;
        Ok(path)
    }

    /// Leaves the folder in place.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if thread::panicking() {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            logs.sort();
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                eprintln!("----- {} -----\n{}", log.display(), tail(&text, 60));
            }
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes `text` to `path`, with the path in the error.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> &str {
    let start = text.char_indices().rev().filter(|&(_, c)| c == '\n').nth(lines).map_or(0, |(i, _)| i + 1);
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb", 5), "a\nb");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
        assert!(unique_name("t").starts_with(&format!("dnsf-t-{}-", std::process::id())));
    }
}
