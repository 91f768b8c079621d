//! Network namespaces and veth pairs that are removed when dropped, even when a test fails.

use std::process::Command;

/// Runs a command, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = format!("{prefix}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs `args` inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// A command prepared to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A child process killed on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
