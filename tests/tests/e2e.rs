//! End to end: the real `dnsfilter run` binary attached in native mode to a veth in a network
//! namespace in front of a real resolver (Unbound), and real clients (dig, kdig) in another
//! namespace. Blocked names get the filter's NXDOMAIN; everything else gets the resolver's
//! answer; once the filter stops, the resolver answers again.

use std::{
    ffi::CString,
    fs,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use filter_tests::{
    netns::{Child, Netns},
    privileged,
};

const CLIENT_V4: &str = "10.53.0.1";
const EDGE_V4: &str = "10.53.0.2";
const CLIENT_V6: &str = "fd53::1";
const EDGE_V6: &str = "fd53::2";

/// A scratch directory removed on drop. When the test is failing it first prints the logs
/// of the processes that wrote into it.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the temp dir");
        TempDir(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            for log in ["dnsfilter.stderr", "dnsfilter.stdout", "unbound.stderr"] {
                if let Ok(text) = fs::read_to_string(self.file(log)) {
                    eprintln!("----- {log} -----\n{text}");
                }
            }
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A pin folder removed (links detached first) when dropped, even after a failure.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let pins = filter_user::loader::Pins::new(&self.0);
        for iface in pins.linked() {
            let _ = pins.detach(&iface);
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An XDP program that passes everything, attached (native mode, through a bpf_link) to an
/// interface of a namespace; detached when dropped or when the interface goes away.
///
/// Frames sent with XDP_TX on one end of a veth pair land in the peer's ring, but the veth
/// driver only kicks the peer's NAPI for them when the peer has an XDP program itself
/// (`veth_xdp_flush`): with GRO alone they sit in the ring and the client never sees the
/// answer. The kernel selftests attach such a dummy to veth peers for the same reason.
struct XdpPass {
    _link: OwnedFd,
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to the fields used here.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_LINK_CREATE, up to the fields used here.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<OwnedFd> {
    // SAFETY: attr is a live, initialised bpf_attr prefix of the size passed; the kernel zero
    // extends it.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a successful BPF_PROG_LOAD/BPF_LINK_CREATE returns a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl XdpPass {
    fn attach(ns: &Netns, iface: &str) -> XdpPass {
        const BPF_PROG_LOAD: libc::c_long = 5;
        const BPF_LINK_CREATE: libc::c_long = 28;
        const BPF_PROG_TYPE_XDP: u32 = 6;
        const BPF_XDP: u32 = 37;
        const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
        // r0 = XDP_PASS; exit
        let insns: [u64; 2] = [0xb7 | (2 << 32), 0x95];
        let license = c"GPL";
        let netns = fs::File::open(format!("/var/run/netns/{}", ns.name)).expect("open the netns");
        let iface = CString::new(iface).expect("interface name");
        // setns changes only the calling thread's namespace: do it in a thread of its own.
        let link = thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns with a namespace fd we hold open.
                let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                // SAFETY: a NUL-terminated name.
                let ifindex = unsafe { libc::if_nametoindex(iface.as_ptr()) };
                assert_ne!(ifindex, 0, "{iface:?}: {}", std::io::Error::last_os_error());
                let mut load = ProgLoadAttr {
                    prog_type: BPF_PROG_TYPE_XDP,
                    insn_cnt: 2,
                    insns: insns.as_ptr() as u64,
                    license: license.as_ptr() as u64,
                    ..Default::default()
                };
                load.prog_name[..8].copy_from_slice(b"xdp_pass");
                let prog = bpf(BPF_PROG_LOAD, &mut load).expect("load the XDP_PASS program");
                let mut create = LinkCreateAttr {
                    prog_fd: prog.as_raw_fd() as u32,
                    target_ifindex: ifindex,
                    attach_type: BPF_XDP,
                    flags: XDP_FLAGS_DRV_MODE,
                };
                bpf(BPF_LINK_CREATE, &mut create).expect("attach the XDP_PASS program")
            })
            .join()
            .expect("attach thread")
        });
        XdpPass { _link: link }
    }
}

/// What dig said.
#[derive(Debug)]
struct DigResult {
    /// The `status:` of the header (NOERROR, NXDOMAIN, …); empty when there was no answer.
    status: String,
    /// Records of the answer section, whitespace collapsed to single spaces.
    answers: Vec<String>,
    /// Records of the authority section, whitespace collapsed to single spaces.
    authority: Vec<String>,
    raw: String,
}

/// Runs `dig +time=2 +tries=1 ARGS` inside `ns` and parses its output.
fn dig(ns: &Netns, args: &[&str]) -> DigResult {
    let out = ns.command("dig").args(["+time=2", "+tries=1"]).args(args).output().expect("run dig");
    let raw = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let status = raw
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    DigResult { status, answers: section(&raw, "ANSWER"), authority: section(&raw, "AUTHORITY"), raw }
}

/// The records of `;; NAME SECTION:` in dig's output.
fn section(raw: &str, name: &str) -> Vec<String> {
    let header = format!(";; {name} SECTION:");
    raw.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The filter's latest counters line (it logs one a second with `--stats-interval 1`).
fn filter_counters(tmp: &TempDir) -> String {
    thread::sleep(Duration::from_millis(1200));
    let out = fs::read_to_string(tmp.file("dnsfilter.stderr")).unwrap_or_default();
    out.lines().rev().find(|l| l.contains("counters=")).unwrap_or("(no counters line)").to_string()
}

/// Asserts the answer came from the filter: NXDOMAIN with the filter's SOA and no warnings.
#[track_caller]
fn assert_blocked(r: &DigResult, tmp: &TempDir) {
    let from_filter = r.status == "NXDOMAIN"
        && r.answers.is_empty()
        && r.authority.iter().any(|rr| {
            let f: Vec<&str> = rr.split(' ').collect();
            f.get(3) == Some(&"SOA") && f.get(4) == Some(&"dnsfilter.invalid.")
        });
    assert!(
        from_filter,
        "expected the filter's NXDOMAIN with an authority SOA whose MNAME is dnsfilter.invalid.:\n{}\nfilter {}",
        r.raw,
        filter_counters(tmp)
    );
    assert!(!r.raw.to_ascii_lowercase().contains("warning"), "dig warned about the filter's answer:\n{}", r.raw);
}

/// Asserts the resolver answered NOERROR with `addr` in the answer section.
#[track_caller]
fn assert_resolved(r: &DigResult, addr: &str) {
    assert_eq!(r.status, "NOERROR", "expected the resolver's answer:\n{}", r.raw);
    assert!(
        r.answers.iter().any(|rr| rr.split(' ').nth(4) == Some(addr)),
        "expected {addr} in the answer section:\n{}",
        r.raw
    );
}

/// Builds `dnsfilter` (a no-op when fresh) and returns its path.
fn dnsfilter_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-p", "filter-user", "--bin", "dnsfilter"])
        .current_dir(&root)
        .status()
        .unwrap_or_else(|e| panic!("run {cargo}: {e}"));
    assert!(status.success(), "cargo build -p filter-user --bin dnsfilter failed: {status}");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir), // join keeps an absolute path as it is
        None => root.join("target"),
    };
    let bin = target.join("debug").join("dnsfilter");
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}

/// Polls `ok` every 100 ms until it holds or `timeout` passes.
fn wait_for(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    ok()
}

/// `ip -n NS link show IF`.
fn link_show(ns: &Netns, iface: &str) -> String {
    let out = Command::new("ip").args(["-n", &ns.name, "link", "show", iface]).output().expect("ip link show");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ip link show` reports a native-mode XDP program (`xdp`, not `xdpgeneric`).
fn native_xdp(link: &str) -> bool {
    link.lines().next().is_some_and(|l| l.split_whitespace().any(|w| w == "xdp"))
}

fn unbound_conf(dir: &Path) -> String {
    format!(
        r#"server:
  interface: {EDGE_V4}
  interface: {EDGE_V6}
  port: 53
  access-control: 0.0.0.0/0 allow
  access-control: ::/0 allow
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  local-zone: "com." static
  local-data: "allostreaming.com. 300 IN A 10.6.6.6"
  local-data: "www.allostreaming.com. 300 IN A 10.6.6.7"
  local-data: "notallostreaming.com. 300 IN A 10.7.7.7"
  local-data: "example.com. 300 IN A 10.8.8.8"
remote-control:
  control-enable: no
"#,
        dir = dir.display()
    )
}

fn log_file(tmp: &TempDir, name: &str) -> Stdio {
    Stdio::from(fs::File::create(tmp.file(name)).expect("create a log file"))
}

#[test]
fn dig_gets_nxdomain_from_the_filter_and_the_resolver_answer_otherwise() {
    if !privileged("e2e") {
        return;
    }
    let bin = dnsfilter_binary();

    // Dropped in reverse order: processes first, then namespaces, then the directory.
    let tmp = TempDir::new("dnsf-e2e");
    let client = Netns::new("dnsf-cli");
    let edge = Netns::new("dnsf-edge");

    // Topology: client A (10.53.0.1, fd53::1) <-veth-> B (10.53.0.2, fd53::2) edge.
    let tag = std::process::id() % 100_000;
    let (a, b) = (format!("dfc{tag}"), format!("dfe{tag}"));
    client.exec(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &edge.name]);
    client.exec(&["ip", "addr", "add", &format!("{CLIENT_V4}/24"), "dev", &a]);
    client.exec(&["ip", "-6", "addr", "add", &format!("{CLIENT_V6}/64"), "dev", &a, "nodad"]);
    client.exec(&["ip", "link", "set", &a, "up"]);
    edge.exec(&["ip", "addr", "add", &format!("{EDGE_V4}/24"), "dev", &b]);
    edge.exec(&["ip", "-6", "addr", "add", &format!("{EDGE_V6}/64"), "dev", &b, "nodad"]);
    edge.exec(&["ip", "link", "set", &b, "up"]);
    // XDP_TX on B reaches A only if A runs NAPI (GRO), and only if A has an XDP program.
    client.exec(&["ethtool", "-K", &a, "gro", "on"]);
    let _client_xdp = XdpPass::attach(&client, &a);

    // The resolver.
    let conf = tmp.file("unbound.conf");
    fs::write(&conf, unbound_conf(&tmp.0)).expect("write unbound.conf");
    let unbound_log = fs::File::create(tmp.file("unbound.stderr")).expect("create unbound.stderr");
    let mut unbound = Child(
        edge.command("unbound")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(unbound_log.try_clone().expect("dup the log file"))
            .stderr(unbound_log)
            .spawn()
            .expect("start unbound"),
    );
    let up = wait_for(Duration::from_secs(10), || {
        dig(&client, &["@10.53.0.2", "example.com", "+short", "+time=1"]).raw.contains("10.8.8.8")
    });
    if !up {
        let exited = unbound.0.try_wait().ok().flatten();
        panic!("unbound does not answer (exited: {exited:?})");
    }

    // Baseline: the resolver answers the name that is about to be blocked, over both families.
    assert_resolved(&dig(&client, &["@10.53.0.2", "allostreaming.com", "A"]), "10.6.6.6");
    assert_resolved(&dig(&client, &["@fd53::2", "www.allostreaming.com", "A"]), "10.6.6.7");

    // The filter.
    let pins = PinDir(PathBuf::from(format!("/sys/fs/bpf/dnsfilter-e2e-{}", std::process::id())));
    let list = tmp.file("blocked.list");
    fs::write(&list, "# a comment\nallostreaming.com\n").expect("write the list");
    // Everything the daemon keeps goes to the scratch folder, not to /var/lib, /run, /var/log.
    let config = tmp.file("dnsfilter.toml");
    fs::write(&config, "").expect("write an empty config");
    let mut filter = Child(
        edge.command(bin.to_str().expect("utf-8 path"))
            .arg("--config")
            .arg(&config)
            .arg("--pin-dir")
            .arg(&pins.0)
            .arg("--state-dir")
            .arg(tmp.file("state"))
            .arg("--run-dir")
            .arg(tmp.file("run"))
            .args(["run", "--iface", &b, "--list"])
            .arg(&list)
            .arg("--audit-log")
            .arg(tmp.file("audit.jsonl"))
            .args(["--stats-interval", "1", "--detach-on-exit"])
            .stdin(Stdio::null())
            .stdout(log_file(&tmp, "dnsfilter.stdout"))
            .stderr(log_file(&tmp, "dnsfilter.stderr"))
            .spawn()
            .expect("start dnsfilter"),
    );
    let mut early_exit: Option<ExitStatus> = None;
    let attached = wait_for(Duration::from_secs(20), || {
        if let Ok(Some(status)) = filter.0.try_wait() {
            early_exit = Some(status);
            return true;
        }
        native_xdp(&link_show(&edge, &b))
    });
    if let Some(status) = early_exit {
        panic!(
            "dnsfilter exited early ({status}):\n{}",
            fs::read_to_string(tmp.file("dnsfilter.stderr")).unwrap_or_default()
        );
    }
    assert!(attached, "no native XDP program on {b} after 20 s:\n{}", link_show(&edge, &b));

    // Blocked: the name, a subdomain in mixed case, and over IPv6.
    assert_blocked(&dig(&client, &["@10.53.0.2", "allostreaming.com", "A"]), &tmp);
    assert_blocked(&dig(&client, &["@10.53.0.2", "WwW.AllOstreaming.com", "A"]), &tmp);
    assert_blocked(&dig(&client, &["@fd53::2", "www.allostreaming.com", "AAAA"]), &tmp);

    // Not blocked: a name that only ends with the same characters, and another name.
    assert_resolved(&dig(&client, &["@10.53.0.2", "notallostreaming.com", "A"]), "10.7.7.7");
    assert_resolved(&dig(&client, &["@10.53.0.2", "example.com", "A"]), "10.8.8.8");
    assert_resolved(&dig(&client, &["@fd53::2", "example.com", "A"]), "10.8.8.8");

    // A second client implementation.
    let out = client
        .command("kdig")
        .args(["@10.53.0.2", "allostreaming.com", "A", "+time=2", "+retry=0"])
        .output()
        .expect("run kdig");
    let kdig = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(kdig.contains("NXDOMAIN"), "kdig did not get NXDOMAIN:\n{kdig}\nfilter {}", filter_counters(&tmp));
    assert!(kdig.contains("dnsfilter.invalid."), "kdig's answer is not the filter's:\n{kdig}");

    // Stop: SIGTERM, a clean exit, the program detached, the resolver answering again.
    let pid = libc::pid_t::try_from(filter.0.id()).expect("pid");
    // SAFETY: kill has no memory preconditions; pid is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill -TERM {pid}");
    let mut exit: Option<ExitStatus> = None;
    wait_for(Duration::from_secs(10), || {
        exit = filter.0.try_wait().expect("wait for dnsfilter");
        exit.is_some()
    });
    let exit = exit.expect("dnsfilter still running 10 s after SIGTERM");
    assert!(
        exit.success(),
        "dnsfilter exited with {exit} after SIGTERM:\n{}",
        fs::read_to_string(tmp.file("dnsfilter.stderr")).unwrap_or_default()
    );
    let link = link_show(&edge, &b);
    assert!(!link.contains("xdp"), "XDP program still attached after exit:\n{link}");
    assert!(!pins.0.exists(), "--detach-on-exit left pins in {}", pins.0.display());
    assert_resolved(&dig(&client, &["@10.53.0.2", "allostreaming.com", "A"]), "10.6.6.6");
}
