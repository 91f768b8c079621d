//! Canaries: the program is never attached, and no generation is swapped in, until a few frames
//! run through it with `BPF_PROG_TEST_RUN` are handled as the lists say.
//!
//! A verifier may accept the object and still make a program that does not filter: Debian 12's
//! 6.1 pruned 63% of it as dead code, and every blocked name passed as `pass_no_match`. So the
//! daemon keeps a private instance of the same object ([`Rig`]: same bytes, same kernel, so the
//! verifier makes the same program, which [`Rig::same_program`] confirms), whose maps are not
//! pinned. Before each change it installs the generation and the configuration about to be
//! used into that instance, sends the canaries of [`plan`], and reads the instance's own
//! counters: the live counters and per-order hits, which are evidence, never see a canary.
//!
//! The canaries ([`plan`]) fit what is about to be installed: one listed name per action
//! present (a child for a below-only `*.name` entry), over IPv4 with EDNS and over IPv6
//! without, to the first configured DNS port and to a configured resolver when `resolvers` is
//! set; a name that matches nothing; an ARP frame; and UDP to a port that is not a DNS port.
//! [`judge`] checks each outcome independently of the code that built the answer: the
//! verdict, the one counter that moved, the entry's group hit, and for an answer its
//! addresses, ports, lengths and checksums, ID, flags, RCODE, records and Extended DNS Error.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use aya::programs::{TestRun as _, TestRunOptions};
use filter_common::{
    config::{CFG_STOP_V4, CFG_STOP_V6, Config},
    counters::Counter,
    dns::{CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_OPT, TYPE_SOA, to_wire},
    table::{Action, Entry},
};

use crate::{
    daemon::compile::Applied,
    loader::{Filter, Generation, GenerationView, LoadError},
    names,
    table::{Built, Rule, Scope, Stop},
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xca, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xca, 0x02];
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xca, 1);
/// Destinations when no resolver is configured (every destination is filtered).
const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);
const CLIENT_PORT: u16 = 53_000;
/// ID of the first canary query; each next one adds 1.
const FIRST_ID: u16 = 0xca01;
/// Entries of one action tried before that action is declared impossible to probe.
const TRIES: usize = 8;
/// Children tried under a below-only entry (the first not listed itself is used).
const CHILDREN: [&str; 3] = ["canary", "canary-1", "canary-2"];
const RCODE_NOERROR: u8 = 0;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;

/// What a canary sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A DNS query (RD set, QCLASS IN), with an OPT record when `edns`.
    Query { labels: Vec<Vec<u8>>, qtype: u16, edns: bool, id: u16, dst: IpAddr, port: u16 },
    /// An ARP request: not IP.
    Arp,
    /// A UDP datagram of 16 octets to a port that is not a DNS port.
    Udp { dst: IpAddr, port: u16 },
}

/// The records an answer must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    /// No answer, no authority.
    Nothing,
    /// No answer; one SOA in the authority section (NXDOMAIN, NODATA).
    Soa,
    /// One A record with this address.
    A(Ipv4Addr),
    /// One AAAA record with this address.
    Aaaa(Ipv6Addr),
}

/// What the program must do with a canary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// XDP_TX with an answer; `ede` is the INFO-CODE the OPT record must carry (the query had
    /// EDNS) or `None` (no EDE option; no OPT record at all when the query had none).
    Answer { counter: Counter, group: u32, rcode: u8, tc: bool, records: Records, ede: Option<u16> },
    /// XDP_DROP, counted under `drop` and the entry's group.
    Drop { group: u32 },
    /// XDP_PASS with the frame untouched, counted under `counter` (and `group`, for an entry).
    Pass { counter: Counter, group: Option<u32> },
}

impl Expect {
    /// The counter group that must get one hit.
    pub fn group(&self) -> Option<u32> {
        match self {
            Expect::Answer { group, .. } | Expect::Drop { group } => Some(*group),
            Expect::Pass { group, .. } => *group,
        }
    }

    fn verdict(&self) -> u32 {
        match self {
            Expect::Answer { .. } => XDP_TX,
            Expect::Drop { .. } => XDP_DROP,
            Expect::Pass { .. } => XDP_PASS,
        }
    }

    fn counter(&self) -> Counter {
        match self {
            Expect::Answer { counter, .. } | Expect::Pass { counter, .. } => *counter,
            Expect::Drop { .. } => Counter::Drop,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} with {}", verdict_name(self.verdict()), self.counter().name())?;
        if let Expect::Answer { rcode, tc, records, ede, .. } = self {
            write!(f, ", rcode {}", rcode_name(*rcode))?;
            if *tc {
                f.write_str(", TC")?;
            }
            match records {
                Records::Nothing => {}
                Records::Soa => f.write_str(", an SOA")?,
                Records::A(a) => write!(f, ", A {a}")?,
                Records::Aaaa(a) => write!(f, ", AAAA {a}")?,
            }
            if let Some(code) = ede {
                write!(f, ", EDE {code}")?;
            }
        }
        if let Some(g) = self.group() {
            write!(f, " and a hit for group {g}")?;
        }
        Ok(())
    }
}

/// One frame to run, and what must come of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canary {
    /// What it stands for: `nxdomain entry allostreaming.com`, `an unlisted name`, ...
    pub what: String,
    pub sent: Sent,
    pub expect: Expect,
}

impl fmt::Display for Canary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the canary for {}: ", self.what)?;
        match &self.sent {
            Sent::Query { labels, qtype, edns, id, dst, port } => write!(
                f,
                "{} {} over {}{} to {dst} port {port}, ID {id:#06x}",
                names::display(labels),
                qtype_name(*qtype),
                family(dst),
                if *edns { " with EDNS" } else { "" },
            ),
            Sent::Arp => f.write_str("an ARP request"),
            Sent::Udp { dst, port } => write!(f, "UDP over {} to {dst} port {port}", family(dst)),
        }
    }
}

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn qtype_name(t: u16) -> String {
    match t {
        TYPE_A => "A".into(),
        TYPE_AAAA => "AAAA".into(),
        t => format!("TYPE{t}"),
    }
}

fn verdict_name(v: u32) -> String {
    match v {
        0 => "XDP_ABORTED".into(),
        XDP_DROP => "XDP_DROP".into(),
        XDP_PASS => "XDP_PASS".into(),
        XDP_TX => "XDP_TX".into(),
        4 => "XDP_REDIRECT".into(),
        v => format!("verdict {v}"),
    }
}

fn rcode_name(r: u8) -> String {
    match r {
        RCODE_NOERROR => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        RCODE_NXDOMAIN => "NXDOMAIN".into(),
        RCODE_REFUSED => "REFUSED".into(),
        r => format!("RCODE{r}"),
    }
}

/// Why the program may not be used.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("canary failed on this kernel ({kernel}): {canary} expected {expected}; got {got}")]
    Failed { kernel: String, canary: String, expected: String, got: String },
    #[error(
        "on this kernel ({kernel}) the verifier made two different programs of the same object: {what} is \
         {real} for the program to attach and {canary} for its canary instance"
    )]
    Differs { kernel: String, what: &'static str, real: u32, canary: u32 },
    #[error(
        "no canary for the {action} entries: none of the first {tried} resolves to {action} in the generation \
         about to be installed"
    )]
    Uncovered { action: &'static str, tried: usize },
    #[error("the generation in force cannot be read back to run the canaries with")]
    NoGeneration,
    #[error("the canary instance of the program: {0}")]
    Load(#[from] LoadError),
}

/// A listed entry, as far as choosing a canary name goes.
#[derive(Clone, Copy, Debug)]
pub struct Listed<'a> {
    /// Canonical labels, most specific first.
    pub labels: &'a [Vec<u8>],
    pub scope: Scope,
    /// What the kernel does (monitor for a monitor order's blocking entries).
    pub action: Action,
    /// The entry's own stop page (`None`: the configuration's).
    pub stop: Option<Stop>,
}

impl<'a> From<&'a Applied> for Listed<'a> {
    fn from(e: &'a Applied) -> Self {
        Listed { labels: &e.labels, scope: e.scope, action: e.action, stop: e.stop }
    }
}

impl<'a> From<&'a Rule> for Listed<'a> {
    fn from(r: &'a Rule) -> Self {
        Listed { labels: &r.labels, scope: r.scope, action: r.action, stop: r.stop }
    }
}

/// A generation that names can be looked up in as the kernel does.
pub trait Table {
    /// The most specific applicable entry and the index of the label where it matched.
    fn lookup(&self, labels: &[Vec<u8>]) -> Option<(usize, Entry)>;
}

impl Table for Built {
    fn lookup(&self, labels: &[Vec<u8>]) -> Option<(usize, Entry)> {
        Built::lookup(self, labels)
    }
}

impl Table for GenerationView {
    fn lookup(&self, labels: &[Vec<u8>]) -> Option<(usize, Entry)> {
        GenerationView::lookup(self, labels)
    }
}

/// The name to ask for an entry, with the table entry it resolves to: the name itself, or for
/// a below-only entry a child that is not listed itself. `None` if no such name resolves to
/// the entry's action where expected.
fn canary_name(e: &Listed<'_>, table: &(impl Table + ?Sized)) -> Option<(Vec<Vec<u8>>, Entry)> {
    let resolves = |labels: &[Vec<u8>], at: usize| {
        table.lookup(labels).filter(|(k, entry)| *k == at && entry.action == e.action).map(|(_, entry)| entry)
    };
    if e.scope != Scope::Below {
        return resolves(e.labels, 0).map(|entry| (e.labels.to_vec(), entry));
    }
    let wire_len: usize = e.labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
    for child in CHILDREN {
        if wire_len + child.len() + 1 > filter_common::QNAME_MAX || e.labels.len() >= filter_common::MAX_LABELS {
            return None;
        }
        let labels: Vec<Vec<u8>> = std::iter::once(child.as_bytes().to_vec()).chain(e.labels.iter().cloned()).collect();
        if let Some(entry) = resolves(&labels, 1) {
            return Some((labels, entry));
        }
    }
    None
}

/// Where canary queries go: the first port, and per family the first resolver when
/// `resolvers` is set (a family without one is not filtered, so not probed), else a
/// documentation address of each family.
fn destinations(config: &Config) -> Vec<IpAddr> {
    if !config.has_resolvers() {
        return vec![SERVER_V4.into(), SERVER_V6.into()];
    }
    let mut out = Vec::new();
    if config.nresolvers_v4 > 0 {
        out.push(Ipv4Addr::from(config.resolvers_v4[0].to_ne_bytes()).into());
    }
    if config.nresolvers_v6 > 0 {
        let w = config.resolvers_v6[0];
        let mut o = [0u8; 16];
        for (chunk, word) in o.chunks_mut(4).zip(w) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        out.push(Ipv6Addr::from(o).into());
    }
    out
}

/// The QTYPE and the expectation for a query that resolves to `entry`, whose own stop page is
/// `stop`.
fn expect_entry(entry: &Entry, stop: Option<Stop>, config: &Config, edns: bool) -> (u16, Expect) {
    let group = entry.group;
    let ede = if edns { entry.ede().info_code() } else { None };
    let answer = |counter, rcode, tc, records| Expect::Answer { counter, group, rcode, tc, records, ede };
    match entry.action {
        Action::Allow => (TYPE_A, Expect::Pass { counter: Counter::HitAllow, group: Some(group) }),
        Action::Monitor => (TYPE_A, Expect::Pass { counter: Counter::HitMonitor, group: Some(group) }),
        Action::Drop => (TYPE_A, Expect::Drop { group }),
        Action::Nxdomain => (TYPE_A, answer(Counter::AnswerNxdomain, RCODE_NXDOMAIN, false, Records::Soa)),
        Action::Nodata => (TYPE_A, answer(Counter::AnswerNodata, RCODE_NOERROR, false, Records::Soa)),
        Action::Refused => (TYPE_A, answer(Counter::AnswerRefused, RCODE_REFUSED, false, Records::Nothing)),
        Action::Truncate => (TYPE_A, answer(Counter::AnswerTruncate, RCODE_NOERROR, true, Records::Nothing)),
        Action::Redirect => {
            let global = Stop {
                v4: (config.flags & CFG_STOP_V4 != 0).then(|| Ipv4Addr::from(config.stop_v4)),
                v6: (config.flags & CFG_STOP_V6 != 0).then(|| Ipv6Addr::from(config.stop_v6)),
            };
            let stop = stop.unwrap_or(global);
            let (qtype, records) = match (stop.v4, stop.v6) {
                (Some(a), _) => (TYPE_A, Records::A(a)),
                (None, Some(a)) => (TYPE_AAAA, Records::Aaaa(a)),
                (None, None) => (TYPE_A, Records::Soa),
            };
            (qtype, answer(Counter::AnswerRedirect, RCODE_NOERROR, false, records))
        }
    }
}

/// Random labels that resolve to nothing in `table`.
fn unlisted(table: &(impl Table + ?Sized)) -> Vec<Vec<u8>> {
    let mut labels = Vec::new();
    for _ in 0..TRIES {
        let r = crate::table::random_seed();
        labels = vec![format!("canary-{r:016x}").into_bytes(), format!("t{:08x}", r >> 32).into_bytes()];
        if table.lookup(&labels).is_none() {
            break;
        }
    }
    labels
}

/// The canaries for a generation (`table`, with the `entries` it was built from) and the
/// configuration it is about to run with. Refuses when some action present in `entries` has
/// no name that resolves to it in `table`.
pub fn plan<'a>(
    entries: impl IntoIterator<Item = Listed<'a>>,
    table: &(impl Table + ?Sized),
    config: &Config,
) -> Result<Vec<Canary>, CanaryError> {
    /// The entry as listed (`*.name` for below-only), the name asked for it, the table entry
    /// that name resolves to, and the entry's own stop page.
    struct Chosen {
        pattern: String,
        labels: Vec<Vec<u8>>,
        entry: Entry,
        stop: Option<Stop>,
    }
    let mut chosen: [Option<Chosen>; 8] = Default::default();
    let mut tried = [0usize; 8];
    for e in entries {
        let a = e.action as usize;
        if chosen[a].is_some() {
            continue;
        }
        tried[a] += 1;
        if tried[a] <= TRIES {
            chosen[a] = canary_name(&e, table).map(|(labels, entry)| {
                let name = names::display(e.labels);
                let pattern = if e.scope == Scope::Below { format!("*.{name}") } else { name };
                Chosen { pattern, labels, entry, stop: e.stop }
            });
        }
    }
    let mut out = Vec::new();
    let dests = destinations(config);
    let port = config.ports[0];
    let mut id = FIRST_ID;
    let mut query = |labels: &[Vec<u8>], qtype, dst: IpAddr| {
        let q = Sent::Query { labels: labels.to_vec(), qtype, edns: dst.is_ipv4(), id, dst, port };
        id = id.wrapping_add(1);
        q
    };
    for action in Action::ALL {
        let a = action as usize;
        let Some(Chosen { pattern, labels, entry, stop }) = &chosen[a] else {
            if tried[a] > 0 {
                return Err(CanaryError::Uncovered { action: action.name(), tried: tried[a].min(TRIES) });
            }
            continue;
        };
        for dst in &dests {
            let (qtype, expect) = expect_entry(entry, *stop, config, dst.is_ipv4());
            let what = format!("{} entry {pattern}", action.name());
            out.push(Canary { what, sent: query(labels, qtype, *dst), expect });
        }
    }
    let labels = unlisted(table);
    for dst in &dests {
        let expect = Expect::Pass { counter: Counter::PassNoMatch, group: None };
        out.push(Canary { what: "an unlisted name".into(), sent: query(&labels, TYPE_A, *dst), expect });
    }
    out.push(Canary {
        what: "a frame that is not IP".into(),
        sent: Sent::Arp,
        expect: Expect::Pass { counter: Counter::PassNotIp, group: None },
    });
    let ports = &config.ports[..usize::from(config.nports).min(config.ports.len())];
    let other = [123u16, 443].into_iter().chain(1..).find(|p| !ports.contains(p)).unwrap_or(123);
    out.push(Canary {
        what: "UDP that is not DNS".into(),
        sent: Sent::Udp { dst: dests[0], port: other },
        expect: Expect::Pass { counter: Counter::PassNotDnsPort, group: None },
    });
    Ok(out)
}

/// The DNS message of a query.
fn query_message(labels: &[Vec<u8>], qtype: u16, edns: bool, id: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(id.to_be_bytes());
    m.extend([0x01, 0x00]); // RD
    m.extend([0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    m.extend(to_wire(labels));
    m.extend(qtype.to_be_bytes());
    m.extend(CLASS_IN.to_be_bytes());
    if edns {
        // OPT: root owner, UDP size 1232, no extended RCODE, version 0, no flags, no options.
        m.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    m
}

/// Internet checksum of `data` after `seed` (a partial sum).
fn checksum(data: &[u8], seed: u32) -> u16 {
    let mut sum = seed;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Partial sum of the UDP pseudo-header.
fn pseudo_sum(src: IpAddr, dst: IpAddr, udp_len: usize) -> u32 {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend(s.octets());
            p.extend(d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend(s.octets());
            p.extend(d.octets());
        }
        _ => {}
    }
    p.extend([0, 17]);
    p.extend((udp_len as u32).to_be_bytes());
    u32::from(!checksum(&p, 0))
}

/// An Ethernet frame with one UDP datagram, checksums set.
fn udp_frame(macs: ([u8; 6], [u8; 6]), src: IpAddr, dst: IpAddr, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let (src_mac, dst_mac) = macs;
    let udp_len = 8 + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend(ports.0.to_be_bytes());
    udp.extend(ports.1.to_be_bytes());
    udp.extend((udp_len as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(payload);
    let c = checksum(&udp, pseudo_sum(src, dst, udp_len));
    udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    let mut f = Vec::new();
    f.extend(dst_mac);
    f.extend(src_mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend(0x0800u16.to_be_bytes());
            let mut h = vec![0x45, 0];
            h.extend(((20 + udp_len) as u16).to_be_bytes());
            h.extend([0xca, 0x01, 0, 0, 64, 17, 0, 0]);
            h.extend(s.octets());
            h.extend(d.octets());
            let c = checksum(&h, 0);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend(h);
        }
        (s, d) => {
            let o = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            f.extend(0x86ddu16.to_be_bytes());
            f.extend([0x60, 0, 0, 0]);
            f.extend((udp_len as u16).to_be_bytes());
            f.extend([17, 64]);
            f.extend(o(s));
            f.extend(o(d));
        }
    }
    f.extend(udp);
    f
}

fn client_of(dst: &IpAddr) -> IpAddr {
    if dst.is_ipv4() { CLIENT_V4.into() } else { CLIENT_V6.into() }
}

impl Canary {
    /// The frame to send.
    pub fn frame(&self) -> Vec<u8> {
        let macs = (CLIENT_MAC, SERVER_MAC);
        match &self.sent {
            Sent::Query { labels, qtype, edns, id, dst, port } => {
                udp_frame(macs, client_of(dst), *dst, (CLIENT_PORT, *port), &query_message(labels, *qtype, *edns, *id))
            }
            Sent::Udp { dst, port } => udp_frame(macs, client_of(dst), *dst, (CLIENT_PORT, *port), &[0xca; 16]),
            Sent::Arp => {
                let mut f = vec![0xff; 6];
                f.extend(CLIENT_MAC);
                f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
                f.extend(CLIENT_MAC);
                f.extend(CLIENT_V4.octets());
                f.extend([0; 6]);
                f.extend(SERVER_V4.octets());
                f
            }
        }
    }
}

/// What one run of a canary came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub verdict: u32,
    /// Counters that moved, with how much.
    pub counters: Vec<(Counter, u64)>,
    /// Hits of the expected group during the run (`None` when no group is expected).
    pub group_hits: Option<u64>,
    /// The frame after the program.
    pub out: Vec<u8>,
}

impl Observed {
    /// "XDP_PASS with pass_no_match".
    fn summary(&self) -> String {
        let counters = if self.counters.is_empty() {
            "no counter".to_string()
        } else {
            let c: Vec<String> = self
                .counters
                .iter()
                .map(|(c, n)| if *n == 1 { c.name().to_string() } else { format!("{} ({n})", c.name()) })
                .collect();
            c.join(" and ")
        };
        format!("{} with {counters}", verdict_name(self.verdict))
    }
}

/// Checks an outcome against the canary's expectation; the error is what came back, in words.
pub fn judge(canary: &Canary, sent: &[u8], seen: &Observed) -> Result<(), String> {
    let e = &canary.expect;
    if seen.verdict != e.verdict() || seen.counters != [(e.counter(), 1)] {
        return Err(seen.summary());
    }
    if let Some(g) = e.group()
        && seen.group_hits != Some(1)
    {
        return Err(format!("{}, but group {g} counted {} hits", seen.summary(), seen.group_hits.unwrap_or(0)));
    }
    match e {
        Expect::Pass { .. } if seen.out != sent => Err(format!("{}, but the frame was changed", seen.summary())),
        Expect::Answer { rcode, tc, records, ede, .. } => {
            let Sent::Query { edns, id, .. } = &canary.sent else {
                return Err(format!("{}, but only a query can be answered", seen.summary()));
            };
            check_answer(sent, &seen.out, *id, *edns, *rcode, *tc, *records, *ede)
                .map_err(|why| format!("{}, but the answer {why}", seen.summary()))
        }
        _ => Ok(()),
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The IP addresses, ports and DNS message of a UDP frame, after checking its lengths and
/// checksums. The error says what is wrong.
fn open_udp(f: &[u8]) -> Result<(IpAddr, IpAddr, u16, u16, &[u8]), String> {
    let ethertype = be16(f, 12).ok_or("is shorter than an Ethernet header")?;
    let (src, dst, l4) = match ethertype {
        0x0800 => {
            let h = f.get(14..34).ok_or("has a truncated IPv4 header")?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let ip = f.get(14..14 + total).ok_or("is shorter than its IPv4 total length")?;
            if h[0] >> 4 != 4 || ihl < 20 || total < ihl || h[9] != 17 {
                return Err("does not carry UDP in IPv4".into());
            }
            if checksum(&ip[..ihl], 0) != 0 {
                return Err("has a wrong IPv4 header checksum".into());
            }
            let a = |o: usize| IpAddr::from([h[o], h[o + 1], h[o + 2], h[o + 3]]);
            (a(12), a(16), &ip[ihl..])
        }
        0x86dd => {
            let h = f.get(14..54).ok_or("has a truncated IPv6 header")?;
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            if h[0] >> 4 != 6 || h[6] != 17 {
                return Err("does not carry UDP in IPv6".into());
            }
            let a = |o: usize| -> IpAddr {
                let mut x = [0u8; 16];
                x.copy_from_slice(&h[o..o + 16]);
                Ipv6Addr::from(x).into()
            };
            (a(8), a(24), f.get(54..54 + plen).ok_or("is shorter than its IPv6 payload length")?)
        }
        t => return Err(format!("has EtherType {t:#06x}")),
    };
    let ulen = usize::from(be16(l4, 4).ok_or("has a truncated UDP header")?);
    let udp = l4.get(..ulen).filter(|_| ulen >= 8).ok_or("has a wrong UDP length")?;
    // A zero checksum means none, over IPv4 only.
    if (udp[6..8] != [0, 0] || dst.is_ipv6()) && checksum(udp, pseudo_sum(src, dst, ulen)) != 0 {
        return Err("has a wrong UDP checksum".into());
    }
    Ok((src, dst, u16::from_be_bytes([udp[0], udp[1]]), u16::from_be_bytes([udp[2], udp[3]]), &udp[8..]))
}

/// Past a name at `at` (labels, ending with the root or a compression pointer).
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *m.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// One resource record at `at`: (TYPE, RDATA, offset after it).
fn record(m: &[u8], at: usize) -> Option<(u16, &[u8], usize)> {
    let at = skip_name(m, at)?;
    let rtype = be16(m, at)?;
    let rdlen = usize::from(be16(m, at + 8)?);
    let rdata = m.get(at + 10..at + 10 + rdlen)?;
    Some((rtype, rdata, at + 10 + rdlen))
}

/// Checks the answer frame `out` to the query frame `sent`.
#[expect(clippy::too_many_arguments, reason = "the fields of one expectation, spelled out for the check")]
fn check_answer(
    sent: &[u8],
    out: &[u8],
    id: u16,
    edns: bool,
    rcode: u8,
    tc: bool,
    records: Records,
    ede: Option<u16>,
) -> Result<(), String> {
    let (qsrc, qdst, qsport, qdport, query) = open_udp(sent).map_err(|e| format!("(the query {e})"))?;
    let (src, dst, sport, dport, m) = open_udp(out)?;
    if out.get(..6) != sent.get(6..12) || out.get(6..12) != sent.get(..6) {
        return Err("does not swap the Ethernet addresses".into());
    }
    if (src, dst, sport, dport) != (qdst, qsrc, qdport, qsport) {
        return Err(format!("goes from {src} port {sport} to {dst} port {dport}"));
    }
    let header = m.get(..12).ok_or("is shorter than a DNS header")?;
    let got_id = u16::from_be_bytes([header[0], header[1]]);
    if got_id != id {
        return Err(format!("has ID {got_id:#06x}"));
    }
    let (hi, lo) = (header[2], header[3]);
    if hi & 0x80 == 0 || hi & 0x78 != 0 {
        return Err("is not a response to a standard query (QR, OPCODE)".into());
    }
    if lo & 0x0f != rcode {
        return Err(format!("has rcode {}", rcode_name(lo & 0x0f)));
    }
    if (hi & 0x02 != 0) != tc {
        return Err(format!("has TC={}", u8::from(!tc)));
    }
    let count = |i: usize| be16(m, 4 + 2 * i).unwrap_or(0);
    let qend = skip_name(query, 12).map(|e| e + 4).ok_or("(the query has no question)")?;
    if count(0) != 1 || m.get(12..qend) != query.get(12..qend) {
        return Err("does not repeat the question".into());
    }
    let (an, ns) = match records {
        Records::Nothing => (0, 0),
        Records::Soa => (0, 1),
        Records::A(_) | Records::Aaaa(_) => (1, 0),
    };
    if (count(1), count(2), count(3)) != (an, ns, u16::from(edns)) {
        return Err(format!("has {} answer, {} authority and {} additional records", count(1), count(2), count(3)));
    }
    let mut at = qend;
    let mut next = || {
        let r = record(m, at).ok_or_else(|| format!("has a malformed record at offset {at}"))?;
        at = r.2;
        Ok::<_, String>((r.0, r.1))
    };
    match records {
        Records::Nothing => {}
        Records::Soa => {
            let (t, _) = next()?;
            if t != TYPE_SOA {
                return Err(format!("has a type {t} record where the SOA should be"));
            }
        }
        Records::A(a) => {
            let (t, rdata) = next()?;
            if t != TYPE_A || rdata != a.octets() {
                return Err(format!("answers type {t} with {rdata:?}"));
            }
        }
        Records::Aaaa(a) => {
            let (t, rdata) = next()?;
            if t != TYPE_AAAA || rdata != a.octets() {
                return Err(format!("answers type {t} with {rdata:?}"));
            }
        }
    }
    if edns {
        let (t, rdata) = next()?;
        if t != TYPE_OPT {
            return Err(format!("has a type {t} record where the OPT should be"));
        }
        let got = (rdata.len() == 6 && rdata[..4] == [0, 15, 0, 2]).then(|| u16::from_be_bytes([rdata[4], rdata[5]]));
        if got != ede {
            let show = |c: Option<u16>| c.map_or("no EDE".to_string(), |c| format!("EDE {c}"));
            return Err(format!("carries {} (options {rdata:?})", show(got)));
        }
    }
    Ok(())
}

/// Alters the canaries before they run; for tests (a deliberately wrong expectation).
pub type Tamper = fn(&mut Canary);

/// The private instance of the program that canaries run through: loaded from the same
/// object, with maps of its own (not pinned), kept for the daemon's life so that later checks
/// need no second verification.
pub struct Rig {
    filter: Filter,
    kernel: String,
    tamper: Option<Tamper>,
}

impl Rig {
    /// Loads the instance.
    pub fn load() -> Result<Rig, LoadError> {
        Ok(Rig { filter: Filter::load()?, kernel: crate::probe::kernel_release(), tamper: None })
    }

    /// `uname -r` of the kernel the canaries run on.
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// The instance (its counters are the canaries' own).
    pub fn filter(&mut self) -> &mut Filter {
        &mut self.filter
    }

    /// Sets a function that alters every canary before it runs (tests only).
    pub fn set_tamper(&mut self, tamper: Option<Tamper>) {
        self.tamper = tamper;
    }

    /// Refuses when the verifier made a different program of the same object for `real`
    /// (translated length, and verified instructions where the kernel reports them): the
    /// canaries would then say nothing about it.
    pub fn same_program(&mut self, real: &mut Filter) -> Result<(), CanaryError> {
        let theirs = real.program()?.info().map_err(LoadError::from)?;
        let ours = self.filter.program()?.info().map_err(LoadError::from)?;
        let pairs = [
            ("the translated length", theirs.size_translated(), ours.size_translated()),
            (
                "the count of verified instructions",
                theirs.verified_instruction_count(),
                ours.verified_instruction_count(),
            ),
        ];
        for (what, real, canary) in pairs {
            if let (Some(real), Some(canary)) = (real, canary)
                && real != canary
            {
                return Err(CanaryError::Differs { kernel: self.kernel.clone(), what, real, canary });
            }
        }
        Ok(())
    }

    /// Keeps `generation` in the instance's table (and no other).
    pub fn hold(&mut self, generation: &Generation) -> Result<(), LoadError> {
        self.filter.install_prepared(generation)
    }

    /// Runs every canary through the instance with `generation` and `config` installed.
    pub fn check(&mut self, generation: &Generation, config: &Config, canaries: &[Canary]) -> Result<(), CanaryError> {
        self.filter.install_prepared(generation)?;
        self.filter.set_config(config)?;
        for c in canaries {
            let mut c = c.clone();
            if let Some(t) = self.tamper {
                t(&mut c);
            }
            let sent = c.frame();
            let kernel = self.kernel.clone();
            let failed = |got: String| CanaryError::Failed {
                kernel: kernel.clone(),
                canary: c.to_string(),
                expected: c.expect.to_string(),
                got,
            };
            let seen =
                self.run(&sent, c.expect.group()).map_err(|e| failed(format!("BPF_PROG_TEST_RUN failed: {e}")))?;
            judge(&c, &sent, &seen).map_err(failed)?;
        }
        Ok(())
    }

    /// Runs one frame; reads the counters and the hits of `group` around it.
    fn run(&mut self, frame: &[u8], group: Option<u32>) -> Result<Observed, LoadError> {
        let before = self.filter.counters()?;
        let hits = |f: &Filter| group.map(|g| f.group_hits(g)).transpose();
        let hits_before = hits(&self.filter)?;
        let mut out = vec![0u8; frame.len() + 1024];
        let opts = TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), repeat: 1, ..Default::default() };
        let r = self.filter.program()?.test_run(opts)?;
        out.truncate(r.data_size_out as usize);
        let after = self.filter.counters()?;
        let counters =
            after.iter().zip(&before).filter(|(a, b)| a.1 != b.1).map(|(a, b)| (a.0, a.1.wrapping_sub(b.1))).collect();
        let group_hits = match (hits(&self.filter)?, hits_before) {
            (Some(a), Some(b)) => Some(a.wrapping_sub(b)),
            _ => None,
        };
        Ok(Observed { verdict: r.return_value, counters, group_hits, out })
    }
}

#[cfg(test)]
mod tests {
    use filter_common::{dns::parse_text_name, table::Ede};

    use super::*;
    use crate::{config::Settings, table};

    fn rule(name: &str, scope: Scope, action: Action, group: u32) -> Rule {
        Rule { labels: parse_text_name(name).unwrap(), scope, action, ede: Ede::Censored, group, stop: None }
    }

    /// One entry per action; truncate as a below-only entry, redirect with its own stop page.
    fn rules() -> Vec<Rule> {
        let own = Stop { v4: Some(Ipv4Addr::new(203, 0, 113, 7)), v6: None };
        vec![
            rule("nx.example", Scope::Subtree, Action::Nxdomain, 1),
            rule("nodata.example", Scope::Exact, Action::Nodata, 2),
            rule("refused.example", Scope::Subtree, Action::Refused, 3),
            rule("tc.example", Scope::Below, Action::Truncate, 4),
            Rule { stop: Some(own), ..rule("stop.example", Scope::Subtree, Action::Redirect, 5) },
            rule("dropped.example", Scope::Subtree, Action::Drop, 6),
            rule("watched.example", Scope::Subtree, Action::Monitor, 7),
            rule("ok.nx.example", Scope::Subtree, Action::Allow, 8),
        ]
    }

    fn built(rules: &[Rule]) -> Built {
        table::build(rules, table::random_seed(), 1, 1000).unwrap()
    }

    fn config(s: Settings) -> Config {
        s.to_config().unwrap()
    }

    fn canaries_for(rules: &[Rule], cfg: &Config) -> Vec<Canary> {
        plan(rules.iter().map(Listed::from), &built(rules), cfg).unwrap()
    }

    fn query_of(c: &Canary) -> (String, u16, IpAddr, u16) {
        match &c.sent {
            Sent::Query { labels, qtype, dst, port, .. } => (names::display(labels), *qtype, *dst, *port),
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn the_plan_covers_every_action_over_both_families() {
        let rules = rules();
        let cfg = config(Settings::default());
        let c = canaries_for(&rules, &cfg);
        assert_eq!(c.len(), 8 * 2 + 2 + 2, "{c:#?}");
        for action in Action::ALL {
            let mine: Vec<&Canary> =
                c.iter().filter(|c| c.what.starts_with(&format!("{} entry", action.name()))).collect();
            assert_eq!(mine.len(), 2, "{action:?}");
            assert_eq!(mine.iter().map(|c| query_of(c).2.is_ipv4()).collect::<Vec<_>>(), [true, false]);
        }
        let (name, ..) = query_of(c.iter().find(|c| c.what.starts_with("truncate")).unwrap());
        assert_eq!(name, "canary.tc.example", "a below-only entry is asked for a child");
        let redirect = c.iter().find(|c| c.what.starts_with("redirect")).unwrap();
        assert_eq!(query_of(redirect).1, TYPE_A);
        assert!(
            matches!(redirect.expect, Expect::Answer { records: Records::A(a), group: 5, .. } if a == Ipv4Addr::new(203, 0, 113, 7)),
            "the entry's own stop page: {redirect:?}"
        );
        let nx = c.iter().find(|c| c.what.starts_with("nxdomain")).unwrap();
        assert!(matches!(nx.expect, Expect::Answer { ede: Some(16), records: Records::Soa, .. }), "{nx:?}");
        let nx6 = c.iter().filter(|c| c.what.starts_with("nxdomain")).nth(1).unwrap();
        assert!(matches!(nx6.expect, Expect::Answer { ede: None, .. }), "no EDNS over IPv6: {nx6:?}");
        let b = built(&rules);
        let unlisted: Vec<&Canary> = c.iter().filter(|c| c.what == "an unlisted name").collect();
        assert_eq!(unlisted.len(), 2);
        let Sent::Query { labels, .. } = &unlisted[0].sent else { panic!() };
        assert_eq!(b.lookup(labels), None, "the unlisted name matches nothing");
        assert!(c.iter().any(|c| c.sent == Sent::Arp));
        assert!(c.iter().any(|c| matches!(c.sent, Sent::Udp { port: 123, .. })));
        let ids: Vec<u16> =
            c.iter().filter_map(|c| if let Sent::Query { id, .. } = c.sent { Some(id) } else { None }).collect();
        assert!(ids.windows(2).all(|w| w[0] != w[1]), "one ID per query");
    }

    #[test]
    fn the_frames_fit_the_ports_and_the_resolvers() {
        let rules = rules();
        let s = Settings {
            ports: vec![5353, 53, 123],
            resolvers: vec!["192.0.2.53".parse().unwrap(), "192.0.2.54".parse().unwrap()],
            ..Settings::default()
        };
        let c = canaries_for(&rules, &config(s));
        for q in c.iter().filter(|c| matches!(c.sent, Sent::Query { .. })) {
            let (_, _, dst, port) = query_of(q);
            assert_eq!((dst, port), ("192.0.2.53".parse().unwrap(), 5353), "{q}");
        }
        assert!(c.iter().any(|c| matches!(c.sent, Sent::Udp { port: 443, .. })), "a port that is not configured");

        let s = Settings { resolvers: vec!["2001:db8::53".parse().unwrap()], ..Settings::default() };
        let c = canaries_for(&rules, &config(s));
        let dsts: Vec<IpAddr> =
            c.iter().filter(|c| matches!(c.sent, Sent::Query { .. })).map(|c| query_of(c).2).collect();
        assert!(dsts.iter().all(|d| *d == "2001:db8::53".parse::<IpAddr>().unwrap()), "{dsts:?}");

        for canary in &c {
            let f = canary.frame();
            match canary.sent {
                Sent::Arp => assert_eq!(f[12..14], [0x08, 0x06]),
                _ => {
                    let (src, dst, sport, _, payload) = open_udp(&f).unwrap();
                    assert_eq!((src, sport), (CLIENT_V6.into(), CLIENT_PORT));
                    assert_eq!(dst, "2001:db8::53".parse::<IpAddr>().unwrap());
                    if let Sent::Query { labels, qtype, .. } = &canary.sent {
                        let q = filter_common::dns::parse_question(payload, 7).unwrap();
                        let keys = filter_common::dns::text_suffix_keys(labels, 7);
                        assert_eq!((q.tail.qtype, q.keys), (*qtype, keys), "{canary}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_below_entry_is_asked_for_a_child_that_is_not_listed_itself() {
        let rules = vec![
            rule("w.example", Scope::Below, Action::Nxdomain, 1),
            rule("canary.w.example", Scope::Subtree, Action::Allow, 2),
        ];
        let c = canaries_for(&rules, &config(Settings::default()));
        let nx = c.iter().find(|c| c.what.starts_with("nxdomain")).unwrap();
        assert_eq!(query_of(nx).0, "canary-1.w.example");
        assert_eq!(nx.what, "nxdomain entry *.w.example");
    }

    #[test]
    fn an_action_that_no_name_resolves_to_is_refused() {
        let rules = vec![rule("a.example", Scope::Subtree, Action::Nxdomain, 1)];
        let b = built(&rules);
        // The lists say refused; the generation says nxdomain.
        let listed = [Listed { action: Action::Refused, ..Listed::from(&rules[0]) }];
        let e = plan(listed, &b, &config(Settings::default())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no canary for the refused entries: none of the first 1 resolves to refused in the generation about to \
             be installed"
        );
    }

    /// An answer to `c` as the kernel would write it, from `expect` (and `edit` after).
    fn reply(c: &Canary, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let sent = c.frame();
        let (src, dst, sport, dport, q) = open_udp(&sent).unwrap();
        let qend = skip_name(q, 12).unwrap() + 4;
        let Expect::Answer { rcode, tc, records, ede, .. } = c.expect else { panic!("not an answer") };
        let edns = q[11] == 1;
        let mut m = q[..qend].to_vec();
        m[2] = 0x80 | if tc { 0x02 } else { 0 } | (q[2] & 1);
        m[3] = 0x80 | rcode;
        let (an, ns) = match records {
            Records::Nothing => (0u8, 0u8),
            Records::Soa => (0, 1),
            _ => (1, 0),
        };
        m[4..12].copy_from_slice(&[0, 1, 0, an, 0, ns, 0, u8::from(edns)]);
        let mut rr = |rtype: u16, rdata: &[u8]| {
            m.extend([0xc0, 12]);
            m.extend(rtype.to_be_bytes());
            m.extend([0, 1, 0, 0, 1, 44]);
            m.extend((rdata.len() as u16).to_be_bytes());
            m.extend(rdata);
        };
        match records {
            Records::Nothing => {}
            Records::Soa => {
                let cfg = Settings::default().to_config().unwrap();
                let soa = &cfg.soa_rr[..usize::from(cfg.soa_rr_len)];
                rr(TYPE_SOA, &soa[10..]);
            }
            Records::A(a) => rr(TYPE_A, &a.octets()),
            Records::Aaaa(a) => rr(TYPE_AAAA, &a.octets()),
        }
        if edns {
            m.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
            match ede {
                Some(code) => {
                    m.extend([0, 6, 0, 15, 0, 2]);
                    m.extend(code.to_be_bytes());
                }
                None => m.extend([0, 0]),
            }
        }
        edit(&mut m);
        udp_frame((SERVER_MAC, CLIENT_MAC), dst, src, (dport, sport), &m)
    }

    fn seen(verdict: u32, counter: Counter, out: Vec<u8>) -> Observed {
        Observed { verdict, counters: vec![(counter, 1)], group_hits: Some(1), out }
    }

    fn canary(what: &str) -> Canary {
        let s = Settings { stop_v6: Some("2001:db8::80".parse().unwrap()), ..Settings::default() };
        canaries_for(&rules(), &config(s)).into_iter().find(|c| c.what.starts_with(what)).unwrap()
    }

    #[test]
    fn correct_outcomes_pass() {
        for what in ["nxdomain", "nodata", "refused", "truncate", "redirect"] {
            let c = canary(what);
            let out = reply(&c, |_| {});
            assert_eq!(judge(&c, &c.frame(), &seen(XDP_TX, c.expect.counter(), out)), Ok(()), "{c}");
        }
        let c = canary("drop");
        assert_eq!(judge(&c, &c.frame(), &seen(XDP_DROP, Counter::Drop, Vec::new())), Ok(()));
        for (what, counter) in [("monitor", Counter::HitMonitor), ("allow", Counter::HitAllow)] {
            let c = canary(what);
            assert_eq!(judge(&c, &c.frame(), &seen(XDP_PASS, counter, c.frame())), Ok(()));
        }
        let c = canary("an unlisted name");
        let o = Observed { group_hits: None, ..seen(XDP_PASS, Counter::PassNoMatch, c.frame()) };
        assert_eq!(judge(&c, &c.frame(), &o), Ok(()));
    }

    #[test]
    fn a_blocked_name_that_passes_is_refused_with_the_kernel_and_the_canary_named() {
        let c = canary("nxdomain");
        let o = Observed { group_hits: Some(0), ..seen(XDP_PASS, Counter::PassNoMatch, c.frame()) };
        let got = judge(&c, &c.frame(), &o).unwrap_err();
        let e = CanaryError::Failed {
            kernel: "6.1.0-18-amd64".into(),
            canary: c.to_string(),
            expected: c.expect.to_string(),
            got,
        };
        assert_eq!(
            e.to_string(),
            "canary failed on this kernel (6.1.0-18-amd64): the canary for nxdomain entry nx.example: nx.example A \
             over IPv4 with EDNS to 198.51.100.53 port 53, ID 0xca05 expected XDP_TX with answer_nxdomain, rcode \
             NXDOMAIN, an SOA, EDE 16 and a hit for group 1; got XDP_PASS with pass_no_match"
        );
    }

    #[test]
    fn every_wrong_detail_is_named() {
        let c = canary("nxdomain");
        let sent = c.frame();
        let tx = |out| seen(XDP_TX, Counter::AnswerNxdomain, out);
        let wrong = |o: Observed| judge(&c, &sent, &o).unwrap_err();
        assert_eq!(
            wrong(tx(reply(&c, |m| m[3] = 0x80))),
            "XDP_TX with answer_nxdomain, but the answer has rcode NOERROR"
        );
        assert_eq!(wrong(tx(reply(&c, |m| m[1] ^= 1))), "XDP_TX with answer_nxdomain, but the answer has ID 0xca04");
        assert_eq!(wrong(tx(reply(&c, |m| m[2] |= 2))), "XDP_TX with answer_nxdomain, but the answer has TC=1");
        let no_ede = reply(&c, |m| {
            let n = m.len();
            m.truncate(n - 8);
            m.extend([0, 0]);
        });
        assert_eq!(wrong(tx(no_ede)), "XDP_TX with answer_nxdomain, but the answer carries no EDE (options [])");
        let mut bad_sum = reply(&c, |_| {});
        let n = bad_sum.len();
        bad_sum[n - 1] ^= 0xff;
        assert_eq!(wrong(tx(bad_sum)), "XDP_TX with answer_nxdomain, but the answer has a wrong UDP checksum");
        assert_eq!(
            wrong(tx(sent.clone())),
            "XDP_TX with answer_nxdomain, but the answer does not swap the Ethernet addresses"
        );
        let o = Observed { counters: vec![(Counter::AnswerNxdomain, 1), (Counter::PassNoMatch, 1)], ..tx(Vec::new()) };
        assert_eq!(wrong(o), "XDP_TX with answer_nxdomain and pass_no_match");
        let o = Observed { group_hits: Some(0), ..tx(reply(&c, |_| {})) };
        assert_eq!(wrong(o), "XDP_TX with answer_nxdomain, but group 1 counted 0 hits");

        let r = canary("redirect");
        let out = reply(&r, |m| {
            let n = m.len();
            m[n - 18] = 99; // the last octet of the A record, before the OPT with its EDE (17 octets)
        });
        assert_eq!(
            judge(&r, &r.frame(), &seen(XDP_TX, Counter::AnswerRedirect, out)).unwrap_err(),
            "XDP_TX with answer_redirect, but the answer answers type 1 with [203, 0, 113, 99]"
        );
        let m = canary("monitor");
        let mut changed = m.frame();
        changed[20] ^= 1;
        assert_eq!(
            judge(&m, &m.frame(), &seen(XDP_PASS, Counter::HitMonitor, changed)).unwrap_err(),
            "XDP_PASS with hit_monitor, but the frame was changed"
        );
        let d = canary("drop");
        let o = Observed { counters: vec![], ..seen(XDP_PASS, Counter::Drop, d.frame()) };
        assert_eq!(judge(&d, &d.frame(), &o).unwrap_err(), "XDP_PASS with no counter");
    }
}
