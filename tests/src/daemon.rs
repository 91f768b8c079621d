//! Support for the daemon tier: one [`Sandbox`] per test (a pin folder of its own under
//! /sys/fs/bpf, a temporary folder for the state, the run files, the audit log and the lists),
//! queries through the PINNED program (the one the interfaces run) with BPF_PROG_TEST_RUN, and
//! the `dnsfilter` binary run as a daemon ([`DaemonProcess`]) or as a verb ([`cli`]).
//!
//! Dropping a sandbox detaches every pinned link and removes the pin folder, even when the test
//! panics; a [`DaemonProcess`] is killed when dropped. Declare the sandbox first, so that it is
//! dropped last.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use aya::programs::Xdp;
use aya_obj::programs::XdpAttachType;
use domain::base::iana::Rcode;
use filter_user::{
    conf::{Conf, ConfigFile, ListSpec, Paths},
    loader::{PinnedMaps, Pins},
};

use crate::{
    XDP_PASS, XDP_TX,
    frames::{Edns, Frame, Ip, Query, Said, check_answer, read_answer},
    test_run,
};

/// The pins, state, lists and logs of one test, removed on drop.
pub struct Sandbox {
    pub pins: Pins,
    dir: tempfile::TempDir,
}

#[expect(clippy::new_without_default, reason = "new() creates resources in the kernel; a Default would hide that")]
impl Sandbox {
    /// A sandbox with a pin folder `/sys/fs/bpf/dnsfilter-test-<pid>-<n>` and an empty
    /// `lists/` folder.
    pub fn new() -> Sandbox {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = Path::new(filter_user::sys::BPFFS).join(format!("dnsfilter-test-{}-{n}", std::process::id()));
        filter_user::sys::ensure_bpffs(&root).expect("a bpf filesystem on /sys/fs/bpf");
        let sandbox = Sandbox {
            pins: Pins::new(root),
            dir: tempfile::Builder::new().prefix("dnsfilter-daemon-").tempdir().expect("a temporary folder"),
        };
        sandbox.cleanup_pins();
        std::fs::create_dir_all(sandbox.lists_dir()).expect("create lists/");
        sandbox
    }

    /// A path in the temporary folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn lists_dir(&self) -> PathBuf {
        self.path("lists")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    /// Writes (or replaces) the list `lists/<name>`; its format follows from its extension.
    pub fn write_list(&self, name: &str, text: &str) -> PathBuf {
        let p = self.lists_dir().join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// The paths of this sandbox.
    pub fn paths(&self) -> Paths {
        Paths {
            pins: self.pins.clone(),
            state_dir: self.path("state"),
            run_dir: self.path("run"),
            audit_log: Some(self.audit_log()),
        }
    }

    /// The configuration of a config file with no keys (every documented default), except the
    /// paths, which are this sandbox's, the lists (the `lists/` folder), no interface and no
    /// file watching.
    pub fn conf(&self) -> Conf {
        let mut c = Conf::from_file(ConfigFile::default(), &self.path("dnsfilter.toml")).expect("default config");
        c.paths = self.paths();
        c.lists = vec![ListSpec::Path(self.lists_dir())];
        c.interfaces = Vec::new();
        c.watch = false;
        c
    }

    /// Writes `dnsfilter.toml` for the binary: this sandbox's paths, then `extra` (TOML keys).
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let p = self.path("dnsfilter.toml");
        let text = format!(
            "pin_dir = {:?}\nstate_dir = {:?}\nrun_dir = {:?}\naudit_log = {:?}\n{extra}",
            self.pins.root,
            self.path("state"),
            self.path("run"),
            self.audit_log()
        );
        std::fs::write(&p, text).expect("write dnsfilter.toml");
        p
    }

    /// Every record of the audit log, oldest first.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.audit_log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
            .collect()
    }

    /// The audit records of one event (`applied`, `rejected`, `attached`, ...).
    pub fn audit_events(&self, event: &str) -> Vec<serde_json::Value> {
        self.audit().into_iter().filter(|r| r["event"] == event).collect()
    }

    /// The pinned maps, opened as the reporting verbs open them.
    pub fn maps(&self) -> PinnedMaps {
        self.pins.open().expect("open the pinned maps")
    }

    /// Asks for `name` (A, with EDNS) through the pinned program.
    pub fn query(&self, name: &str) -> Outcome {
        let prog = Xdp::from_pin(self.pins.prog_path(), XdpAttachType::Interface)
            .unwrap_or_else(|e| panic!("open the pinned program {}: {e}", self.pins.prog_path().display()));
        let q = Query::new(name, 1).with_edns(Edns::default());
        let frame = Frame::new(Ip::v4(), q.build());
        let bytes = frame.build();
        let (verdict, out) = test_run(&prog, &bytes);
        let said = (verdict == XDP_TX).then(|| read_answer(&frame.payload, &check_answer(&bytes, &out).dns));
        Outcome { name: name.to_string(), verdict, said }
    }

    /// Asserts the pinned program answers `name` itself with NXDOMAIN.
    #[track_caller]
    pub fn expect_nxdomain(&self, name: &str) -> Said {
        self.query(name).answered(Rcode::NXDOMAIN)
    }

    /// Asserts the pinned program passes `name` on to the resolver.
    #[track_caller]
    pub fn expect_pass(&self, name: &str) {
        self.query(name).passed();
    }

    /// Detaches every pinned link and removes the pin folder.
    fn cleanup_pins(&self) {
        for iface in self.pins.linked() {
            if self.pins.detach(&iface).is_err() {
                let _ = std::fs::remove_file(self.pins.link_path(&iface));
            }
        }
        let _ = self.pins.remove_all();
        let _ = std::fs::remove_dir_all(&self.pins.root);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.cleanup_pins();
    }
}

/// What the pinned program did with a query.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub verdict: u32,
    /// The answer, for XDP_TX, checked and parsed independently.
    pub said: Option<Said>,
}

impl Outcome {
    /// Asserts an answer with `rcode`, and returns it.
    #[track_caller]
    pub fn answered(self, rcode: Rcode) -> Said {
        assert_eq!(
            self.verdict, XDP_TX,
            "{}: expected an answer from the filter, got verdict {}",
            self.name, self.verdict
        );
        let said = self.said.expect("an answer");
        assert_eq!(said.rcode, rcode, "{}: {said:?}", self.name);
        said
    }

    /// Asserts XDP_PASS.
    #[track_caller]
    pub fn passed(self) {
        assert_eq!(self.verdict, XDP_PASS, "{}: expected XDP_PASS, got {} ({:?})", self.name, self.verdict, self.said);
    }
}

/// The `dnsfilter` release binary, built once per test process with the very command
/// `cargo xtask test` runs before the tests (so a no-op then; building only `-p filter-user`
/// would unify features differently and rebuild).
pub fn dnsfilter_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(&cargo)
            .args(["build", "--release"])
            .current_dir(&root)
            .status()
            .unwrap_or_else(|e| panic!("run {cargo}: {e}"));
        assert!(status.success(), "cargo build --release failed: {status}");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d));
        let bin = target.join("release").join("dnsfilter");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
}

/// What a verb printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts exit status 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("JSON from {self:?}: {e}"))
    }
}

/// Runs `dnsfilter --config CONFIG ARGS` to completion.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    let out = Command::new(dnsfilter_binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("DNSFILTER_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run dnsfilter");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `dnsfilter run` in the background, with a notification socket (as systemd's Type=notify
/// gives it) to learn when it is ready and when it has reloaded. Killed when dropped.
pub struct DaemonProcess {
    child: std::process::Child,
    notify: UnixDatagram,
    log: PathBuf,
}

impl DaemonProcess {
    /// Starts `dnsfilter --config CONFIG run ARGS`; its stderr (the log) goes to `log`.
    pub fn spawn(config: &Path, args: &[&str], log: PathBuf) -> DaemonProcess {
        Self::spawn_in(None, config, args, log)
    }

    /// [`DaemonProcess::spawn`] in the network namespace `netns` (by name, under /run/netns),
    /// through `nsenter --net`, which keeps the mount namespace: the pins stay visible.
    pub fn spawn_in(netns: Option<&str>, config: &Path, args: &[&str], log: PathBuf) -> DaemonProcess {
        let socket = log.with_extension("notify");
        let _ = std::fs::remove_file(&socket);
        let notify = UnixDatagram::bind(&socket).expect("bind the notify socket");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open the daemon log");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(dnsfilter_binary());
                c
            }
            None => Command::new(dnsfilter_binary()),
        };
        let child = cmd
            .arg("--config")
            .arg(config)
            .arg("run")
            .args(args)
            .env_remove("DNSFILTER_CONFIG")
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().expect("dup the log"))
            .stderr(stderr)
            .spawn()
            .expect("start dnsfilter run");
        DaemonProcess { child, notify, log }
    }

    pub fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).expect("pid")
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the sd_notify message `msg` (e.g. `READY=1`), skipping others.
    #[track_caller]
    pub fn wait_notify(&mut self, msg: &str, timeout: Duration) {
        let start = Instant::now();
        let mut buf = [0u8; 512];
        let mut seen = Vec::new();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dnsfilter exited ({status}) before {msg}; notified {seen:?}; log:\n{}", self.log());
            }
            self.notify.set_read_timeout(Some(Duration::from_millis(100))).expect("socket timeout");
            if let Ok(n) = self.notify.recv(&mut buf) {
                let got = String::from_utf8_lossy(&buf[..n]).into_owned();
                if got.lines().any(|l| l == msg) {
                    return;
                }
                seen.push(got);
            }
        }
        panic!("no {msg} from dnsfilter within {timeout:?}; notified {seen:?}; log:\n{}", self.log());
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory preconditions; the pid is our child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0, "kill -{sig} {}", self.pid());
    }

    /// Waits (reaping the process) until it exits.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().expect("wait for dnsfilter") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dnsfilter still running {timeout:?} later; log:\n{}", self.log());
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- dnsfilter log ({}) -----\n{}", self.log.display(), self.log());
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the daemon to take).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address")
}

/// `GET path` over HTTP/1.1: the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("send the request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read the response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}
