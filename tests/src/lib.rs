//! Support for the privileged test tiers: a fixture that loads the real XDP object, frame and
//! DNS builders, BPF_PROG_TEST_RUN, and independent checks of answers (etherparse for the
//! checksums, the `domain` crate for the DNS message).

pub mod daemon;
pub mod fleet;
pub mod frames;
pub mod netns;
pub mod primary;

use std::os::fd::{AsRawFd as _, BorrowedFd};

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use filter_common::{config::Config, counters::Counter};
use filter_user::{
    config::Settings,
    loader::Filter,
    table::{self, Built, Rule},
};

/// Whether privileged tests may run. Without root they print `skipping: reason` and return
/// false, but when CI=true they fail instead: CI must run them.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{test}: privileged test cannot run without root in CI");
    eprintln!("skipping: {test} needs root (CAP_BPF, CAP_NET_ADMIN)");
    false
}

/// The loaded filter with one installed table generation.
pub struct Fixture {
    pub filter: Filter,
    pub built: Built,
    pub config: Config,
}

/// What one BPF_PROG_TEST_RUN returned.
#[derive(Debug)]
pub struct Run {
    /// XDP verdict (1 drop, 2 pass, 3 tx).
    pub verdict: u32,
    /// The frame after the program.
    pub out: Vec<u8>,
    /// Counters that changed, with their deltas.
    pub deltas: Vec<(Counter, u64)>,
}

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

impl Fixture {
    /// Loads the real object and installs a table built from `rules`.
    pub fn new(rules: &[Rule], settings: &Settings) -> Fixture {
        let mut filter = Filter::load().expect("load the XDP object");
        let config = settings.to_config().expect("settings");
        filter.set_config(&config).expect("write config");
        let built = table::build(rules, table::random_seed(), 1, 1_000_000).expect("build table");
        filter.install(&built).expect("install table");
        Fixture { filter, built, config }
    }

    /// Runs one frame through the program (repeat 1) and reports verdict, output and counter deltas.
    pub fn run(&mut self, frame: &[u8]) -> Run {
        let before = self.filter.counters().expect("counters");
        let (verdict, out) = test_run(self.filter.program().expect("program"), frame);
        let after = self.filter.counters().expect("counters");
        let deltas =
            after.iter().zip(before.iter()).filter(|(a, b)| a.1 != b.1).map(|(a, b)| (a.0, a.1 - b.1)).collect();
        Run { verdict, out, deltas }
    }
}

/// Runs one frame through `prog` with BPF_PROG_TEST_RUN (repeat 1): the verdict and the frame
/// after the program.
pub fn test_run(prog: &Xdp, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + 1024];
    let opts = TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), repeat: 1, ..Default::default() };
    let r = prog.test_run(opts).expect("BPF_PROG_TEST_RUN");
    let size = r.data_size_out as usize;
    out.truncate(size);
    (r.return_value, out)
}

impl Run {
    /// Asserts the verdict and that exactly `counter` moved by one.
    #[track_caller]
    pub fn expect(&self, verdict: u32, counter: Counter) -> &Self {
        assert_eq!(self.verdict, verdict, "verdict (deltas {:?})", self.deltas);
        assert_eq!(self.deltas, vec![(counter, 1)], "counter deltas");
        self
    }
}

/// `union bpf_attr` for BPF_PROG_TEST_RUN.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// What one BPF_PROG_TEST_RUN returned.
#[derive(Clone, Copy, Debug)]
pub struct Ran {
    /// The program's return value (the XDP verdict).
    pub verdict: u32,
    /// The kernel's mean time per repetition, ns (integer: `duration` is a u32).
    pub ns: u32,
    /// Octets written to `out`.
    pub out_len: usize,
}

/// One raw BPF_PROG_TEST_RUN of `frame` on a program descriptor (usable from any thread), `repeat` times, writing the output frame into `out`.
/// `out` must be large enough for the output (the kernel refuses a short one).
pub fn test_run_fd(prog: BorrowedFd<'_>, frame: &[u8], repeat: u32, out: &mut [u8]) -> std::io::Result<Ran> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    // SAFETY: BPF_PROG_TEST_RUN (10) with a zero-padded attr and buffers that outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 10, &mut attr as *mut TestRunAttr, size_of::<TestRunAttr>()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Ran { verdict: attr.retval, ns: attr.duration, out_len: attr.data_size_out as usize })
}
