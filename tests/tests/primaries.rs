//! The real primaries of the testbed (`testbed::knot`, `testbed::bind`): Knot DNS 3.2 and BIND
//! 9.18, each in a namespace of its own joined to a client namespace by a veth pair
//! (`testbed::PrimaryNet`). kdig in the client namespace judges what they transfer; a small
//! listener of our own (the `domain` crate, which checks the TSIG signature) takes their
//! NOTIFY messages.
//!
//! Each test has its own namespaces and folder, removed on drop also when it fails.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    str::FromStr as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use domain::{
    base::{
        Message, MessageBuilder, StreamTarget,
        iana::{Opcode, Rcode},
    },
    rdata::{Soa, tsig::Time48},
    tsig::{Algorithm, Key, KeyName, ServerTransaction},
};
use filter_tests::privileged;
use testbed::{
    Bind, Knot, KnotZone, Netns, PrimaryNet, Transfer, TsigKey, WorkDir, Xfr,
    primary::{base64, rpz_zone, soa_serial, transfer},
    unique_name,
};

/// A client namespace, a primary's namespace joined to it, and a folder.
struct Bed {
    client: Netns,
    net: PrimaryNet,
    work: WorkDir,
}

impl Bed {
    fn new(tag: &str) -> Bed {
        let client = Netns::unique(tag).expect("client namespace");
        let net = PrimaryNet::create(&unique_name(tag), &client, 1).expect("primary namespace");
        let work = WorkDir::create(std::env::temp_dir().join(unique_name(tag))).expect("work folder");
        Bed { client, net, work }
    }

    fn primary(&self) -> IpAddr {
        self.net.primary_addr.into()
    }

    /// A transfer of `zone` asked from the client namespace.
    fn transfer(&self, zone: &str, xfr: Xfr, key: Option<&TsigKey>) -> Transfer {
        transfer(&self.client, self.primary(), zone, xfr, key).expect("run kdig")
    }
}

/// The raw secret of [`key`].
const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

/// The transfer key, with a secret the NOTIFY listener knows.
fn key() -> TsigKey {
    TsigKey::new("xfr-key", "hmac-sha256", &base64(SECRET))
}

/// A transfer that worked: no error, signed as asked.
fn assert_ok(t: &Transfer, signed: bool) {
    assert!(t.error.is_none() && t.signed == signed && !t.records.is_empty(), "{}", t.raw);
}

/// A transfer that was refused: an error and no records.
fn assert_refused(t: &Transfer) {
    assert!(t.error.is_some() && t.records.is_empty(), "expected a refusal:\n{}", t.raw);
}

const ZONE: &str = "block.rpz";

fn zone_text(serial: u32) -> String {
    rpz_zone(ZONE, serial, &["allostreaming.com CNAME .", "*.allostreaming.com CNAME .", "alloshare.com CNAME ."])
}

#[test]
fn knot_transfers_need_the_key_and_a_commit_is_an_ixfr() {
    if !privileged("knot_transfers_need_the_key_and_a_commit_is_an_ixfr") {
        return;
    }
    let bed = Bed::new("pknot");
    let key = key();
    let zones = [KnotZone::new(ZONE, &zone_text(1))];
    let knot = Knot::start(&bed.net.ns, bed.work.path(), bed.primary(), Some(&key), &[], &zones).expect("start knotd");

    let axfr = bed.transfer(ZONE, Xfr::Axfr, Some(&key));
    assert_ok(&axfr, true);
    assert!(axfr.is_full() && axfr.soa_serials() == [1, 1], "{}", axfr.raw);
    assert!(axfr.contains("*.allostreaming.com.block.rpz.", "CNAME"), "{}", axfr.raw);
    assert_refused(&bed.transfer(ZONE, Xfr::Axfr, None));
    assert_refused(&bed.transfer(ZONE, Xfr::Axfr, Some(&TsigKey::generate("xfr-key", "hmac-sha256"))));
    assert_refused(&bed.transfer(ZONE, Xfr::Ixfr(0), None));

    assert_eq!(knot.serial(ZONE).expect("serial"), 1);
    let serial = knot.commit(ZONE, &["alloshowtv.com 3600 CNAME ."], &["*.allostreaming.com CNAME ."]).expect("commit");
    assert_eq!(serial, 2);
    assert_eq!(soa_serial(&bed.client, bed.primary(), ZONE).expect("kdig"), Some(2));

    let ixfr = bed.transfer(ZONE, Xfr::Ixfr(1), Some(&key));
    assert_ok(&ixfr, true);
    assert!(ixfr.is_incremental(), "{}", ixfr.raw);
    // New SOA, old SOA, what went, new SOA, what came, new SOA.
    assert_eq!(ixfr.soa_serials(), [2, 1, 2, 2], "{}", ixfr.raw);
    assert_eq!(ixfr.records.len(), 6, "{}", ixfr.raw);
    assert!(ixfr.records[2].name == "*.allostreaming.com.block.rpz.", "{}", ixfr.raw);
    assert!(ixfr.records[4].name == "alloshowtv.com.block.rpz.", "{}", ixfr.raw);

    let current = bed.transfer(ZONE, Xfr::Ixfr(2), Some(&key));
    assert!(current.error.is_none() && current.soa_serials() == [2] && current.records.len() == 1, "{}", current.raw);

    let bad = knot.commit(ZONE, &["ok.example 3600 CNAME ."], &["missing.example CNAME ."]);
    assert!(bad.is_err(), "removing a missing record must fail");
    assert_eq!(knot.serial(ZONE).expect("serial"), 2, "a failed commit must change nothing");
    assert!(!bed.transfer(ZONE, Xfr::Axfr, Some(&key)).contains("ok.example.block.rpz", "CNAME"));
}

#[test]
fn knot_rewrites_and_bulk_changes_are_ixfrs_until_the_journal_is_purged() {
    if !privileged("knot_rewrites_and_bulk_changes_are_ixfrs_until_the_journal_is_purged") {
        return;
    }
    let bed = Bed::new("pknotbulk");
    let zones = [KnotZone::new(ZONE, &zone_text(1))];
    // No key: transfers are open.
    let knot = Knot::start(&bed.net.ns, bed.work.path(), bed.primary(), None, &[], &zones).expect("start knotd");
    assert_ok(&bed.transfer(ZONE, Xfr::Axfr, None), false);

    // The serial of the file is ignored: Knot increments its own.
    let text = rpz_zone(ZONE, 1, &["allostreaming.com CNAME .", "alloshare.com CNAME .", "allomovies.com CNAME ."]);
    assert_eq!(knot.rewrite_zone(ZONE, &text).expect("rewrite"), 2);
    let ixfr = bed.transfer(ZONE, Xfr::Ixfr(1), None);
    assert!(ixfr.is_incremental() && ixfr.soa_serials() == [2, 1, 2, 2], "{}", ixfr.raw);
    assert_eq!(ixfr.find("*.allostreaming.com.block.rpz", "CNAME").len(), 1, "{}", ixfr.raw);
    assert_eq!(ixfr.find("allomovies.com.block.rpz", "CNAME").len(), 1, "{}", ixfr.raw);
    assert_eq!(ixfr.records.len(), 6, "{}", ixfr.raw);
    assert_eq!(knot.rewrite_zone(ZONE, &text).expect("rewrite"), 2, "the same text changes nothing");

    const BULK: usize = 100_000;
    let add: Vec<String> = (0..BULK).map(|i| format!("n{i}.example CNAME .")).collect();
    let started = Instant::now();
    let serial = knot.commit_many(ZONE, &add, &["alloshare.com CNAME .".to_string()]).expect("commit_many");
    eprintln!("commit_many of {BULK} records: {:?}", started.elapsed());
    assert_eq!(serial, 3);
    let ixfr = bed.transfer(ZONE, Xfr::Ixfr(2), None);
    assert!(ixfr.is_incremental(), "{}", testbed::tail(&ixfr.raw, 20));
    assert_eq!(ixfr.records.len(), BULK + 5);
    assert!(ixfr.contains("n99999.example.block.rpz", "CNAME") && ixfr.contains("alloshare.com.block.rpz", "CNAME"));

    // Without the journal, an IXFR from an old serial gets the whole zone.
    knot.purge_journal(ZONE).expect("purge the journal");
    let full = bed.transfer(ZONE, Xfr::Ixfr(2), None);
    assert!(full.error.is_none() && full.is_full() && !full.is_incremental(), "{}", testbed::tail(&full.raw, 20));
    assert_eq!(full.records.len(), BULK + 5, "SOA, NS, two names, the bulk, SOA");
    assert_eq!(knot.commit(ZONE, &["after.example 60 CNAME ."], &[]).expect("commit after the purge"), 4);
    assert!(bed.transfer(ZONE, Xfr::Ixfr(3), None).is_incremental());
}

#[test]
fn knot_resets_restarts_pauses_and_stops() {
    if !privileged("knot_resets_restarts_pauses_and_stops") {
        return;
    }
    let bed = Bed::new("pknotreset");
    let zones = [KnotZone::new(ZONE, &zone_text(1))];
    let mut knot = Knot::start(&bed.net.ns, bed.work.path(), bed.primary(), None, &[], &zones).expect("start knotd");
    knot.commit(ZONE, &["a.example 60 CNAME ."], &[]).expect("commit");
    assert_eq!(knot.commit(ZONE, &["b.example 60 CNAME ."], &[]).expect("commit"), 3);
    assert!(bed.transfer(ZONE, Xfr::Ixfr(1), None).is_incremental());

    // A primary that comes back with an older serial.
    assert_eq!(knot.reset_zone(ZONE, &zone_text(1)).expect("reset"), 1);
    assert_eq!(soa_serial(&bed.client, bed.primary(), ZONE).expect("kdig"), Some(1));
    assert_eq!(bed.transfer(ZONE, Xfr::Axfr, None).records.len(), 6);
    assert_eq!(knot.commit(ZONE, &["x.example 60 CNAME ."], &[]).expect("commit"), 2);
    // The journal outlives a restart: the IXFR is still there.
    knot.restart().expect("restart");
    assert_eq!(knot.serial(ZONE).expect("serial"), 2);
    let ixfr = bed.transfer(ZONE, Xfr::Ixfr(1), None);
    assert!(ixfr.is_incremental() && ixfr.contains("x.example.block.rpz", "CNAME"), "{}", ixfr.raw);

    // A paused primary answers nothing, then serves on.
    knot.pause().expect("pause");
    assert_eq!(soa_serial(&bed.client, bed.primary(), ZONE).expect("kdig"), None);
    knot.resume().expect("resume");
    assert_eq!(soa_serial(&bed.client, bed.primary(), ZONE).expect("kdig"), Some(2));
    knot.stop();
    assert_eq!(soa_serial(&bed.client, bed.primary(), ZONE).expect("kdig"), None);
}

/// A NOTIFY as received.
#[derive(Debug)]
struct Notified {
    tcp: bool,
    zone: String,
    serial: Option<u32>,
    /// Signed, and the signature checks out with [`key`].
    verified: bool,
}

/// Takes NOTIFY messages on UDP and TCP at an address of a namespace, from a thread that
/// entered it, and answers each (signed when it was). Stops when dropped.
struct NotifyListener {
    addr: SocketAddr,
    got: mpsc::Receiver<Notified>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NotifyListener {
    fn start(ns: &Netns, addr: SocketAddr) -> NotifyListener {
        let fd = ns.file().try_clone().expect("namespace file");
        let (tx, got) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            // SAFETY: setns with a namespace descriptor held open; it changes only this thread.
            if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                ready_tx.send(Err(std::io::Error::last_os_error())).unwrap();
                return;
            }
            let bound = UdpSocket::bind(addr).and_then(|u| Ok((u, TcpListener::bind(addr)?)));
            let (udp, tcp) = match bound {
                Ok(sockets) => sockets,
                Err(e) => return ready_tx.send(Err(e)).unwrap(),
            };
            udp.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            tcp.set_nonblocking(true).unwrap();
            ready_tx.send(Ok(())).unwrap();
            let key = Key::new(Algorithm::Sha256, SECRET, KeyName::from_str("xfr-key.").unwrap(), None, None).unwrap();
            let mut buf = vec![0u8; 65535];
            while !stopping.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf)
                    && let Some((got, reply)) = take(&key, buf[..n].to_vec(), false)
                {
                    let _ = tx.send(got);
                    let _ = udp.send_to(reply.as_dgram_slice(), from);
                }
                match tcp.accept() {
                    Ok((stream, _)) => serve_tcp(&key, stream, &tx),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        ready.recv().expect("listener thread").unwrap_or_else(|e| panic!("NOTIFY listener on {addr}: {e}"));
        NotifyListener { addr, got, stop, thread: Some(thread) }
    }

    /// Waits up to 10 s for a NOTIFY of `zone` with `serial`; returns it and those before.
    fn wait(&self, zone: &str, serial: u32) -> (Notified, Vec<Notified>) {
        let deadline = Instant::now() + Duration::from_secs(10) * testbed::time_scale();
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.got.recv_timeout(left) {
                Ok(n) if n.zone == zone && n.serial == Some(serial) => return (n, before),
                Ok(n) => before.push(n),
                Err(_) => panic!("no NOTIFY of {zone} serial {serial} at {} in 10 s; got {before:?}", self.addr),
            }
        }
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads length-prefixed messages from one TCP connection until the peer closes it.
fn serve_tcp(key: &Key, mut stream: TcpStream, tx: &mpsc::Sender<Notified>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut len = [0u8; 2];
    while stream.read_exact(&mut len).is_ok() {
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut msg).is_err() {
            return;
        }
        if let Some((got, reply)) = take(key, msg, true) {
            let _ = tx.send(got);
            let _ = stream.write_all(reply.as_stream_slice());
        }
    }
}

/// A NOTIFY request taken apart, with its answer; `None` for anything else.
fn take(key: &Key, octets: Vec<u8>, tcp: bool) -> Option<(Notified, StreamTarget<Vec<u8>>)> {
    let mut msg = Message::from_octets(octets).ok()?;
    if msg.header().qr() || msg.header().opcode() != Opcode::NOTIFY {
        return None;
    }
    let zone = msg.first_question()?.qname().to_string().trim_end_matches('.').to_string();
    let serial = msg
        .answer()
        .ok()
        .and_then(|a| a.limit_to::<Soa<_>>().next())
        .and_then(Result::ok)
        .map(|r| r.data().serial().into_int());
    let signer = ServerTransaction::request(key, &mut msg, Time48::now());
    let verified = matches!(signer, Ok(Some(_)));
    let builder = MessageBuilder::from_target(StreamTarget::new_vec()).unwrap();
    let mut answer = builder.start_answer(&msg, Rcode::NOERROR).unwrap();
    answer.header_mut().set_aa(true);
    let mut additional = answer.additional();
    if let Ok(Some(signer)) = signer {
        signer.answer(&mut additional, Time48::now()).unwrap();
    }
    Some((Notified { tcp, zone, serial, verified }, additional.finish()))
}

#[test]
fn knot_sends_a_signed_notify_over_tcp() {
    if !privileged("knot_sends_a_signed_notify_over_tcp") {
        return;
    }
    let bed = Bed::new("pknotify");
    let target = SocketAddr::new(bed.net.peer_addr.into(), 5300);
    let listener = NotifyListener::start(&bed.client, target);
    let key = key();
    let zones = [KnotZone::new(ZONE, &zone_text(7))];
    let knot =
        Knot::start(&bed.net.ns, bed.work.path(), bed.primary(), Some(&key), &[target], &zones).expect("start knotd");
    // Knot notifies once when it starts, then after each change.
    let (first, _) = listener.wait("block.rpz", 7);
    let serial = knot.commit(ZONE, &["alloshowtv.com 300 CNAME ."], &[]).expect("commit");
    let (notify, before) = listener.wait("block.rpz", serial);
    for n in std::iter::once(&first).chain(&before).chain([&notify]) {
        // Knot 3.2 has no NOTIFY over UDP.
        assert!(n.tcp && n.verified, "{n:?}");
    }
    assert!(knot.log().contains("notify, outgoing, remote"), "{}", knot.log());
}

#[test]
fn bind_transfers_need_the_key_and_a_rewrite_is_an_ixfr() {
    if !privileged("bind_transfers_need_the_key_and_a_rewrite_is_an_ixfr") {
        return;
    }
    let bed = Bed::new("pbind");
    let target = SocketAddr::new(bed.net.peer_addr.into(), 5300);
    let listener = NotifyListener::start(&bed.client, target);
    let key = key();
    let zones = [(ZONE.to_string(), zone_text(10))];
    let bind = Bind::start(&bed.net.ns, bed.work.path(), bed.primary(), Some(&key), &[target], &zones).expect("named");

    let axfr = bed.transfer(ZONE, Xfr::Axfr, Some(&key));
    assert_ok(&axfr, true);
    assert!(axfr.is_full() && axfr.contains("alloshare.com.block.rpz", "CNAME"), "{}", axfr.raw);
    assert_refused(&bed.transfer(ZONE, Xfr::Axfr, None));
    assert_refused(&bed.transfer(ZONE, Xfr::Axfr, Some(&TsigKey::generate("xfr-key", "hmac-sha256"))));
    assert_eq!(bind.serial(ZONE).expect("serial"), 10);

    let text = rpz_zone(ZONE, 11, &["allostreaming.com CNAME .", "alloshare.com CNAME .", "allomovies.com CNAME ."]);
    assert_eq!(bind.rewrite_zone(ZONE, &text).expect("rewrite"), 11);
    let ixfr = bed.transfer(ZONE, Xfr::Ixfr(10), Some(&key));
    assert_ok(&ixfr, true);
    assert!(ixfr.is_incremental() && ixfr.soa_serials() == [11, 10, 11, 11], "{}", ixfr.raw);
    assert_eq!(ixfr.find("*.allostreaming.com.block.rpz", "CNAME").len(), 1, "{}", ixfr.raw);
    assert_eq!(ixfr.find("allomovies.com.block.rpz", "CNAME").len(), 1, "{}", ixfr.raw);
    assert!(bind.rewrite_zone(ZONE, &zone_text(11)).is_err(), "a serial that does not grow is refused");

    // BIND notifies over UDP, signed.
    let (notify, _) = listener.wait("block.rpz", 11);
    assert!(!notify.tcp && notify.verified, "{notify:?}");
}

/// The member zones a catalog zone's transfer lists (the PTR data), sorted.
fn members(t: &Transfer) -> Vec<String> {
    let mut m: Vec<String> = t.records.iter().filter(|r| r.rtype == "PTR").map(|r| r.data.clone()).collect();
    m.sort();
    m
}

#[test]
fn knot_generates_a_catalog_of_its_members() {
    if !privileged("knot_generates_a_catalog_of_its_members") {
        return;
    }
    let bed = Bed::new("pcatalog");
    let key = key();
    let catalog = "catalog.invalid";
    let zones = [
        KnotZone::new("one.rpz", &rpz_zone("one.rpz", 1, &["a.example CNAME ."])).member_of(catalog),
        KnotZone::new(ZONE, &zone_text(1)),
    ];
    let mut knot =
        Knot::start(&bed.net.ns, bed.work.path(), bed.primary(), Some(&key), &[], &zones).expect("start knotd");
    let axfr = bed.transfer(catalog, Xfr::Axfr, Some(&key));
    assert_ok(&axfr, true);
    assert!(axfr.is_full(), "{}", axfr.raw);
    assert_eq!(members(&axfr), ["one.rpz."], "{}", axfr.raw);
    assert!(axfr.find("version.catalog.invalid", "TXT").iter().any(|r| r.data == "\"2\""), "{}", axfr.raw);
    let first = axfr.soa_serials()[0];

    let serial = knot
        .add_catalog_member(catalog, KnotZone::new("two.rpz", &rpz_zone("two.rpz", 5, &["b.example CNAME ."])))
        .expect("add a member");
    assert!(serial > first);
    let axfr = bed.transfer(catalog, Xfr::Axfr, Some(&key));
    assert_eq!(members(&axfr), ["one.rpz.", "two.rpz."], "{}", axfr.raw);
    let two = bed.transfer("two.rpz", Xfr::Axfr, Some(&key));
    assert!(two.contains("b.example.two.rpz", "CNAME") && two.soa_serials() == [5, 5], "{}", two.raw);
    let ixfr = bed.transfer(catalog, Xfr::Ixfr(first), Some(&key));
    assert!(ixfr.is_incremental() && ixfr.records.iter().any(|r| r.data == "two.rpz."), "{}", ixfr.raw);

    let after = knot.remove_catalog_member("one.rpz").expect("remove a member");
    assert!(after > serial);
    assert_eq!(members(&bed.transfer(catalog, Xfr::Axfr, Some(&key))), ["two.rpz."]);
    assert_refused(&bed.transfer("one.rpz", Xfr::Axfr, Some(&key)));

    // The members added at run time survive a restart.
    knot.restart().expect("restart");
    assert_eq!(members(&bed.transfer(catalog, Xfr::Axfr, Some(&key))), ["two.rpz."]);
}
