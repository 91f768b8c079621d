//! kxdpgun (knot-dnsutils) as a load generator: it sends and receives through AF_XDP on the
//! client's end of the veth pair, with an XDP program of its own there (so the testbed's
//! XDP_PASS program must be detached first: [`crate::Testbed::set_client_xdp`]).

use std::{path::Path, time::Duration};

use crate::{Netns, Result};

/// A kxdpgun run.
#[derive(Clone, Debug)]
pub struct Load<'a> {
    pub server: &'a str,
    /// Query templates, lines `NAME TYPE`.
    pub data: &'a Path,
    pub seconds: u32,
    /// Queries per second to send (approximately).
    pub qps: u32,
    /// The CPU of its (single, on veth) thread.
    pub cpu: usize,
}

/// kxdpgun's closing totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub sent: u64,
    pub replies: u64,
}

impl Totals {
    /// Parses the `total queries:` and `total replies:` lines.
    pub fn parse(out: &str) -> Result<Totals> {
        let count = |key: &str| -> Result<u64> {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no `{key}` in kxdpgun's output:\n{}", crate::tail(out, 30)))
        };
        Ok(Totals { sent: count("total queries:")?, replies: count("total replies:")? })
    }
}

/// Runs `load` in `ns` to its end, with its output in `out`.
pub fn run(ns: &Netns, load: &Load<'_>, out: &Path) -> Result<Totals> {
    let mut c = ns.command("kxdpgun");
    c.args(["-F", &load.cpu.to_string(), "-t", &load.seconds.to_string(), "-Q", &load.qps.to_string(), "-i"])
        .arg(load.data)
        .arg(load.server);
    let _ = std::fs::remove_file(out);
    let mut child = Netns::spawn(&mut c, out)?;
    let mut status = None;
    crate::wait_for(Duration::from_secs(u64::from(load.seconds) + 20), "kxdpgun to finish", || {
        status = child.exited();
        Ok(status.is_some())
    })?;
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    if !status.is_some_and(|s| s.success()) {
        return Err(format!("kxdpgun failed ({status:?}):\n{}", crate::tail(&text, 20)));
    }
    Totals::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_totals() {
        let out = "using interface vc, XDP threads 1, UDP, native mode\nthread#00: sent 299170, received 260270\n\
                   total queries:     299170 (99723 pps)\ntotal replies:     260270 (86756 pps) (86%)\n";
        assert_eq!(Totals::parse(out).unwrap(), Totals { sent: 299170, replies: 260270 });
        assert!(Totals::parse("failed to initialize XDP socket").is_err());
    }
}
