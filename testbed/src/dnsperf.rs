//! dnsperf as a load generator in the client namespace.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{Child, Netns, Result};

/// A dnsperf run: queries from a data file (lines `name type`) at a fixed rate.
#[derive(Clone, Debug)]
pub struct Load<'a> {
    pub server: &'a str,
    pub data: &'a Path,
    pub seconds: u32,
    /// Queries per second, at most.
    pub qps: u32,
    /// Concurrent clients (sockets).
    pub clients: u32,
}

/// dnsperf's closing statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
}

impl Summary {
    /// Parses the `Queries sent / completed / lost` lines of dnsperf's output.
    pub fn parse(out: &str) -> Result<Summary> {
        let count = |key: &str| -> Result<u64> {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no `{key}` in dnsperf's output:\n{}", crate::tail(out, 30)))
        };
        Ok(Summary {
            sent: count("Queries sent:")?,
            completed: count("Queries completed:")?,
            lost: count("Queries lost:")?,
        })
    }
}

/// dnsperf's closing statistics with its rates and latencies, and the latency of every answer
/// when it ran with `-v` (lines `> RCODE NAME TYPE SECONDS`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub summary: Summary,
    /// `Run time (s)`.
    pub run_seconds: f64,
    /// `Queries per second` (completed queries over the run time).
    pub qps: f64,
    /// `Average Latency (s)`.
    pub avg_latency: f64,
    /// Every answer's latency in seconds, sorted (empty without `-v`).
    pub latencies: Vec<f64>,
}

impl Stats {
    /// Parses dnsperf's output (with or without `-v`).
    pub fn parse(out: &str) -> Result<Stats> {
        let value = |key: &str| -> Result<f64> {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("no `{key}` in dnsperf's output:\n{}", crate::tail(out, 30)))
        };
        let mut latencies: Vec<f64> = out
            .lines()
            .filter_map(|l| l.strip_prefix("> "))
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter_map(|v| v.parse().ok())
            .collect();
        latencies.sort_by(f64::total_cmp);
        Ok(Stats {
            summary: Summary::parse(out)?,
            run_seconds: value("Run time (s):")?,
            qps: value("Queries per second:")?,
            avg_latency: value("Average Latency (s):")?,
            latencies,
        })
    }

    /// The `p`-quantile (0..=1) of the answers' latencies in seconds, if `-v` gave them.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let last = self.latencies.len().checked_sub(1)?;
        let i = ((last as f64) * p.clamp(0.0, 1.0)).round() as usize;
        self.latencies.get(i).copied()
    }
}

/// A running dnsperf, killed when dropped.
pub struct Dnsperf {
    child: Child,
    out: PathBuf,
}

impl Dnsperf {
    /// Starts `load` in `ns`, with its output in `out`.
    pub fn start(ns: &Netns, load: &Load<'_>, out: &Path) -> Result<Dnsperf> {
        let mut c = ns.command("dnsperf");
        c.args(["-s", load.server, "-d"]).arg(load.data);
        for (flag, value) in [("-l", load.seconds), ("-Q", load.qps), ("-c", load.clients), ("-t", 2)] {
            c.arg(flag).arg(value.to_string());
        }
        let _ = std::fs::remove_file(out);
        Ok(Dnsperf { child: Netns::spawn(&mut c, out)?, out: out.to_path_buf() })
    }

    /// Waits for the run to end (its length plus the query timeout, and a margin) and returns
    /// its statistics.
    pub fn finish(mut self, timeout: Duration) -> Result<Summary> {
        crate::wait_for(timeout, "dnsperf to finish", || Ok(self.child.exited().is_some()))?;
        Summary::parse(&std::fs::read_to_string(&self.out).map_err(|e| format!("{}: {e}", self.out.display()))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_statistics() {
        let out = "Statistics:\n\n  Queries sent:         4000\n  Queries completed:    3990 (99.75%)\n  \
                   Queries lost:         10 (0.25%)\n\n  Response codes:       NOERROR 3990 (100.00%)\n";
        assert_eq!(Summary::parse(out).unwrap(), Summary { sent: 4000, completed: 3990, lost: 10 });
        assert!(Summary::parse("Error: cannot open data file").is_err());
    }

    #[test]
    fn rates_and_latencies() {
        let out = "> NOERROR a.com. A 0.000300\n> NXDOMAIN b.com. A 0.000100\n> NOERROR c.com. A 0.000200\n\
                   Statistics:\n\n  Queries sent:         3\n  Queries completed:    3 (100.00%)\n  \
                   Queries lost:         0 (0.00%)\n\n  Run time (s):         1.000191\n  \
                   Queries per second:   2.999427\n\n  \
                   Average Latency (s):  0.000200 (min 0.000100, max 0.000300)\n";
        let s = Stats::parse(out).unwrap();
        assert_eq!(s.summary, Summary { sent: 3, completed: 3, lost: 0 });
        assert_eq!((s.run_seconds, s.qps, s.avg_latency), (1.000191, 2.999427, 0.0002));
        assert_eq!(s.latencies, vec![0.0001, 0.0002, 0.0003]);
        assert_eq!((s.quantile(0.0), s.quantile(0.5), s.quantile(1.0)), (Some(0.0001), Some(0.0002), Some(0.0003)));
        assert_eq!(Stats::default().quantile(0.5), None);
    }
}
