//! Hand-built frames (Ethernet, 802.1Q/802.1ad tags, IPv4 with options, IPv6, UDP) and DNS
//! queries, plus independent parsing of answers.

use std::net::{Ipv4Addr, Ipv6Addr};

use domain::base::{Message, Rtype, iana::Rcode};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);

/// The network layer of a frame.
#[derive(Clone, Debug)]
pub enum Ip {
    /// IPv4 with the given options (a multiple of 4 octets, at most 40).
    V4 { options: Vec<u8>, frag: u16, proto: u8 },
    /// IPv6 with the given next header (17 for UDP directly).
    V6 { next: u8, ext: Vec<u8> },
}

impl Ip {
    pub fn v4() -> Ip {
        Ip::V4 { options: vec![], frag: 0, proto: 17 }
    }
    pub fn v6() -> Ip {
        Ip::V6 { next: 17, ext: vec![] }
    }
}

/// A frame to build.
#[derive(Clone, Debug)]
pub struct Frame {
    /// VLAN tags, outermost first: (TPID, VID).
    pub vlans: Vec<(u16, u16)>,
    pub ip: Ip,
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    /// Octets of Ethernet padding after the IP packet.
    pub trailer: usize,
    /// Destination address of an IPv4 frame ([`SERVER_V4`] unless changed).
    pub server_v4: Ipv4Addr,
    /// Destination address of an IPv6 frame ([`SERVER_V6`] unless changed).
    pub server_v6: Ipv6Addr,
}

impl Frame {
    pub fn new(ip: Ip, payload: Vec<u8>) -> Frame {
        Frame {
            vlans: vec![],
            ip,
            sport: 40000,
            dport: 53,
            payload,
            trailer: 0,
            server_v4: SERVER_V4,
            server_v6: SERVER_V6,
        }
    }

    /// The same frame sent to another destination address (of the frame's family).
    pub fn to(mut self, addr: std::net::IpAddr) -> Frame {
        match addr {
            std::net::IpAddr::V4(a) => self.server_v4 = a,
            std::net::IpAddr::V6(a) => self.server_v6 = a,
        }
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(SERVER_MAC);
        f.extend(CLIENT_MAC);
        for (tpid, vid) in &self.vlans {
            f.extend(tpid.to_be_bytes());
            f.extend(vid.to_be_bytes());
        }
        let udp_len = (8 + self.payload.len()) as u16;
        let mut udp = Vec::new();
        udp.extend(self.sport.to_be_bytes());
        udp.extend(self.dport.to_be_bytes());
        udp.extend(udp_len.to_be_bytes());
        udp.extend([0, 0]);
        udp.extend(&self.payload);
        match &self.ip {
            Ip::V4 { options, frag, proto } => {
                f.extend(0x0800u16.to_be_bytes());
                let ihl = 20 + options.len();
                let mut h = vec![0x40 | (ihl / 4) as u8, 0];
                h.extend(((ihl + udp.len()) as u16).to_be_bytes());
                h.extend([0x12, 0x34]);
                h.extend(frag.to_be_bytes());
                h.extend([64, *proto, 0, 0]);
                h.extend(CLIENT_V4.octets());
                h.extend(self.server_v4.octets());
                h.extend(options);
                let c = checksum(&h, 0);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                let mut pseudo = Vec::new();
                pseudo.extend(CLIENT_V4.octets());
                pseudo.extend(self.server_v4.octets());
                pseudo.extend([0, 17]);
                pseudo.extend(udp_len.to_be_bytes());
                let c = checksum(&[pseudo, udp.clone()].concat(), 0);
                udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
                f.extend(h);
            }
            Ip::V6 { next, ext } => {
                f.extend(0x86ddu16.to_be_bytes());
                f.extend([0x60, 0, 0, 0]);
                f.extend(((ext.len() + udp.len()) as u16).to_be_bytes());
                f.extend([*next, 64]);
                f.extend(CLIENT_V6.octets());
                f.extend(self.server_v6.octets());
                f.extend(ext);
                let mut pseudo = Vec::new();
                pseudo.extend(CLIENT_V6.octets());
                pseudo.extend(self.server_v6.octets());
                pseudo.extend((udp_len as u32).to_be_bytes());
                pseudo.extend([0, 0, 0, 17]);
                let c = checksum(&[pseudo, udp.clone()].concat(), 0);
                udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            }
        }
        f.extend(udp);
        f.extend(std::iter::repeat_n(0u8, self.trailer));
        f
    }
}

/// Internet checksum (RFC 1071) of `data`, starting from `seed`.
pub fn checksum(data: &[u8], seed: u32) -> u16 {
    let mut sum = seed;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// EDNS options of a query.
#[derive(Clone, Copy, Debug, Default)]
pub struct Edns {
    pub dnssec_ok: bool,
    pub cookie: bool,
}

/// A DNS query.
#[derive(Clone, Debug)]
pub struct Query {
    pub id: u16,
    /// Wire-format name (length-prefixed labels and root), kept as given.
    pub qname: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
    pub rd: bool,
    pub cd: bool,
    pub edns: Option<Edns>,
}

impl Query {
    pub fn new(name: &str, qtype: u16) -> Query {
        Query { id: 0xbeef, qname: wire(name), qtype, qclass: 1, rd: true, cd: false, edns: None }
    }

    pub fn with_edns(mut self, e: Edns) -> Query {
        self.edns = Some(e);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(self.id.to_be_bytes());
        m.push(if self.rd { 1 } else { 0 });
        m.push(if self.cd { 0x10 } else { 0 });
        m.extend(1u16.to_be_bytes());
        m.extend([0, 0, 0, 0]);
        m.extend(u16::from(self.edns.is_some()).to_be_bytes());
        m.extend(&self.qname);
        m.extend(self.qtype.to_be_bytes());
        m.extend(self.qclass.to_be_bytes());
        if let Some(e) = self.edns {
            let rdata: Vec<u8> = if e.cookie {
                let mut o = vec![0, 10, 0, 8];
                o.extend([1, 2, 3, 4, 5, 6, 7, 8]);
                o
            } else {
                vec![]
            };
            m.extend([0, 0, 41, 0x04, 0xd0, 0, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0]);
            m.extend((rdata.len() as u16).to_be_bytes());
            m.extend(rdata);
        }
        m
    }
}

/// Wire form of a presentation name without escapes (labels kept in their case).
pub fn wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        w.push(l.len() as u8);
        w.extend(l.as_bytes());
    }
    w.push(0);
    w
}

/// An answer frame, taken apart and checked independently of the program.
#[derive(Debug)]
pub struct Answer {
    pub dns: Vec<u8>,
    pub vlans: Vec<(u16, u16)>,
    pub v6: bool,
}

/// Takes an answer frame apart: checks that addresses, MACs and ports are swapped relative
/// to `query`, that lengths agree, and recomputes the IPv4 header and UDP checksums.
pub fn check_answer(query: &[u8], answer: &[u8]) -> Answer {
    assert_eq!(&answer[0..6], &query[6..12], "destination MAC is the query's source");
    assert_eq!(&answer[6..12], &query[0..6], "source MAC is the query's destination");
    let mut off = 12;
    let mut vlans = vec![];
    loop {
        let t = u16::from_be_bytes([answer[off], answer[off + 1]]);
        if t == 0x8100 || t == 0x88a8 {
            assert_eq!(&answer[off..off + 4], &query[off..off + 4], "VLAN tag kept");
            vlans.push((t, u16::from_be_bytes([answer[off + 2], answer[off + 3]])));
            off += 4;
        } else {
            break;
        }
    }
    let et = u16::from_be_bytes([answer[off], answer[off + 1]]);
    let ip = off + 2;
    let (udp, v6, udp_sum_ok) = if et == 0x0800 {
        let (h, _) = etherparse::Ipv4Header::from_slice(&answer[ip..]).expect("IPv4 header");
        let ihl = usize::from(h.ihl()) * 4;
        assert_eq!(h.calc_header_checksum(), h.header_checksum, "IPv4 header checksum");
        assert_eq!(h.source, query[ip + 16..ip + 20], "IPv4 source is the query's destination");
        assert_eq!(h.destination, query[ip + 12..ip + 16], "IPv4 destination is the query's source");
        assert_eq!(usize::from(h.total_len), answer.len() - ip, "IPv4 total length");
        let udp = ip + ihl;
        let uh = etherparse::UdpHeader::from_slice(&answer[udp..]).expect("UDP header").0;
        let sum = uh.calc_checksum_ipv4_raw(h.source, h.destination, &answer[udp + 8..]).expect("sum");
        (udp, false, uh.checksum == 0 || uh.checksum == sum)
    } else {
        assert_eq!(et, 0x86dd);
        let (h, _) = etherparse::Ipv6Header::from_slice(&answer[ip..]).expect("IPv6 header");
        assert_eq!(h.source, query[ip + 24..ip + 40]);
        assert_eq!(h.destination, query[ip + 8..ip + 24]);
        assert_eq!(usize::from(h.payload_length), answer.len() - ip - 40, "IPv6 payload length");
        let udp = ip + 40;
        let uh = etherparse::UdpHeader::from_slice(&answer[udp..]).expect("UDP header").0;
        let sum = uh.calc_checksum_ipv6_raw(h.source, h.destination, &answer[udp + 8..]).expect("sum");
        assert_ne!(uh.checksum, 0, "UDP checksum is mandatory over IPv6");
        (udp, true, uh.checksum == sum)
    };
    assert!(udp_sum_ok, "UDP checksum");
    assert_eq!(&answer[udp..udp + 2], &query[udp + 2..udp + 4], "source port is the query's destination");
    assert_eq!(&answer[udp + 2..udp + 4], &query[udp..udp + 2], "destination port is the query's source");
    let ulen = u16::from_be_bytes([answer[udp + 4], answer[udp + 5]]) as usize;
    assert_eq!(ulen, answer.len() - udp, "UDP length");
    Answer { dns: answer[udp + 8..].to_vec(), vlans, v6 }
}

/// What a DNS answer says, as read by the `domain` crate.
#[derive(Debug, PartialEq, Eq)]
pub struct Said {
    pub id: u16,
    pub rcode: Rcode,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    pub qr: bool,
    pub answers: Vec<String>,
    pub authority: Vec<String>,
    pub opt: bool,
    pub ede: Option<u16>,
    pub dnssec_ok: bool,
}

/// Parses an answer with the `domain` crate, and checks that its question is the query's,
/// byte for byte.
pub fn read_answer(query_dns: &[u8], dns: &[u8]) -> Said {
    let msg = Message::from_octets(dns.to_vec()).expect("a DNS message");
    let h = msg.header();
    let q_end = 12 + question_len(&query_dns[12..]);
    assert_eq!(&dns[..2], &query_dns[..2], "ID kept");
    assert_eq!(&dns[12..q_end], &query_dns[12..q_end], "question kept byte for byte");
    assert_eq!(msg.header_counts().qdcount(), 1);
    let show = |section: domain::base::RecordSection<'_, Vec<u8>>| -> Vec<String> {
        section
            .map(|r| {
                let r = r.expect("record");
                let rec = r.to_record::<domain::rdata::AllRecordData<_, _>>().expect("rdata").expect("known");
                format!("{} {} {}", rec.owner(), rec.rtype(), rec.data())
            })
            .collect()
    };
    let answers = show(msg.answer().expect("answer section"));
    let authority = show(msg.authority().expect("authority section"));
    let opt = msg.opt();
    let mut ede = None;
    let mut dnssec_ok = false;
    if let Some(o) = &opt {
        dnssec_ok = o.dnssec_ok();
        for option in o.opt().iter::<domain::base::opt::AllOptData<_, _>>() {
            if let Ok(domain::base::opt::AllOptData::ExtendedError(e)) = option {
                ede = Some(e.code().to_int());
            }
        }
    }
    let _ = Rtype::A;
    Said {
        id: h.id(),
        rcode: h.rcode(),
        tc: h.tc(),
        rd: h.rd(),
        ra: h.ra(),
        qr: h.qr(),
        answers,
        authority,
        opt: opt.is_some(),
        ede,
        dnssec_ok,
    }
}

/// Length of a question (uncompressed name, type, class) at the start of `q`.
fn question_len(q: &[u8]) -> usize {
    let mut i = 0;
    while q[i] != 0 {
        i += 1 + q[i] as usize;
    }
    i + 1 + 4
}
