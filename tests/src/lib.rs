//! Support for the privileged test tiers: a fixture that loads the real XDP object, frame and
//! DNS builders, BPF_PROG_TEST_RUN, and independent checks of answers (etherparse for the
//! checksums, the `domain` crate for the DNS message).

pub mod daemon;
pub mod frames;
pub mod netns;

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
