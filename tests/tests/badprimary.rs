//! Self-tests of the scripted primary (`filter_tests::primary`): kdig (Knot's client) as an
//! independent judge of what it serves, and a small client of our own (the `domain` crate's
//! TSIG sequence checks) for the faults kdig does not look for. All on 127.0.0.1 with a free
//! port, but one test that binds it inside a network namespace.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream, UdpSocket},
    process::Command,
    str::FromStr as _,
    time::{Duration, Instant},
};

use domain::{
    base::{
        Message, MessageBuilder, Name, Serial, StreamTarget, Ttl,
        iana::{Class, Opcode, Rcode, Rtype, TsigRcode},
    },
    rdata::{AllRecordData, Soa},
    tsig::{Algorithm, ClientSequence, Key},
};
use filter_tests::{
    netns::Netns,
    primary::{Fault, NotifyReply, ReplyTsig, ScriptedPrimary, SoaTimers, Time48, Transport, TsigKey},
    privileged,
};

const APEX: &str = "example.rpz.";

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

fn key() -> TsigKey {
    TsigKey::new(Algorithm::Sha256, "xfr-key", b"0123456789abcdef0123456789abcdef")
}

/// `r{i}.example.rpz. 300 IN CNAME .` for i in 0..n.
fn cnames(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("r{i}.{APEX} 300 IN CNAME .")).collect()
}

fn strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

/// A keyed primary of `n` CNAMEs at serial 10, 100 records per message.
fn keyed(n: usize) -> ScriptedPrimary {
    ScriptedPrimary::builder(APEX, 10, &strs(&cnames(n))).key(key()).start(local())
}

/// What kdig said.
struct Kdig {
    ok: bool,
    out: String,
}

impl Kdig {
    /// The record lines (not comments, not TSIG), split on blanks.
    fn records(&self) -> Vec<Vec<&str>> {
        self.out
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.get(3) != Some(&"TSIG"))
            .collect()
    }

    /// The serials of the SOA records, in order.
    fn soa_serials(&self) -> Vec<u32> {
        self.records().iter().filter(|f| f.get(3) == Some(&"SOA")).map(|f| f[6].parse().expect("serial")).collect()
    }

    /// Whether a TSIG record was printed.
    fn has_tsig(&self) -> bool {
        self.out.lines().any(is_tsig)
    }

    /// Whether the last record printed is a TSIG (kdig prints the TSIG of each message after
    /// its records).
    fn ends_with_tsig(&self) -> bool {
        self.out.lines().rfind(|l| !l.starts_with(';') && !l.trim().is_empty()).is_some_and(is_tsig)
    }

    /// (messages, records) of the `;; Received N B (M messages, R records)` line.
    fn received(&self) -> (u64, u64) {
        let line = self.out.lines().find(|l| l.contains(" messages, ")).unwrap_or_else(|| panic!("{}", self.out));
        let inner = line.split('(').nth(1).expect("(").trim_end_matches(')');
        let mut n = inner.split(", ").map(|part| part.split(' ').next().expect("n").parse::<u64>().expect("count"));
        (n.next().expect("messages"), n.next().expect("records"))
    }
}

fn is_tsig(line: &str) -> bool {
    line.split_whitespace().nth(3) == Some("TSIG")
}

/// Runs kdig against the primary with `+timeout=2 +retry=0`.
fn kdig(p: &ScriptedPrimary, key: Option<&TsigKey>, args: &[&str]) -> Kdig {
    let mut cmd = Command::new("kdig");
    if let Some(key) = key {
        cmd.arg("-y").arg(key.kdig_arg());
    }
    cmd.arg(format!("@{}", p.addr().ip())).args(["-p", &p.addr().port().to_string(), "+timeout=2", "+retry=0"]);
    let out = cmd.args(args).output().expect("run kdig (knot-dnsutils)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Kdig { ok: out.status.success(), out: text }
}

#[track_caller]
fn assert_kdig_fails(p: &ScriptedPrimary, args: &[&str], error: &str) {
    let k = kdig(p, Some(&key()), args);
    assert!(!k.ok && k.out.contains(error), "kdig {args:?} should fail with {error:?}:\n{}", k.out);
}

/// One answer record, as our client saw it.
#[derive(Debug)]
struct Rec {
    class: Class,
    rtype: Rtype,
    serial: Option<u32>,
    text: String,
}

/// How a transfer ended for our client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The closing SOA was the last record of a message.
    Complete,
    /// Records came after the closing SOA (how many).
    RecordsAfter(usize),
    /// The first record was not a SOA.
    NoSoa,
    /// An error rcode.
    Rcode(Rcode),
    /// The server closed the connection first.
    Closed,
    /// Nothing more came for the read timeout.
    Timeout,
}

#[derive(Debug)]
struct Transfer {
    messages: usize,
    records: Vec<Rec>,
    end: End,
    /// The first TSIG error of the sequence, or the one of `done()`.
    tsig: Result<(), String>,
}

impl Transfer {
    fn soa_serials(&self) -> Vec<u32> {
        self.records.iter().filter_map(|r| r.serial).collect()
    }
}

/// Index of the record that ends the transfer (RFC 5936 / RFC 1995), if it has ended.
fn end_of(records: &[Rec], ixfr: bool) -> Option<usize> {
    let last = records.first()?.serial?;
    if ixfr && records.len() == 1 {
        return Some(0);
    }
    let incremental = ixfr && records.get(1).is_some_and(|r| r.serial.is_some_and(|s| s != last));
    let wanted = if incremental { 3 } else { 2 };
    let mut seen = 0;
    records.iter().position(|r| {
        seen += usize::from(r.serial == Some(last));
        seen == wanted
    })
}

/// Asks for AXFR (or IXFR from `ixfr`) over TCP, signed with `key`, and reads the answer
/// until it ends, the server closes, or nothing comes for `wait`.
fn transfer(addr: SocketAddr, ixfr: Option<u32>, key: Option<&TsigKey>, wait: Duration) -> Transfer {
    let apex = Name::<Vec<u8>>::from_str(APEX).expect("apex");
    let mut builder = MessageBuilder::from_target(StreamTarget::new_vec()).expect("target");
    builder.header_mut().set_random_id();
    let mut question = builder.question();
    question.push((&apex, if ixfr.is_some() { Rtype::IXFR } else { Rtype::AXFR })).expect("question");
    let mut authority = question.authority();
    if let Some(serial) = ixfr {
        let zero = Ttl::from_secs(0);
        let soa = Soa::new(apex.clone(), apex.clone(), Serial(serial), zero, zero, zero, zero);
        authority.push((&apex, 0, soa)).expect("SOA");
    }
    let mut additional = authority.additional();
    let mut sequence: Option<ClientSequence<Key>> =
        key.map(|k| ClientSequence::request(k.key(), &mut additional, Time48::now()).expect("sign"));
    let request = additional.finish();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream.write_all(request.as_stream_slice()).expect("send");
    let mut t = Transfer { messages: 0, records: Vec::new(), end: End::Closed, tsig: Ok(()) };
    loop {
        let mut len = [0; 2];
        if let Err(e) = stream.read_exact(&mut len) {
            t.end = if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                End::Timeout
            } else {
                End::Closed
            };
            break;
        }
        let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).expect("a whole message");
        let mut msg = Message::from_octets(buf).expect("message");
        t.messages += 1;
        if let Some(seq) = sequence.as_mut()
            && let Err(e) = seq.answer(&mut msg, Time48::now())
            && t.tsig.is_ok()
        {
            t.tsig = Err(format!("message {}: {e}", t.messages));
        }
        if msg.header().rcode() != Rcode::NOERROR {
            t.end = End::Rcode(msg.header().rcode());
            break;
        }
        for record in msg.answer().expect("answer section") {
            let record = record.expect("record");
            let record = record.to_record::<AllRecordData<_, _>>().expect("data").expect("known");
            let serial = match record.data() {
                AllRecordData::Soa(soa) => Some(soa.serial().into_int()),
                _ => None,
            };
            let (class, rtype, text) = (record.class(), record.rtype(), record.to_string());
            t.records.push(Rec { class, rtype, serial, text });
        }
        if t.records.first().is_some_and(|r| r.rtype != Rtype::SOA) {
            t.end = End::NoSoa;
            break;
        }
        if let Some(end) = end_of(&t.records, ixfr.is_some()) {
            let after = t.records.len() - 1 - end;
            t.end = if after == 0 { End::Complete } else { End::RecordsAfter(after) };
            break;
        }
    }
    if let Some(seq) = sequence
        && t.tsig.is_ok()
        && t.end == End::Complete
    {
        t.tsig = seq.done().map_err(|e| format!("done: {e}"));
    }
    t
}

#[test]
fn signed_axfr_in_several_messages_passes_kdig() {
    let p = keyed(250);
    let k = kdig(&p, Some(&key()), &["AXFR", APEX]);
    assert!(k.ok, "{}", k.out);
    assert_eq!(k.received(), (3, 252), "{}", k.out);
    let records = k.records();
    assert_eq!(records.len(), 252);
    assert_eq!(k.soa_serials(), [10, 10]);
    assert_eq!(records[0][3], "SOA");
    assert_eq!(records[251][3], "SOA");
    assert_eq!(records[1], ["r0.example.rpz.", "300", "IN", "CNAME", "."]);
    assert_eq!(records[250], ["r249.example.rpz.", "300", "IN", "CNAME", "."]);
    assert!(k.ends_with_tsig(), "{}", k.out);
    let got = p.received();
    assert_eq!(got.len(), 1);
    let axfr = &got[0];
    assert_eq!((axfr.transport, axfr.qtype, axfr.qname.as_str()), (Transport::Tcp, Rtype::AXFR, APEX));
    assert_eq!((axfr.signed, axfr.tsig_error, axfr.ixfr_serial, axfr.rcode), (true, None, None, Rcode::NOERROR));

    // Our client: every message signed, the sequence verifies, 100 records per message.
    let t = transfer(p.addr(), None, Some(&key()), Duration::from_secs(5));
    assert_eq!((t.end, t.messages, t.records.len()), (End::Complete, 3, 252));
    assert_eq!(t.tsig, Ok(()));
}

#[test]
fn soa_queries_over_udp_and_tcp_signed_refused_or_notauth() {
    let p = keyed(3);
    for tcp in ["+notcp", "+tcp"] {
        let k = kdig(&p, Some(&key()), &[tcp, "SOA", APEX]);
        assert!(k.ok && k.out.contains("status: NOERROR") && k.out.contains("Flags: qr aa"), "{}", k.out);
        assert_eq!(k.soa_serials(), [10]);
        assert!(k.has_tsig() && !k.out.contains("WARNING"), "{}", k.out);
        let k = kdig(&p, None, &[tcp, "SOA", APEX]);
        assert!(k.out.contains("status: REFUSED") && !k.has_tsig(), "{}", k.out);
        // NOTAUTH with the TSIG error BADSIG (kdig shows the extended rcode), unsigned.
        let k = kdig(&p, Some(&key().with_wrong_secret()), &[tcp, "SOA", APEX]);
        assert!(k.out.contains("status: BADSIG"), "{}", k.out);
        let k = kdig(&p, Some(&key().with_wrong_name()), &[tcp, "SOA", APEX]);
        assert!(k.out.contains("status: BADKEY"), "{}", k.out);
        let k = kdig(&p, Some(&key().with_wrong_algorithm()), &[tcp, "SOA", APEX]);
        assert!(k.out.contains("status: BADKEY"), "{}", k.out);
    }
    let got = p.received();
    let udp: Vec<_> = got.iter().filter(|r| r.transport == Transport::Udp).collect();
    assert_eq!(udp.len(), 5);
    assert!(udp.iter().all(|r| r.qtype == Rtype::SOA && r.qname == APEX && r.opcode == Opcode::QUERY));
    let summary: Vec<_> = udp.iter().map(|r| (r.signed, r.tsig_error, r.rcode)).collect();
    assert_eq!(
        summary,
        [
            (true, None, Rcode::NOERROR),
            (false, None, Rcode::REFUSED),
            (true, Some(TsigRcode::BADSIG), Rcode::NOTAUTH),
            (true, Some(TsigRcode::BADKEY), Rcode::NOTAUTH),
            (true, Some(TsigRcode::BADKEY), Rcode::NOTAUTH),
        ]
    );

    // Without a key, unsigned queries are answered; a name outside the zone is refused.
    let open = ScriptedPrimary::builder(APEX, 7, &["www.example.rpz. 300 IN CNAME ."]).start(local());
    let k = kdig(&open, None, &["SOA", APEX]);
    assert!(k.out.contains("status: NOERROR") && k.soa_serials() == [7], "{}", k.out);
    let k = kdig(&open, None, &["CNAME", "www.example.rpz."]);
    assert!(k.records() == [["www.example.rpz.", "300", "IN", "CNAME", "."]], "{}", k.out);
    let k = kdig(&open, None, &["SOA", "example.com."]);
    assert!(k.out.contains("status: REFUSED"), "{}", k.out);
    // A signed query to a primary without keys: BADKEY.
    let k = kdig(&open, Some(&key()), &["SOA", APEX]);
    assert!(k.out.contains("status: BADKEY"), "{}", k.out);
}

#[test]
fn broken_streams_fail_in_kdig() {
    let p = keyed(250);
    for (fault, error) in [
        (Fault::MissingFinalSoa, "can't receive reply"),
        (Fault::CloseMidStream, "can't receive reply"),
        // kdig waits for more after a record that follows the closing SOA.
        (Fault::RecordAfterFinalSoa, "response timeout"),
        (Fault::WrongKey, "failed to verify TSIG"),
        (Fault::WrongKeyName, "TSIG key not recognized"),
        (Fault::WrongAlgorithm, "failed to verify TSIG"),
        (Fault::NoSoa, "isn't SOA"),
        (Fault::Refuse, "'REFUSED'"),
    ] {
        p.set_fault(Some(fault));
        assert_kdig_fails(&p, &["AXFR", APEX], error);
    }
    p.set_fault(Some(Fault::NotImpIxfr));
    assert_kdig_fails(&p, &["IXFR=9", APEX], "'NOTIMPL'");
    assert!(kdig(&p, Some(&key()), &["AXFR", APEX]).ok);
    p.set_fault(None);
    assert!(kdig(&p, Some(&key()), &["AXFR", APEX]).ok);
}

#[test]
fn unsigned_last_message_passes_kdig_but_not_the_tsig_sequence() {
    let p = keyed(250);
    p.set_fault(Some(Fault::UnsignedLastMessage));
    // kdig 3.2 accepts a stream whose last message has no TSIG (RFC 8945 5.3.1 says MUST be
    // signed): it is no judge of this one.
    let k = kdig(&p, Some(&key()), &["AXFR", APEX]);
    assert!(k.ok && k.received() == (3, 252) && k.has_tsig() && !k.ends_with_tsig(), "{}", k.out);
    let t = transfer(p.addr(), None, Some(&key()), Duration::from_secs(5));
    assert_eq!((t.end, t.messages), (End::Complete, 3));
    assert!(t.tsig.as_ref().is_err_and(|e| e.starts_with("done:")), "{:?}", t.tsig);
}

#[test]
fn wrong_keys_fail_the_first_message() {
    let p = keyed(250);
    for fault in [Fault::WrongKey, Fault::WrongKeyName, Fault::WrongAlgorithm] {
        p.set_fault(Some(fault.clone()));
        let t = transfer(p.addr(), None, Some(&key()), Duration::from_secs(5));
        assert_eq!(t.end, End::Complete, "{fault:?}");
        assert!(t.tsig.as_ref().is_err_and(|e| e.starts_with("message 1:")), "{fault:?}: {:?}", t.tsig);
    }
    // The SOA answers too, with the same fault as an SOA fault.
    p.set_fault(None);
    p.set_soa_fault(Some(Fault::WrongKey));
    let k = kdig(&p, Some(&key()), &["SOA", APEX]);
    assert!(k.out.contains("failed to verify TSIG"), "{}", k.out);
    assert!(kdig(&p, Some(&key()), &["AXFR", APEX]).ok);
}

#[test]
fn ixfr_answers_incrementally_from_the_history() {
    let p =
        ScriptedPrimary::builder(APEX, 1, &["a.example.rpz. 60 IN A 192.0.2.1", "b.example.rpz. 60 IN A 192.0.2.2"])
            .key(key())
            .start(local());
    p.set_records(2, &["b.example.rpz. 60 IN A 192.0.2.2", "c.example.rpz. 60 IN A 192.0.2.3"]);
    p.set_records(3, &["c.example.rpz. 60 IN A 192.0.2.3", r#"d.example.rpz. 60 IN TXT "x y""#]);
    assert_eq!(p.serial(), 3);

    let k = kdig(&p, Some(&key()), &["IXFR=1", APEX]);
    assert!(k.ok, "{}", k.out);
    let lines: Vec<String> = k.records().iter().map(|f| format!("{} {}", f[0], f[4..].join(" "))).collect();
    let soa = |s: u32| format!("example.rpz. ns.example.rpz. hostmaster.example.rpz. {s} 60 30 3600 60");
    let want = [
        soa(3),
        soa(1),
        "a.example.rpz. 192.0.2.1".into(),
        soa(2),
        "c.example.rpz. 192.0.2.3".into(),
        soa(2),
        "b.example.rpz. 192.0.2.2".into(),
        soa(3),
        r#"d.example.rpz. "x y""#.into(),
        soa(3),
    ];
    assert_eq!(lines, want, "{}", k.out);
    assert_eq!(p.received().last().map(|r| (r.qtype, r.ixfr_serial, r.signed)), Some((Rtype::IXFR, Some(1), true)));

    // From serial 2: one step.
    assert_eq!(kdig(&p, Some(&key()), &["IXFR=2", APEX]).soa_serials(), [3, 2, 3, 3]);
    // Up to date, or ahead (RFC 1982): the current SOA alone.
    assert_eq!(kdig(&p, Some(&key()), &["IXFR=3", APEX]).soa_serials(), [3]);
    assert_eq!(kdig(&p, Some(&key()), &["IXFR=77", APEX]).soa_serials(), [3]);
    // Unknown and older: the AXFR form.
    let k = kdig(&p, Some(&key()), &["IXFR=4294967295", APEX]);
    assert_eq!((k.soa_serials(), k.records().len()), (vec![3, 3], 4), "{}", k.out);
    // Over UDP: the current SOA, which sends the client to TCP.
    let k = kdig(&p, Some(&key()), &["+notcp", "IXFR=1", APEX]);
    assert!(k.soa_serials() == [3] && k.out.contains("(UDP)"), "{}", k.out);

    // Our client agrees, with the TSIG of each message checked.
    let t = transfer(p.addr(), Some(1), Some(&key()), Duration::from_secs(5));
    assert_eq!((t.end, t.soa_serials(), t.tsig), (End::Complete, vec![3, 1, 2, 2, 3, 3], Ok(())));

    // set_serial: an empty step.
    p.set_serial(4);
    assert_eq!(kdig(&p, Some(&key()), &["IXFR=3", APEX]).soa_serials(), [4, 3, 4, 4]);
}

#[test]
fn broken_serial_chain_skips_a_serial() {
    let p = ScriptedPrimary::builder(APEX, 1, &["a.example.rpz. 60 IN A 192.0.2.1"]).key(key()).start(local());
    p.set_records(2, &["b.example.rpz. 60 IN A 192.0.2.2"]);
    p.set_records(3, &["c.example.rpz. 60 IN A 192.0.2.3"]);
    p.set_fault(Some(Fault::BrokenSerialChain));
    let t = transfer(p.addr(), Some(1), Some(&key()), Duration::from_secs(5));
    assert_eq!((t.end, &t.tsig), (End::Complete, &Ok(())));
    assert_eq!(t.soa_serials(), [3, 1, 2, 2 + (1 << 30), 3, 3]);
    let t = transfer(p.addr(), Some(2), Some(&key()), Duration::from_secs(5));
    assert_eq!(t.soa_serials(), [3, 2 + (1 << 30), 3, 3]);
    // AXFR is untouched.
    let t = transfer(p.addr(), None, Some(&key()), Duration::from_secs(5));
    assert_eq!((t.end, t.soa_serials(), t.records.len()), (End::Complete, vec![3, 3], 3));
}

#[test]
fn record_shapes_of_the_faults() {
    let p = keyed(250);
    let axfr = |fault: Fault| {
        p.set_fault(Some(fault));
        transfer(p.addr(), None, Some(&key()), Duration::from_secs(5))
    };
    let t = axfr(Fault::SoaClassCh);
    assert_eq!((&t.end, t.records.len()), (&End::Complete, 252));
    assert!(t.records.iter().all(|r| (r.rtype == Rtype::SOA) == (r.class == Class::CH)), "{:?}", t.records[0]);

    let t = axfr(Fault::EmptyZone);
    assert_eq!((&t.end, t.messages, t.soa_serials(), t.records.len()), (&End::Complete, 1, vec![10, 10], 2));

    let t = axfr(Fault::NoSoa);
    assert_eq!((&t.end, t.records[0].text.as_str()), (&End::NoSoa, "r0.example.rpz. 300 IN CNAME ."));

    let t = axfr(Fault::RecordAfterFinalSoa);
    assert_eq!((&t.end, t.messages), (&End::RecordsAfter(1), 3));
    assert_eq!(t.records.last().map(|r| r.text.as_str()), Some("after-final-soa.example.rpz. 300 IN A 192.0.2.66"));

    let t = axfr(Fault::MissingFinalSoa);
    assert_eq!((&t.end, t.records.len(), t.soa_serials()), (&End::Closed, 251, vec![10]));

    let t = axfr(Fault::CloseMidStream);
    assert_eq!((&t.end, t.records.len()), (&End::Closed, 126));

    let t = axfr(Fault::Refuse);
    assert_eq!((t.end, t.tsig), (End::Rcode(Rcode::REFUSED), Ok(())));

    let t = axfr(Fault::SerialBackwards(3));
    assert_eq!((&t.end, t.soa_serials()), (&End::Complete, vec![3, 3]));
    p.set_fault(Some(Fault::NotImpIxfr));
    let t = transfer(p.addr(), Some(9), Some(&key()), Duration::from_secs(5));
    assert_eq!((t.end, t.tsig), (End::Rcode(Rcode::NOTIMP), Ok(())));

    // SOA faults apply to SOA queries only.
    p.set_fault(None);
    p.set_soa_fault(Some(Fault::SerialBackwards(3)));
    assert_eq!(kdig(&p, Some(&key()), &["SOA", APEX]).soa_serials(), [3]);
    p.set_soa_fault(Some(Fault::SoaClassCh));
    let k = kdig(&p, Some(&key()), &["SOA", APEX]);
    assert!(k.records()[0][2] == "CH", "{}", k.out);
    p.set_soa_fault(Some(Fault::UnsignedLastMessage));
    let k = kdig(&p, Some(&key()), &["SOA", APEX]);
    assert!(!k.has_tsig() && k.soa_serials() == [10], "{}", k.out);
    assert_eq!(axfr(Fault::PauseMidStream(Duration::ZERO)).end, End::Complete);

    // A real step back.
    p.set_soa_fault(None);
    p.set_serial(5);
    assert_eq!(kdig(&p, Some(&key()), &["SOA", APEX]).soa_serials(), [5]);
}

#[test]
fn pause_mid_stream_stalls_then_finishes() {
    let p = keyed(250);
    p.set_fault(Some(Fault::PauseMidStream(Duration::from_millis(1500))));
    let t = transfer(p.addr(), None, Some(&key()), Duration::from_millis(500));
    assert_eq!((&t.end, t.records.len()), (&End::Timeout, 126));
    let started = Instant::now();
    let t = transfer(p.addr(), None, Some(&key()), Duration::from_secs(5));
    assert_eq!((&t.end, t.records.len(), &t.tsig), (&End::Complete, 252, &Ok(())));
    assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
}

#[test]
fn huge_zone_streams_fast() {
    let p = ScriptedPrimary::builder(APEX, 10, &[]).key(key()).records_per_message(1000).start(local());
    p.set_fault(Some(Fault::Huge(200_000)));
    let started = Instant::now();
    let k = kdig(&p, Some(&key()), &["+timeout=30", "+noall", "+stats", "AXFR", APEX]);
    let took = started.elapsed();
    assert!(k.ok, "{}", k.out);
    assert_eq!(k.received(), (201, 200_002), "{}", k.out);
    assert!(took < Duration::from_secs(30), "{took:?}");
    eprintln!("Huge(200000): {took:?}");
    // The names are made on the fly: n0 .. n199999.
    p.set_fault(Some(Fault::Huge(3)));
    let k = kdig(&p, Some(&key()), &["AXFR", APEX]);
    let names: Vec<&str> = k.records().iter().map(|f| f[0]).collect();
    assert_eq!(names, [APEX, "n0.example.rpz.", "n1.example.rpz.", "n2.example.rpz.", APEX], "{}", k.out);
}

#[test]
fn notify_is_sent_signed_and_its_reply_checked() {
    let sender = keyed(1);
    let listener = ScriptedPrimary::builder(APEX, 1, &[]).key(key()).start(local());
    let open = ScriptedPrimary::builder(APEX, 1, &[]).start(local());
    let reply = |target: &ScriptedPrimary, transport, key: Option<&TsigKey>| {
        sender.notify(target.addr(), transport, key).unwrap_or_else(|e| panic!("notify: {e}"))
    };
    for transport in [Transport::Udp, Transport::Tcp] {
        let r = reply(&listener, transport, Some(&key()));
        assert_eq!(
            r,
            NotifyReply { rcode: Rcode::NOERROR, opcode: Opcode::NOTIFY, aa: true, tsig: ReplyTsig::Verified }
        );
        let got = listener
            .wait_for(Duration::from_secs(2), |r| r.opcode == Opcode::NOTIFY && r.transport == transport)
            .expect("the NOTIFY arrived");
        assert_eq!((got.qname.as_str(), got.qtype, got.signed, got.tsig_error), (APEX, Rtype::SOA, true, None));

        let r = reply(&listener, transport, None);
        assert_eq!((r.rcode, r.tsig), (Rcode::REFUSED, ReplyTsig::Unsigned));
        let r = reply(&listener, transport, Some(&key().with_wrong_secret()));
        assert_eq!(r.rcode, Rcode::NOTAUTH);
        assert!(matches!(r.tsig, ReplyTsig::Failed { error: TsigRcode::BADSIG, .. }), "{:?}", r.tsig);
        let r = reply(&listener, transport, Some(&key().with_wrong_name()));
        assert!(matches!(r.tsig, ReplyTsig::Failed { error: TsigRcode::BADKEY, .. }), "{:?}", r.tsig);
        let r = reply(&open, transport, None);
        assert_eq!((r.rcode, r.aa, r.tsig), (Rcode::NOERROR, true, ReplyTsig::Unsigned));
    }
    // Nobody listening: an error, not a hang.
    let silent = UdpSocket::bind(local()).expect("bind");
    let started = Instant::now();
    assert!(sender.notify(silent.local_addr().expect("addr"), Transport::Udp, None).is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn drop_stops_streams_and_closes_the_sockets() {
    let p = keyed(250);
    p.set_fault(Some(Fault::PauseMidStream(Duration::from_secs(600))));
    let addr = p.addr();
    let client = std::thread::spawn(move || transfer(addr, None, Some(&key()), Duration::from_secs(30)));
    assert!(p.wait_for(Duration::from_secs(5), |r| r.qtype == Rtype::AXFR).is_some());
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    drop(p);
    assert!(started.elapsed() < Duration::from_secs(2), "drop took {:?}", started.elapsed());
    let t = client.join().expect("client");
    assert_eq!((t.end, t.records.len()), (End::Closed, 126));
    assert!(TcpStream::connect(addr).is_err(), "still listening on {addr}");
    UdpSocket::bind(addr).expect("the UDP port is free again");
}

#[test]
fn binds_inside_a_network_namespace() {
    if !privileged("binds_inside_a_network_namespace") {
        return;
    }
    let ns = Netns::new("badp");
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let p = ScriptedPrimary::builder(APEX, 42, &strs(&cnames(5)))
        .key(key())
        .soa_timers(SoaTimers { refresh: 5, retry: 2, expire: 60, minimum: 1 })
        .netns(&ns)
        .start("127.0.0.1:5353".parse().expect("address"));
    let port = p.addr().port().to_string();
    let out = ns.exec(&["kdig", "-y", &key().kdig_arg(), "@127.0.0.1", "-p", &port, "+timeout=2", "AXFR", APEX]);
    assert!(out.contains("(1 messages, 7 records)") && out.contains("hostmaster.example.rpz. 42 5 2 60 1"), "{out}");
    // The NOTIFY leaves from the namespace too.
    let peer = ScriptedPrimary::builder(APEX, 1, &[]).netns(&ns).start("127.0.0.1:5354".parse().expect("address"));
    let r = p.notify(peer.addr(), Transport::Udp, None).expect("notify inside the namespace");
    assert_eq!(r.rcode, Rcode::NOERROR);
    // Nothing listens on that port out here (this thread never entered the namespace).
    assert!(TcpStream::connect(p.addr()).is_err(), "{} answers outside the namespace", p.addr());
}
