//! The kernel matrix of `cargo xtask test`: the privileged test binaries of `filter-tests`
//! (kernel, swap, object, daemon, and two end-to-end tests) run on the kernels ISP edge nodes
//! run, not only on the host's.
//!
//! Each Debian 12 kernel is resolved from its metapackage (`apt-cache depends`), downloaded
//! once (`apt-get download`) and unpacked without installing it (`dpkg -x`) under
//! `target/kernels/`. virtme-ng boots it under QEMU with the host's filesystem shared read-only
//! (`/tmp` and the like get a writable overlay). QEMU runs without KVM: this host's `/dev/kvm`
//! cannot run stock kernels (QEMU aborts setting MSR 0x10a), so a boot takes 15–20 s in software.
//! A script in a folder shared read-write with the guest runs the test binaries and writes each
//! one's output and exit code there: vng's own exit code and stdout do not carry the guest's
//! without udev. The host kernel runs the same script directly.
//!
//! One line per kernel sums up the tiers, the skips, and the object test's `OBJECT` line
//! (verified instructions, translated size, object hash).
use std::{
    collections::BTreeMap,
    env, fmt, fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{cmd, setup};

/// Debian packages the matrix needs: QEMU, `modprobe`/`insmod` for the guest's modules,
/// busybox for virtme-ng's initramfs, and `python3 -m venv` for virtme-ng itself.
const APT_PACKAGES: &[&str] = &["qemu-system-x86", "kmod", "busybox-static", "python3-venv"];

/// virtme-ng from PyPI, pinned; installed in a venv under `target/kernels/venv`.
const VIRTME_NG: &str = "virtme-ng";
const VIRTME_NG_VERSION: &str = "1.42";

/// Memory of a guest. The kernel tiers and the end-to-end tests fit well in it.
const GUEST_MEMORY: &str = "2G";
/// Time a guest gets to boot and start the script before it counts as a boot failure.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Time one test binary gets inside a guest (software emulation is slow: the daemon tier
/// takes about 90 s on 6.1); `timeout` kills it after that and the tier shows as failed.
const BINARY_TIMEOUT_S: u32 = 600;
/// Time a whole guest gets, boot included.
const GUEST_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// `DNSF_TIME_SCALE` in a guest: the factor by which the testbed's and the daemon tests'
/// deadlines and slacks stretch (`testbed::time_scale`). Deadlines only wait as long as they
/// must, so a larger factor costs time only where a test waits out a slack on purpose.
const GUEST_TIME_SCALE: u32 = 5;

/// A kernel of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Kernel {
    /// The kernel this host runs; the binaries run directly, without a guest.
    #[value(name = "host")]
    Host,
    /// Debian 12's default kernel (`linux-image-amd64`), the 6.1 LTS line.
    #[value(name = "6.1")]
    Debian61,
    /// Debian 12's backported 6.12 LTS kernel (`linux-image-6.12-amd64`).
    #[value(name = "6.12")]
    Debian612,
}

/// What `cargo xtask test` runs after its other steps.
pub const DEFAULT: &[Kernel] = &[Kernel::Host, Kernel::Debian61, Kernel::Debian612];

impl Kernel {
    /// The Debian metapackage that names the current kernel of this line.
    fn metapackage(self) -> Option<&'static str> {
        match self {
            Kernel::Host => None,
            Kernel::Debian61 => Some("linux-image-amd64"),
            Kernel::Debian612 => Some("linux-image-6.12-amd64"),
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kernel::Host => "host",
            Kernel::Debian61 => "6.1",
            Kernel::Debian612 => "6.12",
        })
    }
}

/// One test binary of `filter-tests` and the arguments it runs with (after `--nocapture`).
struct Tier {
    test: &'static str,
    args: &'static [&'static str],
}

/// The privileged tiers, in the order they run.
///
/// The daemon and end-to-end tests run one at a time, and with their deadlines stretched
/// ([`GUEST_TIME_SCALE`]): a guest under software emulation is many times slower than the host
/// (the debug `dnsfilter` takes about 9 s to attach on 6.12, against the testbed's 20 s, while
/// the test polls `dnsfilter status` beside it), and two tests at once compete for its two CPUs.
///
/// Of the end-to-end tests, the two that do not measure throughput: under emulation dnsperf
/// cannot keep 1,000 queries/s, so the load tests would fail on the emulator's speed, not on
/// the kernel's behaviour. `every_action_...` is `dnsfilter run` blocking the Allostreaming
/// names in the demo's topology (namespaces, veth, Unbound, dig and kdig).
const TIERS: &[Tier] = &[
    Tier { test: "kernel", args: &[] },
    Tier { test: "swap", args: &[] },
    Tier { test: "object", args: &[] },
    Tier { test: "daemon", args: &["--test-threads=1"] },
    Tier {
        test: "e2e",
        args: &[
            "--test-threads=1",
            "--exact",
            "every_action_over_both_families_with_and_without_edns_from_dig_and_kdig",
            "the_filter_outlives_its_daemon_and_detach_restores_the_resolver",
        ],
    },
];

/// Whether `CI=true`: then every kernel must boot and every test must run and pass.
fn ci() -> bool {
    env::var("CI").as_deref() == Ok("true")
}

/// `target/kernels/`: the venv, the unpacked kernels and each run's results.
fn cache_dir() -> PathBuf {
    cmd::target_dir().join("kernels")
}

/// Builds what the tiers need, runs them on each of `kernels` in turn, prints one line per
/// kernel, and fails on any failed test, or (with `CI=true`) on any skip or kernel that could
/// not be downloaded or booted.
pub fn run(kernels: &[Kernel]) -> Result<()> {
    let started = Instant::now();
    let mut kernels = kernels.to_vec();
    kernels.sort();
    kernels.dedup();
    let binaries = build().context("build the test binaries")?;
    let mut tools = None;
    let mut reports = Vec::new();
    for &kernel in &kernels {
        let t = Instant::now();
        let outcome = if kernel == Kernel::Host {
            run_host(&binaries)
        } else {
            match tools.get_or_insert_with(prepare_tools) {
                Ok(vng) => run_guest(kernel, vng, &binaries),
                Err(e) => Err(anyhow!("the tools to boot it are missing: {e:#}")),
            }
        };
        let report = Report { kernel, outcome, wall: t.elapsed() };
        println!("{report}");
        match &report.outcome {
            Ok(run) => {
                let secs = |t: &TierResult| t.secs.map_or("?".to_string(), |s| format!("{s} s"));
                let times: Vec<String> = run.tiers.iter().map(|t| format!("{} {}", t.test, secs(t))).collect();
                println!("  times: {}; outputs in {}", times.join(", "), run.dir.display());
            }
            Err(e) => eprintln!("kernel {kernel} was not tested: {e:#}"),
        }
        reports.push(report);
    }
    let wall = started.elapsed();
    println!("\n=== kernel matrix: {} kernel(s) in {}", reports.len(), minutes(wall));
    for report in &reports {
        println!("{report}");
    }
    judge(&reports)
}

/// The verdict over every kernel's report, after the summary is printed.
fn judge(reports: &[Report]) -> Result<()> {
    let mut problems = Vec::new();
    for report in reports {
        match &report.outcome {
            Ok(run) => {
                for tier in &run.tiers {
                    if !tier.failures.is_empty() || tier.trouble.is_some() {
                        let name = tier.test;
                        let out = run.dir.join(format!("{name}.out"));
                        println!("  {}: {name} failed ({}):", run.label, out.display());
                        if let Some(trouble) = &tier.trouble {
                            println!("    {trouble}");
                        }
                        for test in &tier.failures {
                            println!("    {test}");
                        }
                    }
                }
                let failed = run.failed();
                if failed > 0 {
                    problems.push(format!("{}: {failed} failed", run.label));
                }
                let skipped = run.skipped();
                if skipped > 0 && ci() {
                    problems.push(format!("{}: {skipped} skipped (CI=true allows none)", run.label));
                }
            }
            Err(e) if ci() => problems.push(format!("kernel {} not tested: {}", report.kernel, first_line(e))),
            Err(e) => {
                eprintln!("\nWARNING: kernel {} WAS NOT TESTED: {}", report.kernel, first_line(e));
                eprintln!("WARNING: details above; with CI=true this fails the run\n");
            }
        }
    }
    if problems.is_empty() {
        let tested = reports.iter().filter(|r| r.outcome.is_ok()).count();
        match reports.len() - tested {
            0 => println!("kernels: every test passed on every kernel"),
            untested => println!("kernels: every test passed on {tested} kernel(s); {untested} NOT TESTED"),
        }
        return Ok(());
    }
    bail!("kernel matrix: {}", problems.join("; "))
}

/// One kernel's result: its tiers, or why it could not be tested.
struct Report {
    kernel: Kernel,
    outcome: Result<Run>,
    wall: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = match &self.outcome {
            Ok(run) => run,
            Err(e) => {
                return write!(f, "kernel {}  NOT TESTED: {}  ({})", self.kernel, first_line(e), minutes(self.wall));
            }
        };
        write!(f, "kernel {}", run.label)?;
        for (i, tier) in run.tiers.iter().enumerate() {
            f.write_str(if i == 0 { "  " } else { " " })?;
            match tier.trouble {
                None => write!(f, "{} {}/{}", tier.test, tier.passed, tier.passed + tier.failed)?,
                Some(_) => write!(f, "{} {}/?", tier.test, tier.passed)?,
            }
        }
        write!(f, "  failed {}  skipped {}", run.failed(), run.skipped())?;
        let object = |key: &str| run.object.as_ref().and_then(|o| o.get(key)).map_or("?", String::as_str);
        write!(f, "  verified {} insns  xlated {} B", object("verified_insns"), object("xlated_bytes"))?;
        let sha = object("sha256");
        match sha.get(..16) {
            Some(short) => write!(f, "  object sha256 {short}…")?,
            None => write!(f, "  object sha256 {sha}")?,
        }
        write!(f, "  ({})", minutes(self.wall))
    }
}

/// The results of the tiers on one kernel.
struct Run {
    /// `RELEASE (VERSION)`: `uname -r` and the package version, or `(host)`.
    label: String,
    tiers: Vec<TierResult>,
    /// The object test's `OBJECT key=value ...` line, if it printed one.
    object: Option<BTreeMap<String, String>>,
    /// Where the outputs are.
    dir: PathBuf,
}

impl Run {
    fn failed(&self) -> u32 {
        self.tiers.iter().map(|t| t.failed + u32::from(t.trouble.is_some() && t.failed == 0)).sum()
    }

    fn skipped(&self) -> u32 {
        self.tiers.iter().map(|t| t.skipped).sum()
    }
}

/// What one test binary reported.
struct TierResult {
    test: &'static str,
    passed: u32,
    failed: u32,
    /// Output lines with `skipping:` (a privileged test that could not run).
    skipped: u32,
    /// The names of the failed tests.
    failures: Vec<String>,
    /// How long the binary ran, if it finished.
    secs: Option<u64>,
    /// Set when the binary gave no verdict or exited non-zero without a failed test: it
    /// crashed, timed out or never ran.
    trouble: Option<String>,
}

/// Reads a tier's `NAME.out` and `NAME.rc` from `dir`.
fn read_tier(dir: &Path, test: &'static str) -> TierResult {
    let out = fs::read_to_string(dir.join(format!("{test}.out"))).unwrap_or_default();
    let rc = fs::read_to_string(dir.join(format!("{test}.rc"))).ok().and_then(|s| s.trim().parse::<i32>().ok());
    let secs = fs::read_to_string(dir.join(format!("{test}.secs"))).ok().and_then(|s| s.trim().parse().ok());
    let mut tier = TierResult { test, passed: 0, failed: 0, skipped: 0, failures: Vec::new(), secs, trouble: None };
    let mut verdict = false;
    let mut in_failures = false;
    for line in out.lines() {
        if let Some(counts) = line.strip_prefix("test result: ") {
            verdict = true;
            tier.passed += count(counts, "passed");
            tier.failed += count(counts, "failed");
        }
        // libtest's closing list: `failures:`, then one indented name per line.
        if line == "failures:" {
            in_failures = true;
            tier.failures.clear();
        } else if in_failures {
            match line.strip_prefix("    ") {
                Some(name) => tier.failures.push(name.to_string()),
                None if line.is_empty() && tier.failures.is_empty() => {}
                None => in_failures = false,
            }
        }
        if line.contains("skipping:") {
            tier.skipped += 1;
        }
    }
    tier.trouble = match rc {
        None => Some("did not run (no exit code)".to_string()),
        Some(124) => Some(format!("timed out after {BINARY_TIMEOUT_S} s")),
        Some(0) if verdict => None,
        Some(rc) if !verdict => Some(format!("exited {rc} without a test result")),
        Some(rc) if tier.failed == 0 => Some(format!("exited {rc} with no failed test")),
        Some(_) => None,
    };
    tier
}

/// `N WORD` in libtest's `ok. 13 passed; 0 failed; 0 ignored; ...`.
fn count(counts: &str, word: &str) -> u32 {
    counts
        .split(';')
        .filter_map(|part| part.trim().rsplit_once(' ').map(|(n, w)| (n.rsplit(' ').next().unwrap_or(n), w)))
        .find(|(_, w)| *w == word)
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

/// The `OBJECT kernel=... verified_insns=... xlated_bytes=... sha256=...` line of the object test.
fn read_object_line(dir: &Path) -> Option<BTreeMap<String, String>> {
    let out = fs::read_to_string(dir.join("object.out")).ok()?;
    let line = out.lines().find_map(|l| l.trim().strip_prefix("OBJECT "))?;
    Some(
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The test binaries of the tiers, by tier name.
struct Binaries {
    tests: Vec<(&'static str, PathBuf)>,
}

/// Builds the tiers' test binaries with the very command of the `test` step (same profile and
/// features, so nothing builds twice), and the debug `dnsfilter` the end-to-end tests run.
/// The release `dnsfilter` (daemon tier) comes from the `build` step.
fn build() -> Result<Binaries> {
    let mut cargo = cmd::cargo();
    cargo.args(["test", "--workspace", "--exclude", "filter-ebpf", "--no-run", "--message-format=json"]);
    println!("==> {}", testbed::cmd::display(&cargo));
    let out = cargo.stdin(Stdio::null()).stderr(Stdio::inherit()).output().context("run cargo test --no-run")?;
    if !out.status.success() {
        bail!("`cargo test --no-run` failed ({})", out.status);
    }
    let manifest = cmd::workspace_root().join("tests").join("Cargo.toml");
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let is_test = msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test"));
        if msg["reason"] != "compiler-artifact" || !is_test || msg["manifest_path"] != manifest.to_str().unwrap_or("") {
            continue;
        }
        if let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str()) {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    let mut tests = Vec::new();
    for tier in TIERS {
        let exe = found.remove(tier.test).with_context(|| format!("cargo built no test binary `{}`", tier.test))?;
        tests.push((tier.test, exe));
    }
    // The end-to-end tests build this themselves with `CARGO`; in the matrix `CARGO` is `true`
    // (a guest must not run cargo on the read-only tree), so it is built here, with the same
    // command the tests use.
    cmd::run(cmd::cargo().args(["build", "-p", "filter-user", "--bin", "dnsfilter"]))?;
    for profile in ["debug", "release"] {
        let bin = cmd::target_dir().join(profile).join("dnsfilter");
        if !bin.is_file() {
            bail!("{} is missing (the `build` step makes the release one)", bin.display());
        }
    }
    Ok(Binaries { tests })
}

/// The shell script that runs every tier and writes `NAME.out` and `NAME.rc` into `dir`, then
/// `done`. The same script runs in a guest and on the host.
fn script(binaries: &Binaries, dir: &Path, modules: Option<&Path>) -> String {
    let q = |p: &Path| shell_quote(&p.to_string_lossy());
    let out = q(dir);
    let mut s =
        String::from("#!/bin/sh\n# Written by `cargo xtask test` (xtask/src/kernels.rs): the kernel matrix's tiers.\n");
    s += &format!("out={out}\n");
    s += "uname -r > \"$out/started\"\n";
    s += "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n";
    // veth for the daemon and end-to-end tiers: a module in Debian's kernels. virtme-ng links
    // the unpacked modules into the guest's /lib/modules; insmod by path is the fallback.
    s += "modprobe veth 2>/dev/null";
    if let Some(modules) = modules {
        let veth = modules.join("kernel/drivers/net");
        s += &format!(" || for m in {}/veth.ko*; do insmod \"$m\"; done", q(&veth));
    }
    s += "\n";
    // `CARGO=true`: the tests' own `cargo build` of dnsfilter is a no-op; the binaries are
    // built already, and a guest's view of the tree is read-only. (`CI=true`, so that
    // privileged tests fail instead of skipping, comes from vng's command line in a guest, and
    // from our own environment on the host.)
    s += "export CARGO=true\n";
    s += &format!("cd {}\n", q(cmd::workspace_root()));
    for (test, exe) in &binaries.tests {
        let args = TIERS.iter().find(|t| t.test == *test).map_or(&[][..], |t| t.args);
        let args: String = args.iter().map(|a| format!(" {}", shell_quote(a))).collect();
        s += "t=$(date +%s)\n";
        s += &format!(
            "timeout -k 10 {BINARY_TIMEOUT_S} {} --nocapture{args} > \"$out/{test}.out\" 2>&1; echo $? > \"$out/{test}.rc\"\n",
            q(exe)
        );
        s += &format!("echo $(($(date +%s) - t)) > \"$out/{test}.secs\"\n");
    }
    s += "touch \"$out/done\"\n";
    s
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An empty results folder `target/kernels/runs/NAME`.
fn results_dir(name: &str) -> Result<PathBuf> {
    let dir = cache_dir().join("runs").join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// The tiers on the host kernel: the same script, run directly.
fn run_host(binaries: &Binaries) -> Result<Run> {
    let release = uname_r()?;
    println!("==> kernel host: {release}, the tiers run directly");
    let dir = results_dir("host")?;
    let script_path = dir.join("run.sh");
    fs::write(&script_path, script(binaries, &dir, None))?;
    let log = fs::File::create(dir.join("script.log"))?;
    let mut sh = Command::new("sh");
    sh.arg(&script_path).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let status = sh.status().context("run the tiers' script")?;
    if !dir.join("done").exists() {
        bail!("the tiers' script stopped early ({status}); see {}", dir.display());
    }
    Ok(collect(format!("{release} (host)"), dir))
}

fn collect(label: String, dir: PathBuf) -> Run {
    let tiers = TIERS.iter().map(|t| read_tier(&dir, t.test)).collect();
    let object = read_object_line(&dir);
    Run { label, tiers, object, dir }
}

fn uname_r() -> Result<String> {
    let out = cmd::output(Command::new("uname").arg("-r"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Boots `kernel` with virtme-ng and runs the tiers in it.
fn run_guest(kernel: Kernel, vng: &Path, binaries: &Binaries) -> Result<Run> {
    let unpacked = unpack(kernel)?;
    println!(
        "==> kernel {kernel}: booting {} {} ({}) with virtme-ng, QEMU without KVM",
        unpacked.package,
        unpacked.version,
        unpacked.vmlinuz.display()
    );
    let dir = results_dir(&unpacked.release)?;
    let script_path = dir.join("run.sh");
    fs::write(&script_path, script(binaries, &dir, Some(&unpacked.modules)))?;
    let guest_log = dir.join("guest.log");
    let exec = format!(
        "CI=true DNSF_TIME_SCALE={GUEST_TIME_SCALE} sh {} > {} 2>&1",
        shell_quote(&script_path.to_string_lossy()),
        shell_quote(&guest_log.to_string_lossy())
    );
    let vng_log = dir.join("vng.log");
    let log = fs::File::create(&vng_log)?;
    let mut command = Command::new(vng);
    command
        .arg("--run")
        .arg(&unpacked.vmlinuz)
        .args(["--disable-kvm", "--verbose", "--memory", GUEST_MEMORY, "--cpus", "2", "--rwdir"])
        .arg(&dir)
        .args(["--exec", &exec])
        .current_dir(cmd::workspace_root())
        .env("PATH", path_with(vng.parent().unwrap_or(Path::new("."))))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group, so that a timeout can end QEMU with it.
        .process_group(0);
    println!("==> {} (console in {})", testbed::cmd::display(&command), vng_log.display());
    let child = command.spawn().context("start vng")?;
    wait_guest(child, &dir).map_err(|e| anyhow!("{e:#}\n{}", tail(&vng_log, 15)))?;
    let release = fs::read_to_string(dir.join("started")).unwrap_or_default();
    if release.trim() != unpacked.release {
        bail!("the guest runs {:?}, not {}", release.trim(), unpacked.release);
    }
    Ok(collect(format!("{} ({})", unpacked.release, unpacked.version), dir))
}

/// Waits for the guest: it must start the script within [`BOOT_TIMEOUT`] and finish it
/// within [`GUEST_TIMEOUT`]; otherwise QEMU is killed.
fn wait_guest(mut child: Child, dir: &Path) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if dir.join("done").exists() {
                return Ok(());
            }
            if dir.join("started").exists() {
                bail!("the guest stopped before the tiers finished (vng: {status}); see {}", dir.display());
            }
            bail!("the guest did not boot (vng: {status}); its console is in {}", dir.join("vng.log").display());
        }
        let elapsed = started.elapsed();
        let late = if !dir.join("started").exists() && elapsed > BOOT_TIMEOUT {
            Some(format!("the guest did not start the tiers within {} s", BOOT_TIMEOUT.as_secs()))
        } else if elapsed > GUEST_TIMEOUT {
            Some(format!("the guest did not finish within {}", minutes(GUEST_TIMEOUT)))
        } else {
            None
        };
        if let Some(why) = late {
            let _ignored = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ignored = child.wait();
            bail!("{why}; killed QEMU");
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// The last `n` lines of a file, indented, for an error message.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut s = format!("last lines of {}:", path.display());
    for line in &lines[start..] {
        s += "\n    ";
        s += line;
    }
    s
}

/// `PATH` with `dir` first (vng runs `virtme-run` from its venv through `PATH`).
fn path_with(dir: &Path) -> std::ffi::OsString {
    let path = env::var_os("PATH").unwrap_or_default();
    env::join_paths(std::iter::once(dir.to_path_buf()).chain(env::split_paths(&path))).unwrap_or(path)
}

/// The first line of an error with its causes (the rest is a log excerpt).
fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}").lines().next().unwrap_or_default().to_string()
}

/// `5 min 12 s` or `42 s`.
fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{} min {:02} s", s / 60, s % 60) } else { format!("{s} s") }
}

// ---- Tools: apt packages and virtme-ng ----

/// Installs what booting a guest needs, if missing, and returns the path of `vng`.
fn prepare_tools() -> Result<PathBuf> {
    if !setup::is_root()? {
        bail!("the kernel matrix needs root (apt, and root in the guest for the privileged tests)");
    }
    setup::install_apt("kernels", APT_PACKAGES)?;
    virtme_ng()
}

/// virtme-ng [`VIRTME_NG_VERSION`] in the venv `target/kernels/venv` (Debian's python3), so
/// that nothing global is assumed or changed.
fn virtme_ng() -> Result<PathBuf> {
    let venv = cache_dir().join("venv");
    let vng = venv.join("bin").join("vng");
    let wanted = format!("{VIRTME_NG} {VIRTME_NG_VERSION}");
    let installed = || {
        cmd::output(Command::new(&vng).arg("--version"))
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == wanted)
    };
    if installed() {
        return Ok(vng);
    }
    println!("kernels: installing {wanted} from PyPI into {}", venv.display());
    if !venv.join("bin").join("pip").is_file() {
        cmd::run(Command::new("/usr/bin/python3").args(["-m", "venv"]).arg(&venv))?;
    }
    cmd::run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--disable-pip-version-check", "--quiet"])
            .arg(format!("{VIRTME_NG}=={VIRTME_NG_VERSION}")),
    )?;
    if !installed() {
        bail!("{} --version does not say {wanted} after pip install", vng.display());
    }
    Ok(vng)
}

// ---- Kernels: resolve, download once, unpack ----

/// An unpacked kernel package.
struct Unpacked {
    package: String,
    version: String,
    /// `uname -r` of the kernel.
    release: String,
    vmlinuz: PathBuf,
    /// `lib/modules/RELEASE` of the package.
    modules: PathBuf,
}

/// The kernel package `kernel`'s metapackage depends on today, downloaded and unpacked under
/// `target/kernels/PACKAGE/` unless it already is.
fn unpack(kernel: Kernel) -> Result<Unpacked> {
    let meta = kernel.metapackage().context("the host kernel has no package")?;
    let package = resolve(meta).with_context(|| format!("resolve {meta}"))?;
    let dir = cache_dir().join(&package);
    let record = dir.join("package.txt");
    if !record.is_file() {
        download(&package, &dir).with_context(|| format!("download {package}"))?;
    }
    let text = fs::read_to_string(&record)?;
    let version = text.split_whitespace().nth(1).context("package.txt without a version")?.to_string();
    let tree = dir.join("tree");
    let modules_root = tree.join("lib/modules");
    let release = fs::read_dir(&modules_root)
        .with_context(|| format!("read {}", modules_root.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .next()
        .with_context(|| format!("no kernel in {}", modules_root.display()))?;
    let vmlinuz = tree.join("boot").join(format!("vmlinuz-{release}"));
    if !vmlinuz.is_file() {
        bail!("{} is missing", vmlinuz.display());
    }
    println!("kernels: {kernel} = {meta} -> {package} {version} (uname -r {release}), cached in {}", dir.display());
    Ok(Unpacked { package, version, modules: modules_root.join(&release), release, vmlinuz })
}

/// The `linux-image-*` package `meta` depends on (`apt-cache depends`), running
/// `apt-get update` once if apt knows no such package yet.
fn resolve(meta: &str) -> Result<String> {
    for attempt in 0..2 {
        let out = cmd::output(Command::new("apt-cache").args(["depends", meta]))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let dep = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|d| d.starts_with("linux-image-"))
            .map(str::to_string);
        if let Some(dep) = dep {
            return Ok(dep);
        }
        if attempt == 0 && setup::apt_update()? {
            continue;
        }
        bail!(
            "`apt-cache depends {meta}` names no linux-image package: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    unreachable!("the loop returns or bails on its second pass")
}

/// `apt-get download PACKAGE` into `dir`, `dpkg -x` into `dir/tree`, the .deb removed, and
/// `dir/package.txt` (`PACKAGE VERSION`) written last: it marks a complete cache entry.
fn download(package: &str, dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("remove the partial {}", dir.display()))?;
    }
    fs::create_dir_all(dir)?;
    // As root, apt downloads as `_apt`, which cannot write in target/; download as root instead.
    cmd::run(Command::new("apt-get").args(["download", "-o", "APT::Sandbox::User=root", package]).current_dir(dir))?;
    let deb = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", dir.display()))?;
    let out = cmd::output(Command::new("dpkg-deb").args(["--field"]).arg(&deb).args(["Package", "Version"]))?;
    let fields = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        fields.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::trim)).map(str::to_string)
    };
    let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
        bail!("dpkg-deb --field {} gave no package and version: {fields}", deb.display());
    };
    cmd::run(Command::new("dpkg").arg("-x").arg(&deb).arg(dir.join("tree")))?;
    fs::remove_file(&deb)?;
    fs::write(dir.join("package.txt"), format!("{name} {version}\n"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_a_libtest_result_line() {
        let line = "FAILED. 11 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 80.63s";
        assert_eq!(count(line, "passed"), 11);
        assert_eq!(count(line, "failed"), 1);
        assert_eq!(count(line, "ignored"), 2);
        assert_eq!(count("ok. 13 passed; 0 failed", "failed"), 0);
    }

    #[test]
    fn a_tier_output_is_read_with_its_failures_skips_and_object_line() {
        let dir = tempdir();
        fs::write(
            dir.join("object.out"),
            "running 1 test\nskipping: x needs root\nOBJECT kernel=6.1.0-57-amd64 verified_insns=32250 \
             xlated_bytes=23048 sha256=650b\ntest a ... FAILED\ntest b ... ok\n\nfailures:\n\n\
             ---- a stdout ----\npanicked\n\nfailures:\n    a\n\n\
             test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n",
        )
        .unwrap();
        fs::write(dir.join("object.rc"), "101\n").unwrap();
        let tier = read_tier(&dir, "object");
        assert_eq!((tier.passed, tier.failed, tier.skipped), (1, 1, 1));
        assert_eq!(tier.failures, ["a"]);
        assert!(tier.trouble.is_none());
        let object = read_object_line(&dir).unwrap();
        assert_eq!(object["verified_insns"], "32250");
        assert_eq!(object["sha256"], "650b");

        fs::write(dir.join("kernel.out"), "running 13 tests\n").unwrap();
        fs::write(dir.join("kernel.rc"), "124\n").unwrap();
        assert!(read_tier(&dir, "kernel").trouble.unwrap().contains("timed out"));
        assert!(read_tier(&dir, "swap").trouble.unwrap().contains("did not run"));
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = env::temp_dir().join(format!("xtask-kernels-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
