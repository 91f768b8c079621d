//! Network namespaces and child processes removed when dropped, even when a test fails: the
//! guards of the `testbed` crate, which panic here instead of returning errors.

use std::{ops::Deref, process::Command};

pub use testbed::Child;

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    testbed::cmd::sh(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace with a name of its own (`PREFIX-PID-N`), deleted on drop.
pub struct Netns(testbed::Netns);

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        Netns(testbed::Netns::unique(prefix).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Runs `args` inside the namespace and returns its stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        self.0.exec(args).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Deref for Netns {
    type Target = testbed::Netns;

    fn deref(&self) -> &testbed::Netns {
        &self.0
    }
}

/// A veth pair in the current namespace, both ends up, with names unique to this process;
/// deleted on drop (which also takes any XDP program off it).
pub struct Veth {
    pub name: String,
    pub peer: String,
}

#[expect(clippy::new_without_default, reason = "new() creates resources in the kernel; a Default would hide that")]
impl Veth {
    pub fn new() -> Veth {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // At most 15 characters (IFNAMSIZ - 1).
        let base = format!("dft{}x{n}", std::process::id() % 100_000);
        let (name, peer) = (format!("{base}a"), format!("{base}b"));
        let _ = Command::new("ip").args(["link", "del", &name]).output();
        sh(&["ip", "link", "add", &name, "type", "veth", "peer", "name", &peer]);
        let veth = Veth { name, peer };
        sh(&["ip", "link", "set", &veth.name, "up"]);
        sh(&["ip", "link", "set", &veth.peer, "up"]);
        veth
    }

    /// Whether `ip link` shows an XDP program (native or generic) on the first end.
    pub fn has_xdp(&self) -> bool {
        let out = sh(&["ip", "link", "show", "dev", &self.name]);
        out.lines().next().is_some_and(|l| l.split_whitespace().any(|w| w.starts_with("xdp")))
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).output();
    }
}
