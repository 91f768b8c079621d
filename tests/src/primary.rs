//! A scripted primary: an in-process DNS server that serves one zone by SOA query, AXFR
//! (RFC 5936) and IXFR (RFC 1995) over TCP, answers SOA and IXFR queries over UDP, signs with
//! TSIG (RFC 8945), sends NOTIFY (RFC 1996), and on request breaks the protocol in the ways
//! real primaries rarely do ([`Fault`]), for the tests of the daemon's secondary.
//!
//! It runs on plain threads and std sockets, on one TCP and one UDP socket of the same port,
//! optionally bound inside a network namespace (only the server's sockets enter it; the rest
//! of the process stays where it is). It records every request it receives ([`Received`]),
//! and dropping it stops its threads and closes its sockets, also when a test panics.
//!
//! Zone data are presentation-format lines (`www.example.rpz. 300 IN CNAME .`), with absolute
//! owner names; the SOA is made from the apex, the serial and [`SoaTimers`]. Each change of
//! the data ([`ScriptedPrimary::set_records`], [`ScriptedPrimary::set_serial`]) records a
//! delta from the previous version, so that IXFR can answer incrementally from any serial the
//! primary has served.
//!
//! ```no_run
//! use domain::tsig::Algorithm;
//! use filter_tests::primary::{Fault, ScriptedPrimary, TsigKey};
//!
//! let key = TsigKey::new(Algorithm::Sha256, "xfr-key", b"0123456789abcdef0123456789abcdef");
//! let primary = ScriptedPrimary::builder("example.rpz.", 1, &["www.example.rpz. 300 IN CNAME ."])
//!     .key(key)
//!     .start("127.0.0.1:0".parse().unwrap());
//! primary.set_records(2, &["www.example.rpz. 300 IN CNAME .", "ads.example.rpz. 300 IN CNAME ."]);
//! primary.set_fault(Some(Fault::MissingFinalSoa));
//! // ... point the secondary at primary.addr(), then look at primary.received().
//! ```

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io::{self, Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    str::FromStr as _,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use domain::{
    base::{
        Message, MessageBuilder, Name, Record, Serial, StreamTarget, Ttl,
        iana::{Class, Opcode, Rcode, Rtype, TsigRcode},
        message_builder::AnswerBuilder,
        scan::IterScanner,
    },
    rdata::{Cname, Soa, Tsig, ZoneRecordData},
    tsig::{Algorithm, ClientTransaction, Key, KeyName, ServerSequence},
};

pub use domain::rdata::tsig::Time48;

/// A name with its octets in a vector.
pub type Dname = Name<Vec<u8>>;

/// One resource record of the zone.
pub type Rr = Record<Dname, ZoneRecordData<Vec<u8>, Dname>>;

/// The largest DNS message (the TCP length prefix is 16 bits).
const MESSAGE_MAX: usize = 65_535;

/// How long [`ScriptedPrimary::notify`] waits for a connection or a reply.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// What [`Fault::BrokenSerialChain`] adds to the old serial of the step it breaks.
const BROKEN_CHAIN_OFFSET: u32 = 1 << 30;

/// How often idle server threads look at the stop flag.
const POLL: Duration = Duration::from_millis(10);

/// Transport of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A way to break the protocol. Set with [`PrimaryBuilder::fault`] / [`ScriptedPrimary::set_fault`]
/// it affects the answers to AXFR and IXFR; with [`PrimaryBuilder::soa_fault`] /
/// [`ScriptedPrimary::set_soa_fault`] it affects the answers to SOA queries (and to NOTIFY and
/// other queries), where only the faults that make sense for one message apply
/// (`SoaClassCh`, `UnsignedLastMessage`, `WrongKey`, `WrongKeyName`, `WrongAlgorithm`,
/// `SerialBackwards`, `Refuse`); the others are ignored there. IXFR over UDP, and IXFR from
/// a serial that is up to date, get the current SOA alone, which only `SoaClassCh`,
/// `SerialBackwards` and the signing faults change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// IXFR whose delta chain skips a serial: the old SOA of step 2 is not the new SOA of
    /// step 1 but that serial plus 2^30 (so it matches no real serial); with a single step,
    /// the old SOA of step 1 is the client's serial plus 2^30. AXFR-form answers are unchanged.
    BrokenSerialChain,
    /// One more record (`after-final-soa.APEX. 300 IN A 192.0.2.66`) after the closing SOA,
    /// in the same message.
    RecordAfterFinalSoa,
    /// The closing SOA is never sent: the primary closes the connection after the last record.
    MissingFinalSoa,
    /// With a key, the last message of the answer carries no TSIG (the others are signed).
    UnsignedLastMessage,
    /// Every SOA of the answer is in class CH.
    SoaClassCh,
    /// Transfers answer the valid but empty zone: SOA, SOA (IXFR too, in the AXFR form).
    EmptyZone,
    /// The first record of the answer is not the SOA (the opening SOA is left out).
    NoSoa,
    /// Transfers (IXFR too, in the AXFR form) stream this many generated records
    /// `n{i}.APEX. 300 IN CNAME .` instead of the zone's, made on the fly, at full speed.
    Huge(u64),
    /// Sends the first half of the records, flushes, keeps the connection open and silent for
    /// this long, then sends the rest.
    PauseMidStream(Duration),
    /// Sends the first half of the records, then closes the connection.
    CloseMidStream,
    /// Signs answers with another secret under the same key name and algorithm.
    WrongKey,
    /// Signs answers with the same secret and algorithm under another key name
    /// (`wrong.` prepended).
    WrongKeyName,
    /// Signs answers with the same name and secret under another algorithm (hmac-sha512, or
    /// hmac-sha256 when the key is hmac-sha512).
    WrongAlgorithm,
    /// Answers carry this serial instead of the zone's (transfers in the AXFR form, with the
    /// current records). To really move the zone back, use [`ScriptedPrimary::set_serial`].
    SerialBackwards(u32),
    /// REFUSED.
    Refuse,
    /// NOTIMP to IXFR (AXFR still works): the client must fall back to AXFR.
    NotImpIxfr,
}

/// A TSIG key with its secret, which [`Key`] does not give back.
#[derive(Clone, Debug)]
pub struct TsigKey {
    pub algorithm: Algorithm,
    /// The key name, absolute (`xfr-key.`).
    pub name: String,
    pub secret: Vec<u8>,
}

impl TsigKey {
    /// A key named `name` (a trailing dot is added when missing).
    pub fn new(algorithm: Algorithm, name: &str, secret: &[u8]) -> TsigKey {
        let name = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
        let key = TsigKey { algorithm, name, secret: secret.to_vec() };
        // A bad name panics here rather than in a server thread.
        let _ = key.key();
        key
    }

    /// The key for `domain::tsig`.
    pub fn key(&self) -> Key {
        let name = KeyName::from_str(&self.name).unwrap_or_else(|e| panic!("key name {}: {e}", self.name));
        Key::new(self.algorithm, &self.secret, name, None, None).unwrap_or_else(|e| panic!("key {}: {e}", self.name))
    }

    /// The secret in base64, as in a `key` clause or a Knot `keys:` section.
    pub fn secret_base64(&self) -> String {
        domain::utils::base64::encode_string(&self.secret)
    }

    /// The argument of `kdig -y` and `dig -y`: `hmac-sha256:NAME:BASE64`.
    pub fn kdig_arg(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.name.trim_end_matches('.'), self.secret_base64())
    }

    /// The same name and algorithm with another secret.
    pub fn with_wrong_secret(&self) -> TsigKey {
        let secret = self.secret.iter().map(|b| b ^ 0x5a).chain(*b"!").collect::<Vec<u8>>();
        TsigKey { secret, ..self.clone() }
    }

    /// The same secret and algorithm under the name `wrong.NAME`.
    pub fn with_wrong_name(&self) -> TsigKey {
        TsigKey { name: format!("wrong.{}", self.name), ..self.clone() }
    }

    /// The same name and secret under another algorithm.
    pub fn with_wrong_algorithm(&self) -> TsigKey {
        let algorithm = if self.algorithm == Algorithm::Sha512 { Algorithm::Sha256 } else { Algorithm::Sha512 };
        TsigKey { algorithm, ..self.clone() }
    }
}

/// The timers of the generated SOA (seconds). The SOA's own TTL is `minimum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoaTimers {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl Default for SoaTimers {
    /// refresh 60, retry 30, expire 3600, minimum 60.
    fn default() -> SoaTimers {
        SoaTimers { refresh: 60, retry: 30, expire: 3600, minimum: 60 }
    }
}

/// One request the primary received, and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub transport: Transport,
    pub from: SocketAddr,
    pub opcode: Opcode,
    /// The question's name, lower case, with its trailing dot (empty without a question).
    pub qname: String,
    pub qtype: Rtype,
    /// Whether the request carried a TSIG record (valid or not).
    pub signed: bool,
    /// The TSIG error it was refused with (NOTAUTH, or FORMERR for a malformed TSIG).
    pub tsig_error: Option<TsigRcode>,
    /// For IXFR, the serial of the SOA in the authority section.
    pub ixfr_serial: Option<u32>,
    /// The rcode of the (first message of the) answer.
    pub rcode: Rcode,
}

/// How the TSIG of a reply checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyTsig {
    /// No TSIG record.
    Unsigned,
    /// Signed with the request's key, and the signature verified.
    Verified,
    /// A TSIG record that does not verify: `error` is its error field (BADKEY, BADSIG... from
    /// a server that refused the request's signature), `reason` what the check said.
    Failed { error: TsigRcode, reason: String },
}

/// The reply to [`ScriptedPrimary::notify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyReply {
    pub rcode: Rcode,
    pub opcode: Opcode,
    pub aa: bool,
    pub tsig: ReplyTsig,
}

/// How to build a [`ScriptedPrimary`]; from [`ScriptedPrimary::builder`].
pub struct PrimaryBuilder {
    apex: Dname,
    serial: u32,
    records: Vec<Rr>,
    key: Option<TsigKey>,
    per_message: usize,
    fault: Option<Fault>,
    soa_fault: Option<Fault>,
    timers: SoaTimers,
    netns: Option<File>,
}

impl PrimaryBuilder {
    /// Signs with `key` and refuses unsigned requests (REFUSED) and other keys (NOTAUTH).
    pub fn key(mut self, key: TsigKey) -> PrimaryBuilder {
        self.key = Some(key);
        self
    }

    /// Records per message of a transfer (default 100; at least 1). A message also ends
    /// before it would exceed 65535 octets.
    pub fn records_per_message(mut self, n: usize) -> PrimaryBuilder {
        self.per_message = n.max(1);
        self
    }

    /// The fault of the AXFR and IXFR answers, from the start.
    pub fn fault(mut self, fault: Fault) -> PrimaryBuilder {
        self.fault = Some(fault);
        self
    }

    /// The fault of the SOA (and other single-message) answers, from the start.
    pub fn soa_fault(mut self, fault: Fault) -> PrimaryBuilder {
        self.soa_fault = Some(fault);
        self
    }

    /// The SOA timers (default [`SoaTimers::default`]).
    pub fn soa_timers(mut self, timers: SoaTimers) -> PrimaryBuilder {
        self.timers = timers;
        self
    }

    /// Binds the sockets inside `ns` (the rest of the process stays in its namespace).
    pub fn netns(mut self, ns: &testbed::Netns) -> PrimaryBuilder {
        self.netns = Some(ns.file().try_clone().unwrap_or_else(|e| panic!("netns {}: {e}", ns.name)));
        self
    }

    /// Binds TCP and UDP on `addr` and starts serving. With port 0, it takes a port free for
    /// both. Panics when it cannot bind.
    pub fn start(self, addr: SocketAddr) -> ScriptedPrimary {
        let (listener, udp) = in_netns(self.netns.as_ref(), move || bind_pair(addr))
            .unwrap_or_else(|e| panic!("scripted primary: bind {addr}: {e}"));
        let addr = listener.local_addr().expect("local address");
        let mut keys = HashMap::new();
        if let Some(key) = &self.key {
            let key = key.key();
            keys.insert((key.name().clone(), key.algorithm()), key);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                zone: Zone {
                    apex: self.apex,
                    serial: self.serial,
                    records: Arc::new(self.records),
                    history: Vec::new(),
                    timers: self.timers,
                },
                fault: self.fault,
                soa_fault: self.soa_fault,
            }),
            key: self.key,
            keys,
            per_message: self.per_message,
            log: Mutex::new(Vec::new()),
            logged: Condvar::new(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            panics: AtomicUsize::new(0),
        });
        let tcp = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("primary-tcp".into())
                .spawn(move || accept_loop(&shared, listener))
                .expect("spawn the TCP thread")
        };
        let udp = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("primary-udp".into())
                .spawn(move || udp_loop(&shared, udp))
                .expect("spawn the UDP thread")
        };
        ScriptedPrimary { addr, shared, threads: vec![tcp, udp], netns: self.netns }
    }
}

/// The running primary. Dropping it stops it and closes its sockets.
pub struct ScriptedPrimary {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    netns: Option<File>,
}

impl ScriptedPrimary {
    /// A primary for zone `apex` at `serial` with `records` (presentation-format lines with
    /// absolute owners; no SOA: the primary makes it). Panics on a line it cannot parse.
    pub fn builder(apex: &str, serial: u32, records: &[&str]) -> PrimaryBuilder {
        let apex = Dname::from_str(apex).unwrap_or_else(|e| panic!("apex {apex}: {e}"));
        PrimaryBuilder {
            apex,
            serial,
            records: parse_records(records),
            key: None,
            per_message: 100,
            fault: None,
            soa_fault: None,
            timers: SoaTimers::default(),
            netns: None,
        }
    }

    /// The address both sockets are bound to (with the port chosen when it was 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone's apex, with its trailing dot.
    pub fn apex(&self) -> String {
        presentation(&self.state().zone.apex)
    }

    /// The zone's current serial.
    pub fn serial(&self) -> u32 {
        self.state().zone.serial
    }

    /// The key the primary signs with, if any.
    pub fn key(&self) -> Option<&TsigKey> {
        self.shared.key.as_ref()
    }

    /// Replaces the records and the serial, recording the delta from the previous version for
    /// IXFR. Panics on a line it cannot parse.
    pub fn set_records(&self, serial: u32, records: &[&str]) {
        let records = parse_records(records);
        self.state().zone.update(serial, records);
    }

    /// Changes the serial only (an empty delta for IXFR); lower than before moves the zone
    /// back (RFC 1982 arithmetic is the client's business).
    pub fn set_serial(&self, serial: u32) {
        let mut state = self.state();
        let records = state.zone.records.as_ref().clone();
        state.zone.update(serial, records);
    }

    /// Sets or clears the fault of the AXFR and IXFR answers; connections already streaming
    /// keep the one they started with.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state().fault = fault;
    }

    /// Sets or clears the fault of SOA (and other single-message) answers.
    pub fn set_soa_fault(&self, fault: Option<Fault>) {
        self.state().soa_fault = fault;
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_received(&self) {
        lock(&self.shared.log).clear();
    }

    /// Waits up to `timeout` for a request that satisfies `pred` (one already received counts)
    /// and returns it.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Received) -> bool) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        let mut log = lock(&self.shared.log);
        loop {
            if let Some(found) = log.iter().find(|r| pred(r)) {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            log = self.shared.logged.wait_timeout(log, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Sends a NOTIFY for the zone (question APEX SOA, the current SOA in the answer section,
    /// AA set) to `target` over `transport`, signed with `key` when given (the primary's own
    /// key is [`ScriptedPrimary::key`]), from the primary's namespace, and returns the reply.
    /// Waits 3 s at most (`TimedOut`, or `WouldBlock` for UDP, when nothing came back).
    pub fn notify(&self, target: SocketAddr, transport: Transport, key: Option<&TsigKey>) -> io::Result<NotifyReply> {
        let soa = {
            let state = self.state();
            state.zone.soa(state.zone.serial, Class::IN)
        };
        let mut builder = MessageBuilder::from_target(StreamTarget::new_vec()).expect("vec target");
        builder.header_mut().set_random_id();
        builder.header_mut().set_opcode(Opcode::NOTIFY);
        builder.header_mut().set_aa(true);
        let mut question = builder.question();
        question.push((soa.owner(), Rtype::SOA, Class::IN)).map_err(io::Error::other)?;
        let mut answer = question.answer();
        answer.push(&soa).map_err(io::Error::other)?;
        let mut additional = answer.additional();
        let transaction = match key {
            Some(key) => {
                Some(ClientTransaction::request(key.key(), &mut additional, Time48::now()).map_err(io::Error::other)?)
            }
            None => None,
        };
        let request = additional.finish();
        let id = Message::from_octets(request.as_dgram_slice()).map_err(io::Error::other)?.header().id();
        let reply = in_netns(self.netns.as_ref(), move || exchange(target, transport, &request))?;
        let mut reply = Message::from_octets(reply).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if reply.header().id() != id || !reply.header().qr() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the reply is not an answer to the NOTIFY"));
        }
        let tsig = reply_tsig(&mut reply, transaction.as_ref());
        let header = reply.header();
        Ok(NotifyReply { rcode: header.rcode(), opcode: header.opcode(), aa: header.aa(), tsig })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }
}

impl Drop for ScriptedPrimary {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (_, stream) in lock(&self.shared.conns).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                self.shared.panics.fetch_add(1, Ordering::SeqCst);
            }
        }
        let panics = self.shared.panics.load(Ordering::SeqCst);
        if panics > 0 && !thread::panicking() {
            panic!("scripted primary: {panics} server thread(s) panicked");
        }
    }
}

/// Parses one presentation-format record: `OWNER TTL [CLASS] TYPE RDATA`, with an absolute
/// owner and double quotes around character strings that hold spaces.
pub fn parse_record(line: &str) -> Result<Rr, String> {
    let tokens = tokenize(line)?;
    let mut tokens = tokens.into_iter();
    let owner = tokens.next().ok_or("empty line")?;
    if !owner.ends_with('.') {
        return Err(format!("owner {owner}: not absolute (no trailing dot)"));
    }
    let owner = Dname::from_str(&owner).map_err(|e| format!("owner {owner}: {e}"))?;
    let ttl = tokens.next().ok_or("no TTL")?;
    let ttl = ttl.parse::<u32>().map_err(|e| format!("TTL {ttl}: {e}"))?;
    let mut next = tokens.next().ok_or("no type")?;
    let class = match Class::from_str(&next) {
        Ok(class) => {
            next = tokens.next().ok_or("no type")?;
            class
        }
        Err(_) => Class::IN,
    };
    let rtype = Rtype::from_str(&next).map_err(|e| format!("type {next}: {e}"))?;
    let mut scanner = IterScanner::<_, Vec<u8>>::new(tokens);
    let data = ZoneRecordData::scan(rtype, &mut scanner).map_err(|e| format!("{rtype} data: {e}"))?;
    if !scanner.is_exhausted() {
        return Err(format!("{rtype} data: too many fields"));
    }
    Ok(Record::new(owner, class, Ttl::from_secs(ttl), data))
}

fn parse_records(lines: &[&str]) -> Vec<Rr> {
    lines
        .iter()
        .map(|line| {
            let rr = parse_record(line).unwrap_or_else(|e| panic!("record `{line}`: {e}"));
            assert!(rr.rtype() != Rtype::SOA, "record `{line}`: the primary makes the SOA; give the serial instead");
            rr
        })
        .collect()
}

/// Splits a line on blanks; double quotes group a token (and are removed); a backslash keeps
/// the next character in the token (the escape itself is left for the scanner).
fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut token = String::new();
    let (mut quoted, mut started) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                token.push(c);
                token.push(chars.next().ok_or("backslash at the end of the line")?);
                started = true;
            }
            '"' => {
                quoted = !quoted;
                started = true;
            }
            ';' if !quoted => break,
            c if c.is_whitespace() && !quoted => {
                if started {
                    tokens.push(std::mem::take(&mut token));
                    started = false;
                }
            }
            c => {
                token.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if started {
        tokens.push(token);
    }
    Ok(tokens)
}

/// A name in presentation format, lower case, with its trailing dot.
fn presentation<N: std::fmt::Display>(name: &N) -> String {
    let name = name.to_string().to_ascii_lowercase();
    if name.ends_with('.') { name } else { format!("{name}.") }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on a thread that has entered the namespace `ns` (or here, without one).
fn in_netns<T: Send>(ns: Option<&File>, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let Some(ns) = ns else { return f() };
    thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns only changes this thread's network namespace; the descriptor is
                // open for the whole call.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// A TCP listener and a UDP socket on the same address; port 0 takes one free for both.
fn bind_pair(addr: SocketAddr) -> io::Result<(TcpListener, UdpSocket)> {
    if addr.port() != 0 {
        return Ok((TcpListener::bind(addr)?, UdpSocket::bind(addr)?));
    }
    let mut last = None;
    for _ in 0..64 {
        let listener = TcpListener::bind(addr)?;
        match UdpSocket::bind(listener.local_addr()?) {
            Ok(udp) => return Ok((listener, udp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}

/// Sends one request and reads its reply.
fn exchange(target: SocketAddr, transport: Transport, request: &StreamTarget<Vec<u8>>) -> io::Result<Vec<u8>> {
    match transport {
        Transport::Udp => {
            let local: SocketAddr = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("address");
            let socket = UdpSocket::bind(local)?;
            socket.connect(target)?;
            socket.set_read_timeout(Some(NOTIFY_TIMEOUT))?;
            socket.send(request.as_dgram_slice())?;
            let mut buf = vec![0; MESSAGE_MAX];
            let len = socket.recv(&mut buf)?;
            buf.truncate(len);
            Ok(buf)
        }
        Transport::Tcp => {
            let mut stream = TcpStream::connect_timeout(&target, NOTIFY_TIMEOUT)?;
            stream.set_read_timeout(Some(NOTIFY_TIMEOUT))?;
            stream.write_all(request.as_stream_slice())?;
            read_frame(&mut stream)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed without a reply"))
        }
    }
}

/// Reads one length-prefixed message; `None` when the peer closed before a new one.
fn read_frame(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Checks the TSIG of a reply to a request made with `transaction`.
fn reply_tsig(reply: &mut Message<Vec<u8>>, transaction: Option<&ClientTransaction<Key>>) -> ReplyTsig {
    let error = reply
        .additional()
        .ok()
        .and_then(|section| section.limit_to::<Tsig<_, _>>().last())
        .and_then(Result::ok)
        .map(|record| record.data().error());
    let Some(error) = error else { return ReplyTsig::Unsigned };
    match transaction.map(|t| t.answer(reply, Time48::now())) {
        Some(Ok(())) => ReplyTsig::Verified,
        Some(Err(e)) => ReplyTsig::Failed { error, reason: e.to_string() },
        None => ReplyTsig::Failed { error, reason: "signed reply to an unsigned request".into() },
    }
}

/// What the server threads share with the handle.
struct Shared {
    state: Mutex<State>,
    key: Option<TsigKey>,
    /// The key store: the primary's key, or nothing.
    keys: HashMap<(KeyName, Algorithm), Key>,
    per_message: usize,
    log: Mutex<Vec<Received>>,
    logged: Condvar,
    stop: AtomicBool,
    /// A handle on each open TCP connection, shut down on drop to wake its thread.
    conns: Mutex<HashMap<usize, TcpStream>>,
    panics: AtomicUsize,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn record(&self, received: Received) {
        lock(&self.log).push(received);
        self.logged.notify_all();
    }

    /// Sleeps for `d`, or until the primary stops.
    fn pause(&self, d: Duration) {
        let deadline = Instant::now() + d;
        while !self.stopped() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return };
            thread::sleep(left.min(POLL));
        }
    }
}

/// The mutable part: zone data and faults.
struct State {
    zone: Zone,
    fault: Option<Fault>,
    soa_fault: Option<Fault>,
}

#[derive(Clone)]
struct Zone {
    apex: Dname,
    serial: u32,
    records: Arc<Vec<Rr>>,
    /// Every change so far, oldest first; each starts where the previous one ended and the
    /// last one ends at `serial`.
    history: Vec<Arc<Delta>>,
    timers: SoaTimers,
}

struct Delta {
    from: u32,
    to: u32,
    removed: Vec<Rr>,
    added: Vec<Rr>,
}

impl Zone {
    fn update(&mut self, serial: u32, records: Vec<Rr>) {
        let old: HashSet<String> = self.records.iter().map(ToString::to_string).collect();
        let new: HashSet<String> = records.iter().map(ToString::to_string).collect();
        let removed = self.records.iter().filter(|r| !new.contains(&r.to_string())).cloned().collect();
        let added = records.iter().filter(|r| !old.contains(&r.to_string())).cloned().collect();
        self.history.push(Arc::new(Delta { from: self.serial, to: serial, removed, added }));
        self.serial = serial;
        self.records = Arc::new(records);
    }

    fn soa(&self, serial: u32, class: Class) -> Rr {
        let t = self.timers;
        let name = |label: &str| {
            let mut wire = vec![label.len() as u8];
            wire.extend_from_slice(label.as_bytes());
            wire.extend_from_slice(self.apex.as_slice());
            Dname::from_octets(wire).expect("a name under the apex")
        };
        let soa = Soa::new(
            name("ns"),
            name("hostmaster"),
            Serial(serial),
            Ttl::from_secs(t.refresh),
            Ttl::from_secs(t.retry),
            Ttl::from_secs(t.expire),
            Ttl::from_secs(t.minimum),
        );
        Record::new(self.apex.clone(), class, Ttl::from_secs(t.minimum), ZoneRecordData::Soa(soa))
    }

    /// The deltas that lead from `serial` to the current version, if the history has them.
    fn chain_from(&self, serial: u32) -> Option<&[Arc<Delta>]> {
        self.history.iter().rposition(|d| d.from == serial).map(|i| &self.history[i..])
    }

    /// `n{i}.APEX. 300 IN CNAME .`
    fn huge_record(&self, i: u64) -> Rr {
        let label = format!("n{i}");
        let mut wire = Vec::with_capacity(1 + label.len() + self.apex.as_slice().len());
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
        wire.extend_from_slice(self.apex.as_slice());
        let owner = Dname::from_octets(wire).expect("a name under the apex");
        Record::new(owner, Class::IN, Ttl::from_secs(300), ZoneRecordData::Cname(Cname::new(Dname::root_vec())))
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    listener.set_nonblocking(true).expect("non-blocking listener");
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut next = 0;
    while !shared.stopped() {
        match listener.accept() {
            Ok((stream, from)) => {
                next += 1;
                let id = next;
                let clone = match stream.set_nonblocking(false).and_then(|()| stream.try_clone()) {
                    Ok(clone) => clone,
                    Err(_) => continue,
                };
                {
                    let mut conns = lock(&shared.conns);
                    if shared.stopped() {
                        break;
                    }
                    conns.insert(id, clone);
                }
                let conn_shared = shared.clone();
                let spawned = thread::Builder::new().name("primary-conn".into()).spawn(move || {
                    let mut stream = stream;
                    let _ = stream.set_nodelay(true);
                    serve_connection(&conn_shared, &mut stream, from);
                    let _ = stream.shutdown(Shutdown::Both);
                    lock(&conn_shared.conns).remove(&id);
                });
                match spawned {
                    Ok(thread) => threads.push(thread),
                    Err(_) => {
                        lock(&shared.conns).remove(&id);
                    }
                }
                threads.retain(|t| !t.is_finished());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(_) => thread::sleep(POLL),
        }
    }
    for thread in threads {
        if thread.join().is_err() {
            shared.panics.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn udp_loop(shared: &Arc<Shared>, socket: UdpSocket) {
    socket.set_read_timeout(Some(POLL * 5)).expect("UDP read timeout");
    let mut buf = vec![0; MESSAGE_MAX];
    while !shared.stopped() {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue,
        };
        let mut out = UdpOut { socket: &socket, to: from };
        let _ = handle(shared, buf[..len].to_vec(), Transport::Udp, from, &mut out);
    }
}

fn serve_connection(shared: &Shared, stream: &mut TcpStream, from: SocketAddr) {
    while !shared.stopped() {
        let request = match read_frame(stream) {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => return,
        };
        match handle(shared, request, Transport::Tcp, from, stream) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) | Err(_) => return,
        }
    }
}

/// Where answers go.
trait Out {
    fn send(&mut self, message: &StreamTarget<Vec<u8>>) -> io::Result<()>;
}

struct UdpOut<'a> {
    socket: &'a UdpSocket,
    to: SocketAddr,
}

impl Out for UdpOut<'_> {
    fn send(&mut self, message: &StreamTarget<Vec<u8>>) -> io::Result<()> {
        self.socket.send_to(message.as_dgram_slice(), self.to).map(drop)
    }
}

impl Out for TcpStream {
    fn send(&mut self, message: &StreamTarget<Vec<u8>>) -> io::Result<()> {
        self.write_all(message.as_stream_slice())
    }
}

/// Whether a connection goes on after an answer.
enum Flow {
    Continue,
    Close,
}

type Builder = AnswerBuilder<StreamTarget<Vec<u8>>>;

/// Starts an answer to `request`: its ID and opcode, QR, and the question when `question`.
fn start(request: &Message<Vec<u8>>, rcode: Rcode, aa: bool, question: bool) -> Builder {
    let builder = MessageBuilder::from_target(StreamTarget::new_vec()).expect("vec target");
    let mut answer = if question {
        builder.start_answer(request, rcode).expect("the question fits")
    } else {
        let mut builder = builder;
        let header = builder.header_mut();
        header.set_id(request.header().id());
        header.set_qr(true);
        header.set_opcode(request.header().opcode());
        header.set_rcode(rcode);
        builder.answer()
    };
    answer.header_mut().set_aa(aa);
    answer
}

/// Ends a message, signed when there is a signer.
fn finish(answer: Builder, signer: Option<&mut ServerSequence<Key>>) -> StreamTarget<Vec<u8>> {
    let mut additional = answer.additional();
    additional.as_builder_mut().clear_push_limit();
    if let Some(signer) = signer {
        signer.answer(&mut additional, Time48::now()).expect("the TSIG record fits");
    }
    additional.finish()
}

/// What a request asks, parsed before its TSIG is checked.
struct Asked {
    opcode: Opcode,
    qname: Option<Dname>,
    qtype: Rtype,
    ixfr_serial: Option<u32>,
}

fn asked(request: &Message<Vec<u8>>) -> Asked {
    let question = request.sole_question().ok();
    let qtype = question.as_ref().map_or(Rtype::from_int(0), |q| q.qtype());
    let ixfr_serial = if qtype == Rtype::IXFR {
        request
            .authority()
            .ok()
            .and_then(|section| section.limit_to::<Soa<_>>().next())
            .and_then(Result::ok)
            .map(|record| record.data().serial().into_int())
    } else {
        None
    };
    Asked {
        opcode: request.header().opcode(),
        qname: question.map(|q| domain::base::ToName::to_vec(q.qname())),
        qtype,
        ixfr_serial,
    }
}

/// Answers one request.
fn handle(
    shared: &Shared,
    request: Vec<u8>,
    transport: Transport,
    from: SocketAddr,
    out: &mut dyn Out,
) -> io::Result<Flow> {
    let Ok(mut request) = Message::from_octets(request) else { return Ok(Flow::Close) };
    if request.header().qr() {
        return Ok(Flow::Continue);
    }
    let asked = asked(&request);
    let signed = request.additional().is_ok_and(|section| section.limit_to::<Tsig<_, _>>().next().is_some());
    let mut received = Received {
        transport,
        from,
        opcode: asked.opcode,
        qname: asked.qname.as_ref().map(presentation).unwrap_or_default(),
        qtype: asked.qtype,
        signed,
        tsig_error: None,
        ixfr_serial: asked.ixfr_serial,
        rcode: Rcode::NOERROR,
    };
    let signer = match ServerSequence::request(&shared.keys, &mut request, Time48::now()) {
        Ok(signer) => signer,
        Err(error) => {
            let tsig_error = error.error();
            let builder = MessageBuilder::from_target(StreamTarget::new_vec()).expect("vec target");
            let answer = error.build_message(&request, builder).map_err(io::Error::other)?;
            let mut answer = answer.finish();
            received.tsig_error = Some(if fix_badsig(&mut answer) { TsigRcode::BADSIG } else { tsig_error });
            received.rcode =
                Message::from_octets(answer.as_dgram_slice()).map_or(Rcode::SERVFAIL, |m| m.header().rcode());
            shared.record(received);
            out.send(&answer)?;
            return Ok(Flow::Continue);
        }
    };
    let (zone, fault, soa_fault) = {
        let state = lock(&shared.state);
        (state.zone.clone(), state.fault.clone(), state.soa_fault.clone())
    };
    let is_xfr = matches!(asked.qtype, Rtype::AXFR | Rtype::IXFR) && asked.opcode == Opcode::QUERY;
    let fault = if is_xfr { fault } else { soa_fault };
    let mut signer = match (signer, &fault) {
        (Some(_), Some(fault @ (Fault::WrongKey | Fault::WrongKeyName | Fault::WrongAlgorithm))) => {
            let key = shared.key.as_ref().expect("a signed request verified with the primary's key");
            Some(wrong_signer(&request, key, fault)?)
        }
        (signer, _) => signer,
    };
    let in_zone = asked.qname.as_ref().is_some_and(|q| q.ends_with(&zone.apex));
    let at_apex = asked.qname.as_ref().is_some_and(|q| *q == zone.apex);
    let refusal = if asked.qname.is_none() {
        Some(Rcode::FORMERR)
    } else if shared.key.is_some() && signer.is_none() {
        Some(Rcode::REFUSED)
    } else if !matches!(asked.opcode, Opcode::QUERY | Opcode::NOTIFY) {
        Some(Rcode::NOTIMP)
    } else if is_xfr && !at_apex {
        Some(Rcode::NOTAUTH)
    } else if !in_zone || (asked.opcode == Opcode::NOTIFY && !at_apex) || fault == Some(Fault::Refuse) {
        Some(Rcode::REFUSED)
    } else if asked.qtype == Rtype::IXFR && fault == Some(Fault::NotImpIxfr) {
        Some(Rcode::NOTIMP)
    } else if asked.qtype == Rtype::IXFR && asked.ixfr_serial.is_none() {
        Some(Rcode::FORMERR)
    } else if asked.qtype == Rtype::AXFR && transport == Transport::Udp {
        Some(Rcode::NOTIMP)
    } else {
        None
    };
    if let Some(rcode) = refusal {
        received.rcode = rcode;
        shared.record(received);
        out.send(&finish(start(&request, rcode, false, true), signer.as_mut()))?;
        return Ok(Flow::Continue);
    }
    shared.record(received);
    if !is_xfr || transport == Transport::Udp {
        // SOA, NOTIFY, other queries, and IXFR over UDP (answered with the current SOA only,
        // which sends the client to TCP, RFC 1995 section 2).
        let serial = match fault {
            Some(Fault::SerialBackwards(serial)) => serial,
            _ => zone.serial,
        };
        let class = if fault == Some(Fault::SoaClassCh) { Class::CH } else { Class::IN };
        let mut answer = start(&request, Rcode::NOERROR, true, true);
        if asked.opcode == Opcode::QUERY {
            if matches!(asked.qtype, Rtype::SOA | Rtype::IXFR) {
                answer.push(zone.soa(serial, class)).map_err(io::Error::other)?;
            } else {
                let qname = asked.qname.as_ref().expect("a question");
                for rr in zone.records.iter().filter(|r| r.owner() == qname && r.rtype() == asked.qtype) {
                    answer.push(rr).map_err(io::Error::other)?;
                }
            }
        }
        let signer = if fault == Some(Fault::UnsignedLastMessage) { None } else { signer.as_mut() };
        out.send(&finish(answer, signer))?;
        return Ok(Flow::Continue);
    }
    transfer(shared, &request, &zone, asked.ixfr_serial, fault, signer, out)
}

/// Works around domain 0.12.3, which answers a bad MAC with the TSIG error FORMERR where
/// RFC 8945 section 5.2.2 says BADSIG: in an unsigned NOTAUTH, the TSIG record is the last
/// one and ends with its error (2 octets) and an empty other data (2 octets of length).
/// Returns whether it changed the answer.
fn fix_badsig(answer: &mut StreamTarget<Vec<u8>>) -> bool {
    let is_notauth = Message::from_octets(answer.as_dgram_slice()).is_ok_and(|m| m.header().rcode() == Rcode::NOTAUTH);
    let message: &mut [u8] = answer.as_mut();
    let len = message.len();
    let formerr = TsigRcode::FORMERR.to_int().to_be_bytes();
    if !(is_notauth && len >= 4 && message[len - 4..len - 2] == formerr && message[len - 2..] == [0, 0]) {
        return false;
    }
    message[len - 4..len - 2].copy_from_slice(&TsigRcode::BADSIG.to_int().to_be_bytes());
    true
}

/// A signer that signs with the wrong key of `fault`. Its chain starts from a copy of the
/// request signed with that key (the primary cannot sign from the client's MAC without the
/// client's key), which the client cannot tell: the first message already fails to verify.
fn wrong_signer(request: &Message<Vec<u8>>, key: &TsigKey, fault: &Fault) -> io::Result<ServerSequence<Key>> {
    let wrong = match fault {
        Fault::WrongKey => key.with_wrong_secret(),
        Fault::WrongKeyName => key.with_wrong_name(),
        _ => key.with_wrong_algorithm(),
    }
    .key();
    let mut copy = MessageBuilder::new_vec();
    copy.header_mut().set_id(request.header().id());
    copy.header_mut().set_opcode(request.header().opcode());
    let mut question = copy.question();
    for q in request.question().flatten() {
        question.push(q).map_err(io::Error::other)?;
    }
    let mut additional = question.additional();
    ClientTransaction::request(wrong.clone(), &mut additional, Time48::now()).map_err(io::Error::other)?;
    let mut copy = Message::from_octets(additional.finish()).map_err(io::Error::other)?;
    match ServerSequence::request(&wrong, &mut copy, Time48::now()) {
        Ok(Some(signer)) => Ok(signer),
        _ => Err(io::Error::other("cannot verify the copy signed with the wrong key")),
    }
}

/// Streams an AXFR or IXFR answer over TCP.
fn transfer(
    shared: &Shared,
    request: &Message<Vec<u8>>,
    zone: &Zone,
    ixfr_serial: Option<u32>,
    fault: Option<Fault>,
    signer: Option<ServerSequence<Key>>,
    out: &mut dyn Out,
) -> io::Result<Flow> {
    let soa_class = if fault == Some(Fault::SoaClassCh) { Class::CH } else { Class::IN };
    let soa = |serial| zone.soa(serial, soa_class);
    let (serial, full) = match fault {
        Some(Fault::SerialBackwards(serial)) => (serial, true),
        Some(Fault::EmptyZone | Fault::Huge(_)) => (zone.serial, true),
        _ => (zone.serial, false),
    };
    let mut stream = Stream::new(shared, request, signer);
    let chain = match ixfr_serial {
        Some(_) if full => None,
        Some(asked) if asked == serial || Serial(asked) > Serial(serial) => {
            // Up to date (or ahead): the current SOA alone.
            stream.push(out, &soa(serial), false)?;
            stream.flush(out, fault != Some(Fault::UnsignedLastMessage))?;
            return Ok(Flow::Continue);
        }
        Some(asked) => zone.chain_from(asked),
        None => None,
    };
    // The records between the opening and the closing SOA, and how many there are.
    let (body, len): (Box<dyn Iterator<Item = Rr> + '_>, u64) = match (&fault, chain) {
        (Some(Fault::Huge(n)), _) => (Box::new((0..*n).map(|i| zone.huge_record(i))), *n),
        (Some(Fault::EmptyZone), _) => (Box::new(std::iter::empty()), 0),
        (_, Some(chain)) => {
            let broken = fault == Some(Fault::BrokenSerialChain);
            let mut items = Vec::new();
            for (i, delta) in chain.iter().enumerate() {
                let from = match (broken, i) {
                    (true, 0) if chain.len() == 1 => delta.from.wrapping_add(BROKEN_CHAIN_OFFSET),
                    (true, 1) => delta.from.wrapping_add(BROKEN_CHAIN_OFFSET),
                    _ => delta.from,
                };
                items.push(soa(from));
                items.extend(delta.removed.iter().cloned());
                items.push(soa(delta.to));
                items.extend(delta.added.iter().cloned());
            }
            let len = items.len() as u64;
            (Box::new(items.into_iter()), len)
        }
        _ => (Box::new(zone.records.iter().cloned()), zone.records.len() as u64),
    };
    let total = len + 2;
    let half = total / 2;
    let opening = (fault != Some(Fault::NoSoa)).then(|| soa(serial));
    let closing = (fault != Some(Fault::MissingFinalSoa)).then(|| soa(serial));
    for (i, rr) in opening.into_iter().chain(body).chain(closing).enumerate() {
        if i as u64 == half {
            match fault {
                Some(Fault::PauseMidStream(d)) => {
                    stream.flush(out, true)?;
                    shared.pause(d);
                }
                Some(Fault::CloseMidStream) => {
                    stream.flush(out, true)?;
                    return Ok(Flow::Close);
                }
                _ => {}
            }
        }
        stream.push(out, &rr, false)?;
    }
    if fault == Some(Fault::RecordAfterFinalSoa) {
        let extra = parse_record(&format!("after-final-soa.{} 300 IN A 192.0.2.66", presentation(&zone.apex)))
            .expect("the extra record");
        stream.push(out, &extra, true)?;
    }
    stream.flush(out, fault != Some(Fault::UnsignedLastMessage))?;
    Ok(if fault == Some(Fault::MissingFinalSoa) { Flow::Close } else { Flow::Continue })
}

/// The messages of one transfer: records per message, the size limit, the TSIG chain.
struct Stream<'a> {
    shared: &'a Shared,
    request: &'a Message<Vec<u8>>,
    signer: Option<ServerSequence<Key>>,
    limit: usize,
    current: Option<Builder>,
    count: usize,
    sent: usize,
}

impl<'a> Stream<'a> {
    fn new(shared: &'a Shared, request: &'a Message<Vec<u8>>, signer: Option<ServerSequence<Key>>) -> Stream<'a> {
        let tsig = signer.as_ref().map_or(0, |s| usize::from(s.key().compose_len()));
        Stream { shared, request, signer, limit: MESSAGE_MAX - tsig, current: None, count: 0, sent: 0 }
    }

    /// Adds a record, ending the message first when it is full, unless `together` (the record
    /// then goes with the previous one).
    fn push(&mut self, out: &mut dyn Out, rr: &Rr, together: bool) -> io::Result<()> {
        if self.count >= self.shared.per_message && !together {
            self.flush(out, true)?;
        }
        if self.current.as_mut().is_some_and(|b| b.push(rr).is_ok()) {
            self.count += 1;
            return Ok(());
        }
        if self.current.is_some() {
            self.flush(out, true)?;
        }
        let mut builder = start(self.request, Rcode::NOERROR, true, self.sent == 0);
        builder.as_builder_mut().set_push_limit(self.limit);
        builder.push(rr).map_err(|e| io::Error::other(format!("{rr}: {e}")))?;
        self.current = Some(builder);
        self.count = 1;
        Ok(())
    }

    /// Sends the message being built, signed when `sign` and there is a key.
    fn flush(&mut self, out: &mut dyn Out, sign: bool) -> io::Result<()> {
        let Some(builder) = self.current.take() else { return Ok(()) };
        let signer = if sign { self.signer.as_mut() } else { None };
        out.send(&finish(builder, signer))?;
        self.count = 0;
        self.sent += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let rr = parse_record("www.example.rpz. 300 IN CNAME .").unwrap();
        assert_eq!(rr.rtype(), Rtype::CNAME);
        assert_eq!(rr.ttl().as_secs(), 300);
        let rr = parse_record(r#"t.example.rpz. 60 TXT "hello world" two"#).unwrap();
        assert_eq!(rr.class(), Class::IN);
        assert_eq!(rr.to_string(), r#"t.example.rpz. 60 IN TXT "hello world" "two""#);
        assert!(parse_record("a.example.rpz. 60 IN A 192.0.2.1").is_ok());
        assert!(parse_record("a.example.rpz. 60 IN AAAA 2001:db8::1").is_ok());
        assert!(parse_record("example.rpz. 60 IN NS ns.example.").is_ok());
        assert!(parse_record("a.example.rpz 60 IN A 192.0.2.1").is_err());
        assert!(parse_record("a.example.rpz. 60 IN A 192.0.2.1 extra").is_err());
        assert!(parse_record("a.example.rpz. x IN A 192.0.2.1").is_err());
    }

    #[test]
    fn deltas_chain() {
        let apex = Dname::from_str("example.rpz.").unwrap();
        let one = parse_records(&["a.example.rpz. 60 IN A 192.0.2.1", "b.example.rpz. 60 IN A 192.0.2.2"]);
        let mut zone =
            Zone { apex, serial: 1, records: Arc::new(one), history: Vec::new(), timers: SoaTimers::default() };
        zone.update(2, parse_records(&["b.example.rpz. 60 IN A 192.0.2.2", "c.example.rpz. 60 IN A 192.0.2.3"]));
        zone.update(3, zone.records.as_ref().clone());
        let chain = zone.chain_from(1).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!((chain[0].from, chain[0].to, chain[1].from, chain[1].to), (1, 2, 2, 3));
        assert_eq!(chain[0].removed.len(), 1);
        assert_eq!(chain[0].added[0].owner().to_string(), "c.example.rpz");
        assert!(chain[1].removed.is_empty() && chain[1].added.is_empty());
        assert!(zone.chain_from(7).is_none());
    }
}
