//! Timing with BPF_PROG_TEST_RUN, following the traps of the reference notes (§5):
//!
//! - **Large `repeat`** for paths that do not rewrite the frame: the kernel's mean per run,
//!   one call per variant per round, variants interleaved (A B C, A B C, ...), so that a noisy
//!   moment hits every variant of a round. The fixed cost of a call with `repeat > 1` (the
//!   dispatcher switch, about 25 ms of wall time) is outside the kernel's figure.
//! - **`repeat = 1`, one call per frame** for paths that rewrite the frame (each call gets the
//!   original bytes) and for cold lookups (each call carries another name). Variants are
//!   interleaved call by call and compared with the floor measured the same way; the figure of
//!   a round is the median over its calls.
//!
//! Every figure is then the median over rounds, and every ratio the median of the per-round
//! ratios (so that a slow round slows numerator and denominator alike).

use std::os::fd::BorrowedFd;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::sys;

/// Output buffer large enough for any answer (the program writes at most 512 DNS octets).
const OUT_LEN: usize = 4096;

/// Median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

/// One variant: a program, the frames it is fed (cycled), and the verdict every call must give.
pub struct Variant<'a> {
    pub prog: BorrowedFd<'a>,
    pub frames: &'a [Vec<u8>],
    pub verdict: u32,
}

/// Nanoseconds per packet of each variant, one value per round.
pub type Rounds = Vec<Vec<f64>>;

/// Runs every variant once per round at `repeat`, interleaved; returns ns per round.
pub fn repeat_rounds(variants: &[Variant<'_>], repeat: u32, rounds: usize) -> Result<Rounds> {
    let mut out = vec![0u8; OUT_LEN];
    let mut res = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (v, r) in variants.iter().zip(res.iter_mut()) {
            let ran = sys::test_run(v.prog, &v.frames[0], repeat, &mut out)?;
            if ran.verdict != v.verdict {
                bail!("verdict {} instead of {}", ran.verdict, v.verdict);
            }
            r.push(f64::from(ran.ns));
        }
    }
    Ok(res)
}

/// One round at `repeat = 1`: `calls` calls per variant, interleaved call by call (call `i` of
/// every variant, then call `i + 1`); variant `v` gets frame `i % frames.len()`. Returns the
/// median ns of each variant. Fails if any call gives another verdict than expected.
pub fn per_call_round(variants: &[Variant<'_>], calls: usize) -> Result<Vec<f64>> {
    let mut out = vec![0u8; OUT_LEN];
    let mut samples = vec![Vec::with_capacity(calls); variants.len()];
    for i in 0..calls {
        for (v, s) in variants.iter().zip(samples.iter_mut()) {
            let frame = &v.frames[i % v.frames.len()];
            let ran = sys::test_run(v.prog, frame, 1, &mut out)?;
            if ran.verdict != v.verdict {
                bail!("call {i}: verdict {} instead of {}", ran.verdict, v.verdict);
            }
            s.push(f64::from(ran.ns));
        }
    }
    Ok(samples.iter().map(|s| median(s)).collect())
}

/// A figure: the median over rounds, and its ratio to a reference measured in the same rounds.
#[derive(Clone, Debug, Serialize)]
pub struct Stat {
    /// Median ns per packet over the rounds.
    pub ns: f64,
    /// Median over rounds of (this / reference) in the same round.
    pub ratio: f64,
    /// The per-round ns.
    pub rounds: Vec<f64>,
}

impl Stat {
    pub fn new(rounds: &[f64], reference: &[f64]) -> Stat {
        let ratios: Vec<f64> = rounds.iter().zip(reference).map(|(a, b)| a / b).collect();
        Stat { ns: median(rounds), ratio: median(&ratios), rounds: rounds.to_vec() }
    }

    /// Median over rounds of (this - floor) / (anchor - floor): the cost above the floor in
    /// units of the anchor's cost above the floor.
    pub fn delta_ratio(rounds: &[f64], floor: &[f64], anchor: &[f64]) -> f64 {
        let r: Vec<f64> = rounds
            .iter()
            .zip(floor)
            .zip(anchor)
            .map(|((a, f), c)| if c - f > 0.0 { (a - f) / (c - f) } else { f64::NAN })
            .collect();
        median(&r)
    }
}

/// Wall-clock seconds of `f`, with its result.
pub fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = std::time::Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64(), r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let s = Stat::new(&[10.0, 20.0, 30.0], &[5.0, 10.0, 10.0]);
        assert_eq!((s.ns, s.ratio), (20.0, 2.0));
        assert_eq!(Stat::delta_ratio(&[30.0, 50.0, 70.0], &[10.0, 10.0, 10.0], &[20.0, 30.0, 30.0]), 2.0);
    }
}
