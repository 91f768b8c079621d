//! Zone transfers from a primary: the SOA check (UDP, then TCP when truncated), AXFR (RFC 5936)
//! and IXFR (RFC 1995) over TCP, every message checked against the request and, with a key,
//! its TSIG (RFC 8945; the last message of a transfer must be signed, and an answer that should
//! be signed and is not is an error, never accepted unsigned).
//!
//! A transfer is read whole and checked before anything uses it: the first and last records
//! are the zone's SOA (class IN, same serial), nothing comes after the last one, an IXFR's
//! serials form a chain from the serial asked for to the new one, and the caps on bytes,
//! records and changes hold. An IXFR that does not fit the zone we hold (a record removed that
//! we do not have) is out of sync: the caller fetches the zone again by AXFR.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use domain::{
    base::{
        Message, MessageBuilder, Name, ParsedName, Rtype, Serial, ToName as _, Ttl,
        iana::{Class, Opcode, Rcode},
        zonefile_fmt::{DisplayKind, ZonefileFmt as _},
    },
    rdata::{AllRecordData, Soa},
    tsig::{ClientSequence, ClientTransaction, Key},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream, UdpSocket},
};

use super::conf::ZoneConf;

/// One resource record in presentation form (absolute names).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RrKey {
    /// Owner, lower case, with the final dot.
    pub owner: String,
    pub rtype: u16,
    /// The record data in presentation form.
    pub data: String,
}

/// The SOA values a secondary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SoaTimers {
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// A whole zone as transferred: its SOA and its other records, sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneData {
    /// The apex, lower case, without the final dot.
    pub apex: String,
    pub soa: SoaTimers,
    /// The SOA record in presentation form.
    pub soa_line: String,
    /// Every other record: key → (TTL, presentation line as received).
    pub records: BTreeMap<RrKey, (u32, String)>,
}

impl ZoneData {
    /// The zone as a zone file: a comment, the SOA, then every record, one per line, all names
    /// absolute. This is what the RPZ reader reads.
    pub fn render(&self, comment: &str) -> String {
        let mut out = String::with_capacity(64 * (self.records.len() + 2));
        for l in comment.lines() {
            out.push_str("; ");
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&self.soa_line);
        out.push('\n');
        for (_, line) in self.records.values() {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// What a transfer brought.
#[derive(Debug)]
pub enum Fetched {
    /// The primary has the serial we hold (or an older one: see [`XfrError::Backwards`]).
    UpToDate(u32),
    /// A whole zone, by AXFR (or an IXFR answered with the whole zone).
    Full(ZoneData),
    /// The zone we held with an IXFR's changes applied.
    Incremental { zone: ZoneData, changes: u64, steps: usize },
}

/// Which transfer was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Axfr,
    Ixfr,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Axfr => "axfr",
            Kind::Ixfr => "ixfr",
        }
    }
}

/// Why a check or a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum XfrError {
    #[error("{0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("{0}: timed out ({1})")]
    Timeout(SocketAddr, &'static str),
    #[error("{0}: answered {1}")]
    Rcode(SocketAddr, String),
    #[error("{0}: TSIG: {1}")]
    Tsig(SocketAddr, String),
    #[error("{0}: malformed transfer: {1}")]
    Malformed(SocketAddr, String),
    #[error("{0}: IXFR out of sync: {1}")]
    OutOfSync(SocketAddr, String),
    #[error("{0}: over the cap: {1}")]
    TooLarge(SocketAddr, String),
    #[error("{primary}: serial {theirs} is older than the serial {ours} enforced here")]
    Backwards { primary: SocketAddr, theirs: u32, ours: u32 },
}

impl XfrError {
    /// Whether an IXFR that failed this way is worth asking again as an AXFR.
    pub fn falls_back_to_axfr(&self) -> bool {
        match self {
            XfrError::OutOfSync(..) | XfrError::TooLarge(..) => true,
            XfrError::Rcode(_, r) => r != "NOTAUTH",
            XfrError::Malformed(..) => true,
            _ => false,
        }
    }

    /// A short class for counters.
    pub fn class(&self) -> &'static str {
        match self {
            XfrError::Io(..) => "io",
            XfrError::Timeout(..) => "timeout",
            XfrError::Rcode(..) => "refused",
            XfrError::Tsig(..) => "tsig",
            XfrError::Malformed(..) => "malformed",
            XfrError::OutOfSync(..) => "out_of_sync",
            XfrError::TooLarge(..) => "too_large",
            XfrError::Backwards { .. } => "backwards",
        }
    }
}

fn now48() -> domain::rdata::tsig::Time48 {
    domain::rdata::tsig::Time48::now()
}

fn apex_name(z: &ZoneConf) -> Name<Vec<u8>> {
    // The name was checked when the config was read.
    <Name<Vec<u8>> as std::str::FromStr>::from_str(&z.name).unwrap_or_else(|_| Name::root_vec())
}

/// A query for the zone's `rtype`, with our SOA in the authority section for IXFR, signed
/// with the zone's key when it has one.
fn query(z: &ZoneConf, rtype: Rtype, ixfr_serial: Option<u32>) -> Result<(Vec<u8>, u16, Option<Signer>), String> {
    let apex = apex_name(z);
    let mut b = MessageBuilder::new_vec();
    let id: u16 = rand::random();
    b.header_mut().set_id(id);
    b.header_mut().set_opcode(Opcode::QUERY);
    let mut q = b.question();
    q.push((&apex, rtype)).map_err(|e| e.to_string())?;
    let mut auth = q.authority();
    if let Some(serial) = ixfr_serial {
        let t = Ttl::from_secs(0);
        let soa = Soa::new(apex.clone(), apex.clone(), Serial(serial), t, t, t, t);
        auth.push((&apex, Class::IN, t, soa)).map_err(|e| e.to_string())?;
    }
    let mut add = auth.additional();
    let signer = match &z.key {
        Some(k) if rtype == Rtype::AXFR || rtype == Rtype::IXFR => Some(Signer::Sequence(
            ClientSequence::request(k.key.clone(), &mut add, now48()).map_err(|e| e.to_string())?,
        )),
        Some(k) => Some(Signer::Single(
            ClientTransaction::request(k.key.clone(), &mut add, now48()).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    Ok((add.finish(), id, signer))
}

enum Signer {
    Single(ClientTransaction<std::sync::Arc<Key>>),
    Sequence(ClientSequence<std::sync::Arc<Key>>),
}

/// Checks the header and question of an answer to the query `id` for the zone's `rtype`, and
/// its TSIG.
fn check_answer(
    z: &ZoneConf,
    from: SocketAddr,
    msg: &mut Message<Vec<u8>>,
    id: u16,
    rtype: Rtype,
    first: bool,
    signer: &mut Option<Signer>,
) -> Result<(), XfrError> {
    let h = msg.header();
    if h.id() != id || !h.qr() || h.opcode() != Opcode::QUERY {
        return Err(XfrError::Malformed(from, format!("an answer that is not ours (id {}, qr {})", h.id(), h.qr())));
    }
    // TSIG first: an error rcode from the primary is only believed when signed (or unsigned
    // when no key is configured); a NOTAUTH carries the TSIG error.
    match signer {
        Some(Signer::Single(t)) => t.answer(msg, now48()).map_err(|e| XfrError::Tsig(from, tsig_error(msg, e)))?,
        Some(Signer::Sequence(s)) => s.answer(msg, now48()).map_err(|e| XfrError::Tsig(from, tsig_error(msg, e)))?,
        None => {}
    }
    let rcode = msg.header().rcode();
    if rcode != Rcode::NOERROR {
        return Err(XfrError::Rcode(from, rcode.to_string()));
    }
    let qd = msg.header_counts().qdcount();
    if first || qd > 0 {
        let q = msg.first_question().ok_or_else(|| XfrError::Malformed(from, "the answer has no question".into()))?;
        if q.qtype() != rtype || q.qclass() != Class::IN || !q.qname().name_eq(&apex_name(z)) {
            return Err(XfrError::Malformed(from, format!("answer to another question ({} {})", q.qname(), q.qtype())));
        }
    }
    Ok(())
}

fn tsig_error(msg: &Message<Vec<u8>>, e: domain::tsig::ValidationError) -> String {
    let rcode = msg.header().rcode();
    if rcode == Rcode::NOERROR { e.to_string() } else { format!("{e} (the primary answered {rcode})") }
}

/// A record of an answer in presentation form, with what the transfer logic needs.
struct Rr {
    key: RrKey,
    class: Class,
    ttl: u32,
    line: String,
    soa: Option<SoaTimers>,
}

fn records(from: SocketAddr, msg: &Message<Vec<u8>>, out: &mut Vec<Rr>) -> Result<(), XfrError> {
    let bad = |e: String| XfrError::Malformed(from, e);
    let answer = msg.answer().map_err(|e| bad(e.to_string()))?;
    for rr in answer {
        let rr = rr.map_err(|e| bad(e.to_string()))?;
        let rec = rr
            .to_any_record::<AllRecordData<&[u8], ParsedName<&[u8]>>>()
            .map_err(|e| bad(format!("record of {}: {e}", rr.owner())))?;
        let soa = match rec.data() {
            AllRecordData::Soa(s) => Some(SoaTimers {
                serial: s.serial().into_int(),
                refresh: s.refresh().as_secs(),
                retry: s.retry().as_secs(),
                expire: s.expire().as_secs(),
                minimum: s.minimum().as_secs(),
            }),
            _ => None,
        };
        let line = rec.display_zonefile(DisplayKind::Simple).to_string();
        // The data is what follows owner, TTL, class and type.
        let data = line.splitn(5, ' ').nth(4).unwrap_or("").to_string();
        let mut owner = rec.owner().to_string().to_ascii_lowercase();
        if !owner.ends_with('.') {
            owner.push('.');
        }
        out.push(Rr {
            key: RrKey { owner, rtype: rec.rtype().to_int(), data },
            class: rec.class(),
            ttl: rec.ttl().as_secs(),
            line,
            soa,
        });
    }
    Ok(())
}

async fn connect(z: &ZoneConf, to: SocketAddr) -> Result<TcpStream, XfrError> {
    let sock = if to.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| XfrError::Io(to, e))?;
    if let Some(src) = z.source {
        sock.bind(SocketAddr::new(src, 0)).map_err(|e| XfrError::Io(to, e))?;
    }
    match tokio::time::timeout(z.idle_timeout, sock.connect(to)).await {
        Ok(r) => r.map_err(|e| XfrError::Io(to, e)),
        Err(_) => Err(XfrError::Timeout(to, "connect")),
    }
}

async fn read_msg(
    s: &mut TcpStream,
    to: SocketAddr,
    idle: Duration,
    deadline: Instant,
) -> Result<Option<Vec<u8>>, XfrError> {
    let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
    let mut len = [0u8; 2];
    match tokio::time::timeout(wait, s.read_exact(&mut len)).await {
        Err(_) => return Err(XfrError::Timeout(to, "waiting for the next message")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(XfrError::Io(to, e)),
        Ok(Ok(_)) => {}
    }
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    match tokio::time::timeout(wait, s.read_exact(&mut buf)).await {
        Err(_) => Err(XfrError::Timeout(to, "in the middle of a message")),
        Ok(Err(e)) => Err(XfrError::Io(to, e)),
        Ok(Ok(_)) => Ok(Some(buf)),
    }
}

async fn send_tcp(s: &mut TcpStream, to: SocketAddr, q: &[u8]) -> Result<(), XfrError> {
    let len = u16::try_from(q.len()).map_err(|_| XfrError::Malformed(to, "query too long".into()))?;
    let mut framed = Vec::with_capacity(q.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(q);
    s.write_all(&framed).await.map_err(|e| XfrError::Io(to, e))
}

/// The primary's SOA serial (UDP; TCP when the answer is truncated).
pub async fn soa_serial(z: &ZoneConf, to: SocketAddr) -> Result<SoaTimers, XfrError> {
    let (q, id, mut signer) = query(z, Rtype::SOA, None).map_err(|e| XfrError::Malformed(to, e))?;
    let bind = match (z.source, to) {
        (Some(s), _) => SocketAddr::new(s, 0),
        (None, SocketAddr::V4(_)) => "0.0.0.0:0".parse().unwrap_or(to),
        (None, SocketAddr::V6(_)) => "[::]:0".parse().unwrap_or(to),
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| XfrError::Io(to, e))?;
    sock.connect(to).await.map_err(|e| XfrError::Io(to, e))?;
    let deadline = Instant::now() + z.idle_timeout;
    let mut answer = None;
    for _attempt in 0..3 {
        sock.send(&q).await.map_err(|e| XfrError::Io(to, e))?;
        let mut buf = vec![0u8; 65_535];
        let wait = Duration::from_secs(2).min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                buf.truncate(n);
                // Another datagram (a late answer to an earlier try) is skipped.
                match Message::from_octets(buf) {
                    Ok(m) if m.header().id() == id => {
                        answer = Some(m);
                        break;
                    }
                    _ => continue,
                }
            }
            Ok(Err(e)) => return Err(XfrError::Io(to, e)),
            Err(_) => continue,
        }
    }
    match answer {
        // Truncated: asked again over TCP (a new query, signed afresh).
        Some(m) if m.header().tc() => {
            let (q, id, mut signer) = query(z, Rtype::SOA, None).map_err(|e| XfrError::Malformed(to, e))?;
            let mut s = connect(z, to).await?;
            send_tcp(&mut s, to, &q).await?;
            let buf = read_msg(&mut s, to, z.idle_timeout, deadline)
                .await?
                .ok_or_else(|| XfrError::Malformed(to, "connection closed without an answer".into()))?;
            let m = Message::from_octets(buf).map_err(|e| XfrError::Malformed(to, e.to_string()))?;
            soa_of(z, to, m, id, &mut signer)
        }
        Some(m) => soa_of(z, to, m, id, &mut signer),
        None => Err(XfrError::Timeout(to, "SOA query")),
    }
}

fn soa_of(
    z: &ZoneConf,
    to: SocketAddr,
    mut msg: Message<Vec<u8>>,
    id: u16,
    signer: &mut Option<Signer>,
) -> Result<SoaTimers, XfrError> {
    check_answer(z, to, &mut msg, id, Rtype::SOA, true, signer)?;
    let mut rrs = Vec::new();
    records(to, &msg, &mut rrs)?;
    let apex = format!("{}.", z.name);
    rrs.iter()
        .find(|r| r.soa.is_some() && r.key.owner == apex && r.class == Class::IN)
        .and_then(|r| r.soa)
        .ok_or_else(|| XfrError::Malformed(to, "the SOA answer has no SOA of the zone".into()))
}

/// Fetches the zone from `to`: an IXFR from the zone we hold when there is one and the zone
/// asks for it, else an AXFR. Returns what was asked and what came.
pub async fn fetch(z: &ZoneConf, to: SocketAddr, have: Option<&ZoneData>, kind: Kind) -> Result<Fetched, XfrError> {
    let ixfr_from = match (kind, have) {
        (Kind::Ixfr, Some(h)) => Some(h.soa.serial),
        _ => None,
    };
    let rtype = if ixfr_from.is_some() { Rtype::IXFR } else { Rtype::AXFR };
    let (q, id, mut signer) = query(z, rtype, ixfr_from).map_err(|e| XfrError::Malformed(to, e))?;
    let deadline = Instant::now() + z.transfer_timeout;
    let mut s = connect(z, to).await?;
    send_tcp(&mut s, to, &q).await?;
    let apex = format!("{}.", z.name);
    let mut rrs: Vec<Rr> = Vec::new();
    let mut bytes = 0u64;
    let mut first = true;
    // The serial of the first SOA, and whether the transfer is complete.
    let mut end_serial: Option<u32> = None;
    let mut soas_seen = 0usize;
    let mut complete = false;
    loop {
        if Instant::now() >= deadline {
            return Err(XfrError::Timeout(to, "transfer_timeout"));
        }
        let Some(buf) = read_msg(&mut s, to, z.idle_timeout, deadline).await? else {
            break;
        };
        bytes += buf.len() as u64;
        if bytes > z.max_bytes {
            return Err(XfrError::TooLarge(to, format!("more than max_bytes = {}", z.max_bytes)));
        }
        let mut msg = Message::from_octets(buf).map_err(|e| XfrError::Malformed(to, e.to_string()))?;
        check_answer(z, to, &mut msg, id, rtype, first, &mut signer)?;
        let start = rrs.len();
        records(to, &msg, &mut rrs)?;
        if complete && rrs.len() > start {
            return Err(XfrError::Malformed(to, "records after the final SOA".into()));
        }
        if rrs.len() as u64 > z.max_records.saturating_add(2) {
            return Err(XfrError::TooLarge(to, format!("more than max_records = {}", z.max_records)));
        }
        for (i, r) in rrs.iter().enumerate().skip(start) {
            if let Some(soa) = r.soa {
                if r.class != Class::IN || r.key.owner != apex {
                    return Err(XfrError::Malformed(to, format!("an SOA of {} in class {}", r.key.owner, r.class)));
                }
                soas_seen += 1;
                match end_serial {
                    None => end_serial = Some(soa.serial),
                    Some(e) if soa.serial == e && i > 0 => {
                        // The zone's SOA again. In an AXFR (or an IXFR answered with the
                        // whole zone) it closes the transfer. In an incremental IXFR (SOA new,
                        // then deltas of SOA old, removals, SOA new, additions) the new SOA of
                        // the last delta comes first: the closing one is the even-numbered.
                        let incremental = rtype == Rtype::IXFR && i > 1 && ixfr_shape(&rrs);
                        if !incremental || soas_seen.is_multiple_of(2) {
                            complete = true;
                            if i + 1 < rrs.len() {
                                return Err(XfrError::Malformed(to, "records after the final SOA".into()));
                            }
                        }
                    }
                    Some(_) => {}
                }
            } else if i == 0 {
                return Err(XfrError::Malformed(to, "the transfer does not start with the zone's SOA".into()));
            }
        }
        first = false;
        // An IXFR answered with the single SOA of a serial not newer than ours: up to date
        // (or older).
        if let (Some(ours), Some(e), 1) = (ixfr_from, end_serial, rrs.len())
            && Serial(e) <= Serial(ours)
        {
            break;
        }
        if complete {
            break;
        }
    }
    if let Some(Signer::Sequence(seq)) = signer {
        seq.done().map_err(|e| XfrError::Tsig(to, format!("{e}: the last message is not signed")))?;
    }
    let Some(end) = end_serial else {
        return Err(XfrError::Malformed(to, "the connection closed before any record".into()));
    };
    if let (Some(ours), 1) = (ixfr_from, rrs.len()) {
        return if Serial(end) < Serial(ours) {
            Err(XfrError::Backwards { primary: to, theirs: end, ours })
        } else {
            Ok(Fetched::UpToDate(end))
        };
    }
    if !complete {
        return Err(XfrError::Malformed(to, "the transfer ended without the final SOA".into()));
    }
    let soa_line = rrs[0].line.clone();
    let soa = rrs[0].soa.unwrap_or(SoaTimers { serial: end, refresh: 0, retry: 0, expire: 0, minimum: 0 });
    let last = rrs.len() - 1;
    // IXFR in incremental form: SOA(new), then deltas, each SOA(old) deletions SOA(new) additions.
    if rtype == Rtype::IXFR && rrs.len() > 2 && rrs[1].soa.is_some() {
        let have = have.ok_or_else(|| XfrError::OutOfSync(to, "an incremental answer to a full request".into()))?;
        let mut zone = have.clone();
        let mut at = have.soa.serial;
        let mut changes = 0u64;
        let mut steps = 0usize;
        let mut i = 1;
        while i < last {
            let old = rrs[i].soa.ok_or_else(|| XfrError::Malformed(to, "a delta not opened by an SOA".into()))?;
            if old.serial != at {
                return Err(XfrError::OutOfSync(
                    to,
                    format!("a delta from serial {} where {} was expected", old.serial, at),
                ));
            }
            i += 1;
            while i < last && rrs[i].soa.is_none() {
                let r = &rrs[i];
                if zone.records.remove(&r.key).is_none() {
                    return Err(XfrError::OutOfSync(
                        to,
                        format!("removes {} {}, which the zone does not hold", r.key.owner, r.key.data),
                    ));
                }
                changes += 1;
                i += 1;
            }
            let new = rrs
                .get(i)
                .and_then(|r| r.soa)
                .ok_or_else(|| XfrError::Malformed(to, "a delta without its new SOA".into()))?;
            let new_line = rrs[i].line.clone();
            i += 1;
            while i < last && rrs[i].soa.is_none() {
                let r = &rrs[i];
                zone.records.insert(r.key.clone(), (r.ttl, r.line.clone()));
                changes += 1;
                i += 1;
            }
            if changes > z.max_changes {
                return Err(XfrError::TooLarge(to, format!("more than max_changes = {}", z.max_changes)));
            }
            at = new.serial;
            zone.soa = new;
            zone.soa_line = new_line;
            steps += 1;
        }
        if at != end {
            return Err(XfrError::OutOfSync(to, format!("the deltas end at serial {at}, the answer announced {end}")));
        }
        zone.soa = soa;
        zone.soa_line = soa_line;
        return Ok(Fetched::Incremental { zone, changes, steps });
    }
    let mut records = BTreeMap::new();
    for r in rrs.into_iter().take(last).skip(1) {
        if r.soa.is_some() {
            return Err(XfrError::Malformed(to, "an SOA inside the zone".into()));
        }
        records.insert(r.key, (r.ttl, r.line));
    }
    Ok(Fetched::Full(ZoneData { apex: z.name.clone(), soa, soa_line, records }))
}

/// Whether the records so far read as an incremental IXFR (the second record is an SOA).
fn ixfr_shape(rrs: &[Rr]) -> bool {
    rrs.get(1).is_some_and(|r| r.soa.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentation_lines_are_absolute() {
        let apex: Name<Vec<u8>> = <Name<Vec<u8>> as std::str::FromStr>::from_str("rpz.example").expect("name");
        let owner: Name<Vec<u8>> =
            <Name<Vec<u8>> as std::str::FromStr>::from_str("www.allo.rpz.example").expect("name");
        let target: Name<Vec<u8>> = <Name<Vec<u8>> as std::str::FromStr>::from_str("rpz-passthru").expect("name");
        let mut b = MessageBuilder::new_vec().answer();
        b.push((&owner, Class::IN, Ttl::from_secs(300), domain::rdata::Cname::new(target))).expect("push");
        b.push((&owner, Class::IN, Ttl::from_secs(300), domain::rdata::Cname::new(Name::root_vec()))).expect("push");
        let _ = apex;
        let msg = b.into_message();
        let msg = Message::from_octets(msg.as_slice().to_vec()).expect("msg");
        let mut out = Vec::new();
        records("127.0.0.1:53".parse().expect("addr"), &msg, &mut out).expect("records");
        assert_eq!(out[0].line, "www.allo.rpz.example. 300 IN CNAME rpz-passthru.");
        assert_eq!(out[0].key.data, "rpz-passthru.");
        assert_eq!(out[1].line, "www.allo.rpz.example. 300 IN CNAME .");
    }
}
