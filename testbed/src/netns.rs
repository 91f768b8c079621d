//! Network namespaces and child processes that are removed when dropped, even when a test fails.

use std::{
    ffi::OsStr,
    fs::File,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::Path,
    process::{Command, ExitStatus},
};

use crate::{Result, cmd};

/// A command that runs `program` inside the network namespace of `ns` (an open
/// `/var/run/netns/NAME`): `setns` before `exec`, in a process group of its own.
pub(crate) fn command_in(ns: &File, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    // Without a copy of the file (out of descriptors), setns(-1) fails with EBADF.
    let file = ns.try_clone().ok();
    // SAFETY: the closure runs between fork and exec and only calls setns, which is
    // async-signal-safe; it allocates nothing.
    unsafe {
        c.pre_exec(move || {
            if libc::setns(file.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.process_group(0);
    c
}

/// A named network namespace (`ip netns add`) with its loopback up. When dropped, it kills
/// every process still inside it, then deletes it (with the interfaces it holds).
pub struct Netns {
    pub name: String,
    /// `/var/run/netns/NAME`, held open for `setns`.
    file: File,
    keep: bool,
}

impl Netns {
    /// Creates the namespace `name`, removing a leftover of that name first.
    pub fn create(name: &str) -> Result<Netns> {
        Netns::remove(name);
        cmd::sh(&["ip", "netns", "add", name])?;
        let path = format!("/var/run/netns/{name}");
        let file = File::open(&path).map_err(|e| format!("open {path}: {e}"));
        let ns = Netns { name: name.to_string(), file: file?, keep: false };
        cmd::sh(&["ip", "-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a namespace named after `prefix` that no other test or process uses.
    pub fn unique(prefix: &str) -> Result<Netns> {
        Netns::create(&crate::unique_name(prefix))
    }

    /// Whether a namespace of that name exists.
    pub fn exists(name: &str) -> bool {
        Path::new("/var/run/netns").join(name).exists()
    }

    /// Kills the processes inside namespace `name` and deletes it; nothing happens when there
    /// is no such namespace.
    pub fn remove(name: &str) {
        if !Netns::exists(name) {
            return;
        }
        let pids = Command::new("ip").args(["netns", "pids", name]).output().map(|o| o.stdout).unwrap_or_default();
        for pid in String::from_utf8_lossy(&pids).split_whitespace().filter_map(|p| p.parse::<libc::pid_t>().ok()) {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new("ip").args(["netns", "del", name]).output();
    }

    /// A command that runs `program` inside the namespace, in a process group of its own.
    ///
    /// It enters only the network namespace (`setns` before `exec`), unlike `ip netns exec`,
    /// which also gives it a mount namespace with a fresh /sys: there /sys/fs/bpf would not be
    /// the host's bpffs, and the daemon's pins would be invisible to every other process.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        command_in(&self.file, program)
    }

    /// Runs `args` inside the namespace and returns its stdout; fails unless it exits 0.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let (program, rest) = args.split_first().ok_or("exec: no command")?;
        cmd::run(self.command(program).args(rest))
    }

    /// Starts `cmd` with its output in `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Result<Child> {
        cmd::log_to(cmd, log)?;
        cmd.spawn().map(Child).map_err(|e| format!("cannot start `{}`: {e}", cmd::display(cmd)))
    }

    /// The open namespace file, for `setns` in a thread.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Leaves the namespace (and what runs in it) in place.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.keep {
            Netns::remove(&self.name);
        }
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Child(pub std::process::Child);

impl Child {
    pub fn pid(&self) -> libc::pid_t {
        self.0.id() as libc::pid_t
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        // SAFETY: kill has no memory preconditions; the pid is our child, not reaped yet.
        if unsafe { libc::kill(self.pid(), signal) } != 0 {
            return Err(format!("kill -{signal} {}: {}", self.pid(), std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// Kills the process (SIGKILL) and reaps it; returns how it ended.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let _ = self.0.kill();
        self.0.wait().ok()
    }

    /// Lets the process run on after the guard is gone.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}
