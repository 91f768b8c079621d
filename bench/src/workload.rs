//! Synthetic lists and the frames pushed through the program.
//!
//! A list of N entries looks like a real blocklist: 70 % registrable names (`sld.tld`), 20 %
//! one label below one (`www.sld.tld`), 10 % two labels below (`a.b.sld.tld`), under ten
//! common top-level domains. Entry `i` is a pure function of the seed and `i`, so a changed list
//! and the queries that hit it can be derived without keeping the list around. Second-level
//! labels are letters followed by the decimal index, so they are distinct; generated names
//! never contain a `-`, so names with one (the fixed classes, the random query labels) are
//! never listed by accident.

use filter_common::table::{Action, Ede};
use filter_tests::frames::{Edns, Frame, Ip, Query};
use filter_user::table::{Rule, Scope};

/// Top-level domains of the generated entries and queries.
pub const TLDS: [&str; 10] = ["com", "net", "org", "info", "ru", "de", "io", "xyz", "top", "biz"];
const SUBS: [&str; 8] = ["www", "ads", "cdn", "m", "static", "api", "img", "track"];

/// The fixed entries every list carries, for the per-class measurements.
pub const BLOCKED_NX: &str = "blocked-nx.com";
pub const BLOCKED_REDIRECT: &str = "blocked-redirect.com";
pub const BLOCKED_DROP: &str = "blocked-drop.com";
/// A listed name whose parent is therefore a marker (`sibling-parent.com`).
pub const LISTED_CHILD: &str = "ads.sibling-parent.com";

/// The stop page of `redirect` answers.
pub const STOP_V4: &str = "192.0.2.80";
pub const STOP_V6: &str = "2001:db8::80";

/// splitmix64: small, fast, and good enough to scatter names.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        filter_common::hash::fmix(self.0)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for the sizes used).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` random lower-case letters.
    pub fn letters(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(b'a' + self.below(26) as u8)).collect()
    }

    /// A random label for a query: ten letters then `-q`, so never a listed label, and its
    /// first eight octets (what the cold calibration programs read) are random.
    pub fn query_label(&mut self) -> String {
        format!("{}-q", self.letters(10))
    }
}

/// The labels of entry `i` of the list made with `seed`, most specific first.
pub fn entry_labels(seed: u64, i: u64) -> Vec<String> {
    let mut r = Rng::new(seed ^ i.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let tld = TLDS[r.below(TLDS.len() as u64) as usize];
    let sld_len = 4 + r.below(6) as usize;
    let sld = format!("{}{i}", r.letters(sld_len));
    let kind = r.below(10);
    let mut labels = Vec::with_capacity(4);
    if kind == 9 {
        labels.push(SUBS[r.below(SUBS.len() as u64) as usize].to_string());
    }
    if kind >= 7 {
        labels.push(SUBS[r.below(SUBS.len() as u64) as usize].to_string());
    }
    labels.push(sld);
    labels.push(tld.to_string());
    labels
}

fn rule(labels: &[String], action: Action) -> Rule {
    Rule {
        labels: labels.iter().map(|l| l.as_bytes().to_vec()).collect(),
        scope: Scope::Subtree,
        action,
        ede: Ede::Censored,
        group: 0,
        stop: None,
    }
}

fn split(name: &str) -> Vec<String> {
    name.split('.').map(str::to_string).collect()
}

/// The fixed entries.
pub fn fixed_rules() -> Vec<Rule> {
    vec![
        rule(&split(BLOCKED_NX), Action::Nxdomain),
        rule(&split(BLOCKED_REDIRECT), Action::Redirect),
        rule(&split(BLOCKED_DROP), Action::Drop),
        rule(&split(LISTED_CHILD), Action::Nxdomain),
    ]
}

/// A list of `n` entries (the fixed ones included): generated entries `0..n - 4`.
pub fn list(seed: u64, n: usize) -> Vec<Rule> {
    let generated = n.saturating_sub(fixed_rules().len()) as u64;
    let mut rules: Vec<Rule> = (0..generated).map(|i| rule(&entry_labels(seed, i), Action::Nxdomain)).collect();
    rules.extend(fixed_rules());
    rules
}

/// The list `list(seed, n)` after `changes` changes: the first `changes / 2` of a random
/// choice of generated entries are removed, and `changes - changes / 2` new entries (indices
/// `n..`) are added. Returns the list, one removed name and one added name.
pub fn changed_list(seed: u64, n: usize, changes: usize) -> (Vec<Rule>, Vec<String>, Vec<String>) {
    let generated = n.saturating_sub(fixed_rules().len()) as u64;
    let mut r = Rng::new(seed ^ 0x0C4A_66E5);
    let mut removed = std::collections::HashSet::new();
    while removed.len() < changes / 2 {
        removed.insert(r.below(generated.max(1)));
    }
    let mut rules: Vec<Rule> = (0..generated)
        .filter(|i| !removed.contains(i))
        .map(|i| rule(&entry_labels(seed, i), Action::Nxdomain))
        .collect();
    let added: Vec<u64> = (generated..generated + (changes - changes / 2) as u64).collect();
    rules.extend(added.iter().map(|i| rule(&entry_labels(seed, *i), Action::Nxdomain)));
    rules.extend(fixed_rules());
    let one_removed = removed.iter().next().map(|i| entry_labels(seed, *i)).unwrap_or_default();
    let one_added = added.first().map(|i| entry_labels(seed, *i)).unwrap_or_default();
    (rules, one_removed, one_added)
}

/// The plain-list text of the entries `list(seed, n)` generates (one name a line).
pub fn plain_text(seed: u64, n: usize) -> String {
    let generated = n.saturating_sub(fixed_rules().len()) as u64;
    let mut text = String::with_capacity(n * 20);
    for i in 0..generated {
        text.push_str(&entry_labels(seed, i).join("."));
        text.push('\n');
    }
    for name in [BLOCKED_NX, BLOCKED_REDIRECT, BLOCKED_DROP, LISTED_CHILD] {
        text.push_str(name);
        text.push('\n');
    }
    text
}

/// An untagged IPv4 query for `name`, type A.
pub fn query_v4(name: &str) -> Vec<u8> {
    Frame::new(Ip::v4(), Query::new(name, 1).build()).build()
}

/// A frame of each fixed class.
pub fn class_frame(class: &str, name: &str) -> Vec<u8> {
    let q = Query::new(name, 1);
    match class {
        "vlan" => Frame { vlans: vec![(0x8100, 100)], ..Frame::new(Ip::v4(), q.build()) }.build(),
        "qinq" => Frame { vlans: vec![(0x88a8, 100), (0x8100, 200)], ..Frame::new(Ip::v4(), q.build()) }.build(),
        "ipv6" => Frame::new(Ip::v6(), q.build()).build(),
        "edns_cookie" => Frame::new(Ip::v4(), q.with_edns(Edns { dnssec_ok: false, cookie: true }).build()).build(),
        "ipv6_edns_cookie" => Frame::new(Ip::v6(), q.with_edns(Edns { dnssec_ok: true, cookie: true }).build()).build(),
        _ => query_v4(name),
    }
}

/// Frames that leave the program at successive stages (for the cost breakdown).
pub fn stage_frame(stage: &str) -> Vec<u8> {
    let q = Query::new("www.allowed-name.com", 1);
    match stage {
        "udp_other_port" => Frame { dport: 80, ..Frame::new(Ip::v4(), q.build()) }.build(),
        "dns_response" => {
            let mut m = q.build();
            m[2] |= 0x80;
            Frame::new(Ip::v4(), m).build()
        }
        "compressed_name" => Frame::new(Ip::v4(), Query { qname: vec![0xc0, 0x0c], ..q }.build()).build(),
        _ => Frame::new(Ip::v4(), Query::new(".", 1).build()).build(),
    }
}

/// A TCP SYN to port 80 over IPv4 (the program's cheapest rejection after "not IP").
pub fn tcp_syn() -> Vec<u8> {
    use filter_tests::frames::{CLIENT_MAC, CLIENT_V4, SERVER_MAC, SERVER_V4, checksum};
    let mut f = Vec::new();
    f.extend(SERVER_MAC);
    f.extend(CLIENT_MAC);
    f.extend(0x0800u16.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip.extend(CLIENT_V4.octets());
    ip.extend(SERVER_V4.octets());
    let c = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend(ip);
    let mut tcp = Vec::new();
    tcp.extend(40000u16.to_be_bytes());
    tcp.extend(80u16.to_be_bytes());
    tcp.extend(1u32.to_be_bytes());
    tcp.extend(0u32.to_be_bytes());
    tcp.extend([0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend(tcp);
    f
}

/// Kinds of per-call (cold) queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cold {
    /// `r.tld`: the walk stops at a random registrable name.
    Allowed2,
    /// `r.x.r2.tld`.
    Allowed4,
    /// `r.b.c.d.e.f.r2.tld`.
    Allowed8,
    /// `r.sld.tld` where `x.sld.tld` is listed: `sld.tld` is a marker, so two cold probes.
    Sibling,
    /// `r.sld.tld` where `sld.tld` is listed (NXDOMAIN answer).
    Blocked,
}

/// A query name of `kind` against `list(seed, n)`, drawn from `r`, in an order unrelated to the
/// order of insertion.
pub fn cold_name(kind: Cold, r: &mut Rng, seed: u64, n: usize) -> String {
    let generated = n.saturating_sub(fixed_rules().len()).max(1) as u64;
    let tld = TLDS[r.below(TLDS.len() as u64) as usize];
    let first = r.query_label();
    match kind {
        Cold::Allowed2 => format!("{first}.{tld}"),
        Cold::Allowed4 => format!("{first}.{}.{}.{tld}", r.letters(3), r.query_label()),
        Cold::Allowed8 => format!("{first}.b.c.d.e.f.{}.{tld}", r.query_label()),
        Cold::Sibling | Cold::Blocked => {
            // Rejection sampling: entries of the wanted shape are 20 % (three labels) and
            // 70 % (two labels) of the list. A list that is too small to have one falls back
            // to the fixed entries.
            let want = if kind == Cold::Sibling { 3 } else { 2 };
            for _ in 0..1000 {
                let labels = entry_labels(seed, r.below(generated));
                if labels.len() == want {
                    // The sibling drops the listed label; the blocked name keeps the whole entry.
                    let parent = if kind == Cold::Sibling { &labels[1..] } else { &labels[..] };
                    return format!("{first}.{}", parent.join("."));
                }
            }
            if kind == Cold::Sibling { format!("{first}.sibling-parent.com") } else { format!("{first}.{BLOCKED_NX}") }
        }
    }
}
