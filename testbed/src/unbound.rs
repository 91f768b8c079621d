//! Unbound as the ISP's resolver in the edge namespace. It answers every name itself, from
//! local data: any query that gets past the filter shows up as the resolver's answer
//! ([`RESOLVER_V4`], [`RESOLVER_V6`]), in its query log and in its query counter.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{Child, EDGE_V4, EDGE_V6, Netns, Result, cmd};

/// Unbound's answer to every A query.
pub const RESOLVER_V4: &str = "10.99.99.99";
/// Unbound's answer to every AAAA query.
pub const RESOLVER_V6: &str = "fd99::99";

/// A running Unbound, killed when dropped.
pub struct Unbound {
    child: Child,
    conf: PathBuf,
    log: PathBuf,
}

/// One line of Unbound's query log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedQuery {
    /// The client address.
    pub client: String,
    /// The query name as received (case kept), with its final dot.
    pub name: String,
    pub rtype: String,
}

impl LoggedQuery {
    /// Parses a `log-queries` line: `[TIME] unbound[PID:TID] info: CLIENT NAME TYPE CLASS`.
    pub fn parse(line: &str) -> Option<LoggedQuery> {
        let fields: Vec<&str> = line.split(" info: ").nth(1)?.split_whitespace().collect();
        let [client, name, rtype, "IN"] = fields.as_slice() else { return None };
        Some(LoggedQuery { client: client.to_string(), name: name.to_string(), rtype: rtype.to_string() })
    }

    /// Whether the query was for `name` (any case, with or without the final dot).
    pub fn is(&self, name: &str) -> bool {
        self.name.trim_end_matches('.').eq_ignore_ascii_case(name.trim_end_matches('.'))
    }

    /// Whether the query was for `domain` or a name below it (on a label boundary).
    pub fn is_under(&self, domain: &str) -> bool {
        let (name, domain) =
            (self.name.trim_end_matches('.').to_ascii_lowercase(), domain.trim_end_matches('.').to_ascii_lowercase());
        name == domain || name.ends_with(&format!(".{domain}"))
    }
}

fn conf(dir: &Path, log_queries: bool, extra: &str) -> String {
    let dir = dir.display();
    let log_queries = if log_queries { "yes" } else { "no" };
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
  logfile: "{dir}/unbound.log"
  log-queries: {log_queries}
  verbosity: 0
  # Every name is answered here: a query that leaks past the filter cannot go unnoticed.
  local-zone: "." redirect
  local-data: ". 300 IN A {RESOLVER_V4}"
  local-data: ". 300 IN AAAA {RESOLVER_V6}"
{extra}remote-control:
  control-enable: yes
  control-interface: {dir}/unbound.ctl
  control-use-cert: no
"#
    )
}

impl Unbound {
    /// Writes `dir/unbound.conf`, starts Unbound in `edge` and waits until it serves.
    pub fn start(edge: &Netns, dir: &Path) -> Result<Unbound> {
        Unbound::start_with(edge, dir, true, "")
    }

    /// As [`Unbound::start`], with the query log on or off (off for load: one log line per
    /// query would cost more than the answer) and `extra` lines appended to the `server:`
    /// clause (each indented and ending with a newline), e.g. `local-zone:` entries.
    pub fn start_with(edge: &Netns, dir: &Path, log_queries: bool, extra: &str) -> Result<Unbound> {
        let conf = dir.join("unbound.conf");
        std::fs::write(&conf, self::conf(dir, log_queries, extra))
            .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let mut command = edge.command("unbound");
        command.arg("-d").arg("-c").arg(&conf);
        let mut u = Unbound {
            child: Netns::spawn(&mut command, &dir.join("unbound.stderr.log"))?,
            conf,
            log: dir.join("unbound.log"),
        };
        crate::wait_for(Duration::from_secs(10), "Unbound to serve", || {
            if let Some(status) = u.child.exited() {
                let stderr = std::fs::read_to_string(dir.join("unbound.stderr.log")).unwrap_or_default();
                return Err(format!("unbound exited ({status}): {}", stderr.trim()));
            }
            Ok(cmd::capture(&mut u.control("status"))?.status.success())
        })?;
        Ok(u)
    }

    /// `unbound-control -c CONF VERB`.
    fn control(&self, verb: &str) -> Command {
        let mut c = Command::new("unbound-control");
        c.arg("-c").arg(&self.conf).arg(verb);
        c
    }

    /// The process id (Unbound runs in the foreground, so this is Unbound itself).
    pub fn pid(&self) -> libc::pid_t {
        self.child.pid()
    }

    /// The configuration file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// `total.num.queries` from `unbound-control stats_noreset`: every query Unbound received.
    pub fn total_queries(&self) -> Result<u64> {
        let stats = cmd::run(&mut self.control("stats_noreset"))?;
        stats
            .lines()
            .find_map(|l| l.strip_prefix("total.num.queries="))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no total.num.queries in unbound-control stats_noreset:\n{stats}"))
    }

    /// The query log (`log-queries: yes`).
    pub fn query_log(&self) -> Result<Vec<LoggedQuery>> {
        let text = std::fs::read_to_string(&self.log).map_err(|e| format!("{}: {e}", self.log.display()))?;
        Ok(text.lines().filter_map(LoggedQuery::parse).collect())
    }

    /// How many logged queries were for `name` (any case, with or without the final dot).
    pub fn count(&self, name: &str) -> Result<usize> {
        Ok(self.query_log()?.iter().filter(|q| q.is(name)).count())
    }

    /// The logged queries for `domain` or a name below it.
    pub fn queries_under(&self, domain: &str) -> Result<Vec<LoggedQuery>> {
        Ok(self.query_log()?.into_iter().filter(|q| q.is_under(domain)).collect())
    }

    /// Lets Unbound run on after the guard is gone.
    pub fn keep(self) {
        self.child.keep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_log_lines() {
        let q = LoggedQuery::parse("[1795942531] unbound[8730:0] info: fd53::1 www.AlLo.com. AAAA IN").unwrap();
        assert_eq!(q, LoggedQuery { client: "fd53::1".into(), name: "www.AlLo.com.".into(), rtype: "AAAA".into() });
        assert!(q.is("WWW.allo.com") && q.is("www.allo.com.") && !q.is("allo.com"));
        assert!(q.is_under("allo.com") && q.is_under("ALLO.COM.") && q.is_under("www.allo.com"));
        assert!(!q.is_under("lo.com") && !q.is_under("w.allo.com"));
        assert_eq!(LoggedQuery::parse("[1795942530] unbound[8730:0] info: start of service (unbound 1.17.1)."), None);
        assert_eq!(LoggedQuery::parse("[1795942531] unbound[8730:0] info: 10.53.0.1 x.com. TXT CH"), None);
    }

    #[test]
    fn the_config_answers_every_name_and_logs_and_counts_queries() {
        let c = conf(Path::new("/tmp/x"), true, "");
        for line in [
            "local-zone: \".\" redirect",
            "local-data: \". 300 IN A 10.99.99.99\"",
            "local-data: \". 300 IN AAAA fd99::99\"",
            "log-queries: yes",
            "logfile: \"/tmp/x/unbound.log\"",
            "control-interface: /tmp/x/unbound.ctl",
            "control-use-cert: no",
        ] {
            assert!(c.lines().any(|l| l.trim() == line), "{line} missing:\n{c}");
        }
    }

    #[test]
    fn extra_lines_go_into_the_server_clause() {
        let c = conf(Path::new("/tmp/x"), false, "  local-zone: \"a.com.\" always_nxdomain\n");
        assert!(c.contains("  log-queries: no\n"), "{c}");
        let zone = c.find("local-zone: \"a.com.\"").unwrap();
        assert!(zone < c.find("remote-control:").unwrap(), "{c}");
    }
}
