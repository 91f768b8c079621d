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
}
