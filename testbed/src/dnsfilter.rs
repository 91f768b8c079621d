//! The `dnsfilter` daemon under test: its own pin folder, state folder, run folder and (empty)
//! config file, so that parallel tests and a system install never meet.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::Duration,
};

use crate::{Child, Netns, Result, cmd};

/// The daemon (started with [`DnsFilter::run`]) and the verbs run against its pins. When
/// dropped it kills the daemon, detaches the filter (`dnsfilter detach --all`) and removes
/// the pin folder.
pub struct DnsFilter {
    bin: PathBuf,
    pin_dir: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    keep: bool,
}

impl DnsFilter {
    /// A daemon of `bin` with its pins under `pin_dir` (on bpffs) and everything else under
    /// `dir` (state/, run/, dnsfilter.toml, dnsfilter.log). Leftovers in `pin_dir` are removed.
    pub fn new(bin: &Path, pin_dir: &Path, dir: &Path) -> Result<DnsFilter> {
        if !bin.is_file() {
            return Err(format!("{}: no such file (build it with `cargo build --release`)", bin.display()));
        }
        for sub in ["state", "run"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        // An empty config: a system-wide /etc/dnsfilter/dnsfilter.toml must not apply here.
        let config = dir.join("dnsfilter.toml");
        std::fs::write(&config, "").map_err(|e| format!("write {}: {e}", config.display()))?;
        let d = DnsFilter {
            bin: bin.to_path_buf(),
            pin_dir: pin_dir.to_path_buf(),
            dir: dir.to_path_buf(),
            child: None,
            keep: false,
        };
        d.remove_pins();
        Ok(d)
    }

    /// The global flags that point a `dnsfilter` command at this daemon's folders.
    pub fn global_args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        for (flag, path) in [
            ("--config", self.dir.join("dnsfilter.toml")),
            ("--pin-dir", self.pin_dir.clone()),
            ("--state-dir", self.dir.join("state")),
            ("--run-dir", self.dir.join("run")),
        ] {
            v.push(flag.into());
            v.push(path.into());
        }
        v
    }

    /// `dnsfilter GLOBAL-FLAGS` in the host namespaces (pins are on the host's bpffs).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(self.global_args());
        c
    }

    /// The daemon's log (stdout and stderr of every start).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dnsfilter.log")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The pin folder.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Starts `dnsfilter run --iface IFACE --list LIST EXTRA...` in `ns` and waits until it
    /// holds the pid file and the filter is attached in native mode to `iface`.
    pub fn run(&mut self, ns: &Netns, iface: &str, list: &Path, extra: &[&str]) -> Result<()> {
        if let Some(mut old) = self.child.take() {
            old.kill();
        }
        let mut c = ns.command(&self.bin);
        c.args(self.global_args()).args(["run", "--iface", iface, "--list"]).arg(list).args(extra);
        let child = Netns::spawn(&mut c, &self.log_path())?;
        let pid = child.pid();
        self.child = Some(child);
        crate::wait_for(Duration::from_secs(20), &format!("dnsfilter to attach to {iface}"), || {
            if let Some(status) = self.child.as_mut().and_then(Child::exited) {
                return Err(format!("dnsfilter exited ({status}):\n{}", crate::tail(&self.log(), 20)));
            }
            let s = self.status()?;
            let ours = s["daemon_pid"].as_i64() == Some(i64::from(pid));
            let attached = s["interfaces"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|i| i["name"] == iface && i["attached"] == true && i["mode"] == "native");
            Ok(ours && attached && s["state_matches_kernel"] == true)
        })
    }

    /// Runs the verb `args` against this daemon's folders; its stdout, or an error unless it
    /// exits 0.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        cmd::run(self.command().args(args))
    }

    /// `dnsfilter status --json` (printed also when nothing is loaded, then with exit 1).
    pub fn status(&self) -> Result<serde_json::Value> {
        let out = cmd::capture(self.command().args(["status", "--json"]))?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("dnsfilter status --json: {e}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }

    /// `dnsfilter stats --json`.
    pub fn stats(&self) -> Result<serde_json::Value> {
        let out = self.cli(&["stats", "--json"])?;
        serde_json::from_str(&out).map_err(|e| format!("dnsfilter stats --json: {e}: {out}"))
    }

    /// The table generation in force, from `status --json`.
    pub fn generation(&self) -> Result<Option<u64>> {
        Ok(self.status()?["generation"].as_u64())
    }

    /// The running daemon.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Stops the daemon with SIGTERM and waits (10 s at most) until it exits.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().ok_or("dnsfilter is not running")?;
        child.signal(libc::SIGTERM)?;
        let mut status = None;
        crate::wait_for(Duration::from_secs(10), "dnsfilter to exit after SIGTERM", || {
            status = child.exited();
            Ok(status.is_some())
        })?;
        status.ok_or_else(|| "dnsfilter did not exit".to_string())
    }

    /// Kills the daemon with SIGKILL: the filter stays attached through its pins.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.child.take().and_then(|mut c| c.kill())
    }

    /// Leaves the daemon running and the filter attached.
    pub fn keep(mut self) {
        self.keep = true;
        if let Some(c) = self.child.take() {
            c.keep();
        }
    }

    /// Detaches what is pinned under the pin folder and removes the folder.
    fn remove_pins(&self) {
        if self.pin_dir.exists() {
            let _ = cmd::capture(self.command().args(["detach", "--all"]));
            let _ = std::fs::remove_dir_all(&self.pin_dir);
        }
    }
}

impl Drop for DnsFilter {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        self.kill();
        self.remove_pins();
    }
}
