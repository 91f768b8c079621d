//! The DNS clients (dig from BIND, kdig from Knot) and a parser for what they print; and who
//! answered, the filter or the resolver, decided from evidence in the answer.

use crate::{Netns, RESOLVER_V4, RESOLVER_V6, Result, cmd};

/// The SOA MNAME of the filter's NXDOMAIN and NODATA answers.
pub const FILTER_MNAME: &str = "dnsfilter.invalid.";

/// A DNS client program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Dig,
    Kdig,
}

/// How to ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opts {
    /// Send an OPT record (EDNS(0)).
    pub edns: bool,
    /// Send a DNS cookie (RFC 7873).
    pub cookie: bool,
    /// Show a truncated (TC=1) answer instead of retrying over TCP.
    pub ignore_tc: bool,
    /// Seconds to wait for the answer; there is one try.
    pub time: u32,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts { edns: true, cookie: false, ignore_tc: false, time: 2 }
    }
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::Dig => "dig",
            Client::Kdig => "kdig",
        }
    }

    /// The options of this client for `o`.
    fn options(self, o: &Opts) -> Vec<String> {
        let on = |yes: bool, what: &str| format!("+{}{what}", if yes { "" } else { "no" });
        let once = match self {
            Client::Dig => "+tries=1",
            Client::Kdig => "+retry=0",
        };
        vec![
            on(o.edns, "edns"),
            on(o.cookie, "cookie"),
            on(o.ignore_tc, "ignore"),
            format!("+time={}", o.time),
            once.into(),
        ]
    }

    /// The command line, as a person would type it in the client namespace.
    pub fn command_line(self, server: &str, name: &str, rtype: &str, o: &Opts) -> Vec<String> {
        let mut v = vec![self.name().to_string(), format!("@{server}"), name.to_string(), rtype.to_string()];
        v.extend(self.options(o));
        v
    }

    /// Asks `server` for `name`/`rtype` from inside `ns`.
    pub fn query(self, ns: &Netns, server: &str, name: &str, rtype: &str, o: &Opts) -> Result<Reply> {
        let line = self.command_line(server, name, rtype, o);
        let out = cmd::capture(ns.command(&line[0]).args(&line[1..]))?;
        let raw = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok(Reply::parse(&raw))
    }
}

/// A resource record as printed: `name ttl class type data...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: String,
    pub rtype: String,
    /// The RDATA fields, joined by single spaces.
    pub data: String,
}

impl Record {
    fn parse(line: &str) -> Option<Record> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, ttl, _class, rtype, data @ ..] = f.as_slice() else { return None };
        Some(Record { name: name.to_string(), ttl: ttl.to_string(), rtype: rtype.to_string(), data: data.join(" ") })
    }
}

/// What dig or kdig printed, taken apart.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// The RCODE (`NOERROR`, `NXDOMAIN`, ...); `None` when no answer came.
    pub status: Option<String>,
    /// Header flags (`qr`, `aa`, `tc`, ...).
    pub flags: Vec<String>,
    /// The question name echoed in the answer, as printed (case kept).
    pub question: Option<String>,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    /// Whether the answer carried an OPT record.
    pub edns: bool,
    /// The Extended DNS Error, e.g. `16 (Censored)`.
    pub ede: Option<String>,
    /// `UDP` or `TCP`.
    pub transport: Option<String>,
    /// Everything the client printed.
    pub raw: String,
}

/// Who answered a query, and the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    /// The filter: the evidence (its SOA, a stop-page address, an EDE).
    Filter(String),
    /// The resolver: its local data came back.
    Resolver,
    /// No answer before the timeout.
    Nobody,
    /// An answer without evidence either way.
    Unclear,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Who::Filter(_) => "filter",
            Who::Resolver => "resolver",
            Who::Nobody => "nobody",
            Who::Unclear => "unclear",
        })
    }
}

/// The text after `key` on `line`, up to the next `,` or `;`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    Some(rest.split([',', ';']).next().unwrap_or("").trim())
}

/// The lines after the header `;; NAME SECTION:` up to the blank line that ends it.
fn section<'a>(raw: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let header = format!(";; {name} SECTION:");
    raw.lines().skip_while(move |l| l.trim() != header).skip(1).take_while(|l| !l.trim().is_empty())
}

impl Reply {
    /// Parses dig's or kdig's output.
    pub fn parse(raw: &str) -> Reply {
        let mut r = Reply { raw: raw.to_string(), ..Reply::default() };
        for line in raw.lines() {
            let lower = line.to_ascii_lowercase();
            if line.contains("->>HEADER<<-") {
                r.status = field(line, "status: ").map(str::to_string);
            } else if lower.starts_with(";; flags:") {
                r.flags = line[9..].split(';').next().unwrap_or("").split_whitespace().map(str::to_string).collect();
            } else if line.starts_with(";; OPT PSEUDOSECTION:") || line.starts_with(";; EDNS PSEUDOSECTION:") {
                r.edns = true;
            } else if let Some(ede) = line.strip_prefix("; EDE: ").or_else(|| line.strip_prefix(";; EDE: ")) {
                r.ede = Some(ede.trim().to_string());
            } else if let Some(server) = line.strip_prefix(";; SERVER: ").or_else(|| line.strip_prefix(";; From ")) {
                r.transport =
                    ["UDP", "TCP"].into_iter().find(|t| server.contains(&format!("({t})"))).map(str::to_string);
            }
        }
        r.question = section(raw, "QUESTION")
            .next()
            .and_then(|l| l.trim_start_matches(';').split_whitespace().next())
            .map(str::to_string);
        r.answer = section(raw, "ANSWER").filter(|l| !l.starts_with(';')).filter_map(Record::parse).collect();
        r.authority = section(raw, "AUTHORITY").filter(|l| !l.starts_with(';')).filter_map(Record::parse).collect();
        r
    }

    /// Whether the header has flag `flag` (`tc`, `aa`, ...).
    pub fn flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Lines in which the client warns about the answer (or about getting none).
    pub fn warnings(&self) -> Vec<&str> {
        self.raw.lines().filter(|l| l.to_ascii_lowercase().contains("warning")).collect()
    }

    /// The SOA record of the authority section, if any.
    pub fn soa(&self) -> Option<&Record> {
        self.authority.iter().find(|r| r.rtype == "SOA")
    }

    /// The addresses of the answer section (A and AAAA data).
    pub fn addresses(&self) -> Vec<&str> {
        self.answer.iter().filter(|r| r.rtype == "A" || r.rtype == "AAAA").map(|r| r.data.as_str()).collect()
    }

    /// Who answered: the filter when its SOA, one of the `stop_pages` addresses or an EDE is
    /// in the answer; the resolver when its local data is.
    pub fn who(&self, stop_pages: &[&str]) -> Who {
        if self.status.is_none() {
            return Who::Nobody;
        }
        let mut evidence = Vec::new();
        if self.soa().is_some_and(|s| s.data.split(' ').next() == Some(FILTER_MNAME)) {
            evidence.push(format!("SOA {FILTER_MNAME}"));
        }
        if let Some(stop) = self.addresses().into_iter().find(|a| stop_pages.contains(a)) {
            evidence.push(format!("stop page {stop}"));
        }
        if let Some(ede) = &self.ede {
            evidence.push(format!("EDE {ede}"));
        }
        if !evidence.is_empty() {
            return Who::Filter(evidence.join(", "));
        }
        if self.addresses().iter().any(|a| *a == RESOLVER_V4 || *a == RESOLVER_V6) {
            return Who::Resolver;
        }
        Who::Unclear
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dig 9.18, the filter's NXDOMAIN to an EDNS query.
    const DIG_NXDOMAIN: &str = "
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @fd53::2 alloshare.com AAAA +cookie
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 61187
;; flags: qr rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
; EDE: 16 (Censored)
;; QUESTION SECTION:
;AlLoShArE.com.			IN	AAAA

;; AUTHORITY SECTION:
AlLoShArE.com.		300	IN	SOA	dnsfilter.invalid. hostmaster.dnsfilter.invalid. 1 3600 600 86400 300

;; Query time: 0 msec
;; SERVER: fd53::2#53(fd53::2) (UDP)
;; MSG SIZE  rcvd: 129
";

    /// kdig 3.2, the filter's truncated answer without EDNS.
    const KDIG_TC: &str = ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 26219
;; Flags: qr tc rd ra; QUERY: 1; ANSWER: 0; AUTHORITY: 0; ADDITIONAL: 0

;; QUESTION SECTION:
;; allomovies.com.     		IN	AAAA

;; Received 32 B
;; From fd53::2@53(UDP) in 0.1 ms
";

    /// kdig 3.2, Unbound's answer to an EDNS query.
    const KDIG_RESOLVER: &str = ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 42025
;; Flags: qr aa rd ra; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 1

;; EDNS PSEUDOSECTION:
;; Version: 0; flags: ; UDP size: 1232 B; ext-rcode: NOERROR

;; QUESTION SECTION:
;; status.allostreaming.com.		IN	A

;; ANSWER SECTION:
status.allostreaming.com.	300	IN	A	10.99.99.99

;; Received 69 B
;; From 10.53.0.2@53(TCP) in 0.2 ms
";

    #[test]
    fn dig_nxdomain_from_the_filter() {
        let r = Reply::parse(DIG_NXDOMAIN);
        assert_eq!(r.status.as_deref(), Some("NXDOMAIN"));
        assert_eq!(r.flags, ["qr", "rd", "ra"]);
        assert_eq!(r.question.as_deref(), Some("AlLoShArE.com."));
        assert!(r.answer.is_empty() && r.edns && r.warnings().is_empty());
        assert_eq!(r.ede.as_deref(), Some("16 (Censored)"));
        assert_eq!(r.transport.as_deref(), Some("UDP"));
        let soa = r.soa().unwrap();
        assert_eq!((soa.name.as_str(), soa.ttl.as_str()), ("AlLoShArE.com.", "300"));
        assert!(soa.data.starts_with("dnsfilter.invalid. hostmaster.dnsfilter.invalid. 1 "));
        assert_eq!(r.who(&[]), Who::Filter("SOA dnsfilter.invalid., EDE 16 (Censored)".into()));
    }

    #[test]
    fn kdig_truncated_answer_has_no_evidence_but_its_flag() {
        let r = Reply::parse(KDIG_TC);
        assert!(r.flag("tc") && !r.flag("aa") && !r.edns && r.ede.is_none());
        assert_eq!(r.question.as_deref(), Some("allomovies.com."));
        assert_eq!(r.who(&[]), Who::Unclear);
    }

    #[test]
    fn kdig_answer_from_the_resolver() {
        let r = Reply::parse(KDIG_RESOLVER);
        assert!(r.edns && r.ede.is_none());
        assert_eq!(r.addresses(), ["10.99.99.99"]);
        assert_eq!(r.transport.as_deref(), Some("TCP"));
        assert_eq!(r.who(&["192.0.2.80"]), Who::Resolver);
    }

    #[test]
    fn a_stop_page_address_is_evidence() {
        let raw = ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; ANSWER SECTION:\n\
                   allofilms.example.\t300\tIN\tA\t192.0.2.80\n";
        assert_eq!(Reply::parse(raw).who(&["192.0.2.80"]), Who::Filter("stop page 192.0.2.80".into()));
        assert_eq!(Reply::parse(raw).who(&[]), Who::Unclear);
    }

    #[test]
    fn no_answer() {
        let dig = ";; communications error to 10.53.0.2#53: timed out\n;; no servers could be reached\n";
        assert_eq!(Reply::parse(dig).who(&[]), Who::Nobody);
        let kdig =
            ";; WARNING: response timeout for 10.53.0.2@53(UDP)\n;; ERROR: failed to query server 10.53.0.2@53(UDP)\n";
        let r = Reply::parse(kdig);
        assert_eq!((r.who(&[]), r.warnings().len()), (Who::Nobody, 1));
    }

    #[test]
    fn client_options() {
        let o = Opts { edns: false, cookie: true, ignore_tc: true, time: 1 };
        assert_eq!(
            Client::Dig.command_line("10.53.0.2", "x.com", "A", &o),
            ["dig", "@10.53.0.2", "x.com", "A", "+noedns", "+cookie", "+ignore", "+time=1", "+tries=1"]
        );
        assert_eq!(
            Client::Kdig.command_line("fd53::2", "x.com", "AAAA", &Opts::default()),
            ["kdig", "@fd53::2", "x.com", "AAAA", "+edns", "+nocookie", "+noignore", "+time=2", "+retry=0"]
        );
    }
}
