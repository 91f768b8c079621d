//! What the real DNS primaries ([`crate::knot::Knot`], [`crate::bind::Bind`]) share: TSIG keys,
//! a network namespace of the primary's own joined to another one by a veth pair
//! ([`PrimaryNet`]), and zone transfers and SOA queries with kdig from inside a namespace
//! ([`transfer`], [`soa_serial`]).
//!
//! ```text
//!  peer netns (e.g. a Testbed's edge)                primary netns BASE-priN
//!  the secondary, kdig                               knotd or named
//!  veth-priN 10.54.N.1 fd54:N::1    <------>         veth-primary 10.54.N.2 fd54:N::2
//! ```

use std::{
    ffi::OsStr,
    fs::File,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::Command,
};

use crate::{Netns, Result, cmd, dig::Record};

/// A TSIG key (RFC 8945) as the servers' configurations and kdig's `-y` spell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigKey {
    /// The key name, without the final dot, e.g. `xfr-key`.
    pub name: String,
    /// The algorithm as BIND, Knot and kdig name it: `hmac-sha256`, `hmac-sha512`, ...
    pub algorithm: String,
    /// The secret, base64.
    pub secret: String,
}

impl TsigKey {
    pub fn new(name: &str, algorithm: &str, secret: &str) -> TsigKey {
        TsigKey { name: name.to_string(), algorithm: algorithm.to_string(), secret: secret.to_string() }
    }

    /// A key with a random secret as long as the algorithm's digest (as `tsig-keygen` makes
    /// it; 32 bytes for an algorithm it does not know).
    pub fn generate(name: &str, algorithm: &str) -> TsigKey {
        let mut secret = vec![0u8; digest_len(algorithm)];
        let mut filled = 0;
        while filled < secret.len() {
            let rest = &mut secret[filled..];
            // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            match n {
                n if n > 0 => filled += n as usize,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => panic!("getrandom: {}", std::io::Error::last_os_error()),
            }
        }
        TsigKey::new(name, algorithm, &base64(&secret))
    }

    /// The key as `tsig-keygen` writes it, for `named.conf`:
    /// `key "NAME" {\n\talgorithm ALG;\n\tsecret "SECRET";\n};\n`.
    pub fn bind_key_file(&self) -> String {
        format!("key \"{}\" {{\n\talgorithm {};\n\tsecret \"{}\";\n}};\n", self.name, self.algorithm, self.secret)
    }

    /// `ALG:NAME:SECRET`, as kdig's and dig's `-y` take it.
    pub fn inline(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.name, self.secret)
    }

    /// The entry of Knot's `key:` section (indented for it).
    pub(crate) fn knot_key(&self) -> String {
        format!("  - id: {}\n    algorithm: {}\n    secret: {}\n", self.name, self.algorithm, self.secret)
    }
}

/// The digest length of a TSIG HMAC algorithm, in bytes.
fn digest_len(algorithm: &str) -> usize {
    match algorithm.to_ascii_lowercase().trim_end_matches('.') {
        "hmac-md5" | "hmac-md5.sig-alg.reg.int" => 16,
        "hmac-sha1" => 20,
        "hmac-sha224" => 28,
        "hmac-sha384" => 48,
        "hmac-sha512" => 64,
        _ => 32,
    }
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A network namespace held open for the lifetime of a server guard, which cannot borrow the
/// [`Netns`] guard it was started in: commands started through it enter the namespace as
/// [`Netns::command`] does (`setns` before `exec`, a process group of their own).
pub(crate) struct NsHandle {
    file: File,
}

impl NsHandle {
    pub fn of(ns: &Netns) -> Result<NsHandle> {
        let file = ns.file().try_clone().map_err(|e| format!("netns {}: {e}", ns.name))?;
        Ok(NsHandle { file })
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        crate::netns::command_in(&self.file, program)
    }
}

/// The interface of the primary's end of the veth pair, in its namespace.
pub const PRIMARY_IF: &str = "veth-primary";

/// A namespace for a primary, joined to an existing namespace (the peer, e.g. a Testbed's
/// edge, where the secondary runs) by a veth pair: `10.54.N.1`/`fd54:N::1` on the peer's end
/// (`veth-priN`), `10.54.N.2`/`fd54:N::2` on the primary's ([`PRIMARY_IF`]). Dropping it kills
/// what runs in the primary's namespace and deletes it, and the veth pair with it.
pub struct PrimaryNet {
    pub ns: Netns,
    /// The peer's end of the veth pair, in the peer namespace.
    pub peer_if: String,
    pub primary_addr: Ipv4Addr,
    pub peer_addr: Ipv4Addr,
    pub primary_v6: Ipv6Addr,
    pub peer_v6: Ipv6Addr,
}

impl PrimaryNet {
    /// The namespace of primary `n` of the testbed named `base`.
    pub fn ns_name(base: &str, n: u8) -> String {
        format!("{base}-pri{n}")
    }

    /// Creates namespace `BASE-priN` (removing a leftover of that name) and the veth pair
    /// to `peer`, with the addresses of subnet `n`. Several primaries can share a peer, each
    /// with its own `n`.
    pub fn create(base: &str, peer: &Netns, n: u8) -> Result<PrimaryNet> {
        let ns = Netns::create(&PrimaryNet::ns_name(base, n))?;
        let peer_if = format!("veth-pri{n}");
        let net = PrimaryNet {
            ns,
            peer_if,
            primary_addr: Ipv4Addr::new(10, 54, n, 2),
            peer_addr: Ipv4Addr::new(10, 54, n, 1),
            primary_v6: Ipv6Addr::new(0xfd54, u16::from(n), 0, 0, 0, 0, 0, 2),
            peer_v6: Ipv6Addr::new(0xfd54, u16::from(n), 0, 0, 0, 0, 0, 1),
        };
        net.ns.exec(&[
            "ip",
            "link",
            "add",
            PRIMARY_IF,
            "type",
            "veth",
            "peer",
            "name",
            &net.peer_if,
            "netns",
            &peer.name,
        ])?;
        for (ns, iface, v4, v6) in [
            (&net.ns, PRIMARY_IF, net.primary_addr, net.primary_v6),
            (peer, net.peer_if.as_str(), net.peer_addr, net.peer_v6),
        ] {
            ns.exec(&["ip", "addr", "add", &format!("{v4}/24"), "dev", iface])?;
            ns.exec(&["ip", "-6", "addr", "add", &format!("{v6}/64"), "dev", iface, "nodad"])?;
            ns.exec(&["ip", "link", "set", iface, "up"])?;
        }
        Ok(net)
    }
}

/// Which transfer to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Xfr {
    Axfr,
    /// IXFR from this serial (the SOA the client says it has).
    Ixfr(u32),
}

/// A zone transfer as kdig printed it.
#[derive(Clone, Debug, Default)]
pub struct Transfer {
    /// The records in order, without the TSIG records.
    pub records: Vec<Record>,
    /// Whether the messages carried TSIG records.
    pub signed: bool,
    /// kdig's error, e.g. `server replied with error 'REFUSED'`, or its failing exit status.
    pub error: Option<String>,
    /// Everything kdig printed.
    pub raw: String,
}

impl Transfer {
    /// Parses kdig's output of an AXFR or IXFR.
    pub fn parse(raw: &str) -> Transfer {
        let mut t = Transfer { raw: raw.to_string(), ..Transfer::default() };
        for line in raw.lines() {
            if let Some(at) = line.find(";; ERROR: ") {
                t.error.get_or_insert_with(|| line[at + 10..].trim().to_string());
            } else if let Some(r) = parse_record(line) {
                if r.rtype == "TSIG" {
                    t.signed = true;
                } else {
                    t.records.push(r);
                }
            }
        }
        t
    }

    /// The serials of the SOA records, in order.
    pub fn soa_serials(&self) -> Vec<u32> {
        self.records.iter().filter(|r| r.rtype == "SOA").filter_map(|r| soa_rdata_serial(&r.data)).collect()
    }

    /// Whether this is an incremental transfer (RFC 1995): the new SOA, then the old SOA of
    /// the first difference sequence. A full transfer (AXFR, or AXFR-style IXFR) has no SOA
    /// second; an up-to-date IXFR answer has a single SOA.
    pub fn is_incremental(&self) -> bool {
        self.records.len() > 2 && self.records[0].rtype == "SOA" && self.records[1].rtype == "SOA"
    }

    /// Whether this is a complete full transfer: SOA first and last, and no other SOA.
    pub fn is_full(&self) -> bool {
        let soas = self.records.iter().filter(|r| r.rtype == "SOA").count();
        let is_soa = |r: Option<&Record>| r.is_some_and(|r| r.rtype == "SOA");
        soas == 2 && self.records.len() >= 2 && is_soa(self.records.first()) && is_soa(self.records.last())
    }

    /// The records of `name` (any case, with or without the final dot) and type `rtype`.
    pub fn find(&self, name: &str, rtype: &str) -> Vec<&Record> {
        let name = name.trim_end_matches('.');
        self.records
            .iter()
            .filter(|r| r.rtype.eq_ignore_ascii_case(rtype) && r.name.trim_end_matches('.').eq_ignore_ascii_case(name))
            .collect()
    }

    /// Whether there is a record of `name` and type `rtype`.
    pub fn contains(&self, name: &str, rtype: &str) -> bool {
        !self.find(name, rtype).is_empty()
    }
}

/// A record line as kdig or dig prints it: `name ttl class type data...`.
fn parse_record(line: &str) -> Option<Record> {
    if line.starts_with(';') {
        return None;
    }
    let f: Vec<&str> = line.split_whitespace().collect();
    let [name, ttl, _class, rtype, data @ ..] = f.as_slice() else { return None };
    ttl.parse::<u32>().ok()?;
    Some(Record { name: name.to_string(), ttl: ttl.to_string(), rtype: rtype.to_string(), data: data.join(" ") })
}

/// The serial of SOA RDATA `mname rname serial refresh retry expire minimum`.
fn soa_rdata_serial(data: &str) -> Option<u32> {
    data.split_whitespace().nth(2)?.parse().ok()
}

/// The serial of the (first) SOA record of zone file text: the third field after `SOA`,
/// parentheses and comments skipped.
pub fn zone_text_serial(text: &str) -> Option<u32> {
    let mut tokens = text
        .lines()
        .map(|l| l.split(';').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .flat_map(|t| t.split(['(', ')']))
        .filter(|t| !t.is_empty());
    tokens.find(|t| t.eq_ignore_ascii_case("SOA"))?;
    tokens.nth(2)?.parse().ok()
}

/// kdig's arguments for a transfer of `zone` from `server`.
fn transfer_args(server: IpAddr, zone: &str, xfr: Xfr, key: Option<&TsigKey>) -> Vec<String> {
    let mut args = vec![format!("@{server}")];
    if let Some(key) = key {
        args.extend(["-y".to_string(), key.inline()]);
    }
    args.push(match xfr {
        Xfr::Axfr => "AXFR".to_string(),
        Xfr::Ixfr(serial) => format!("IXFR={serial}"),
    });
    args.extend([zone.to_string(), "+time=5".into(), "+retry=0".into(), "+nostats".into()]);
    args
}

fn run_transfer(mut kdig: Command, server: IpAddr, zone: &str, xfr: Xfr, key: Option<&TsigKey>) -> Result<Transfer> {
    let out = cmd::capture(kdig.args(transfer_args(server, zone, xfr, key)))?;
    let raw = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut t = Transfer::parse(&raw);
    if !out.status.success() && t.error.is_none() {
        t.error = Some(format!("kdig {}", out.status));
    }
    Ok(t)
}

/// Asks `server` for a transfer of `zone` with kdig from inside `ns`, signed with `key` when
/// given. A refusal is not an error here: it is in [`Transfer::error`].
pub fn transfer(ns: &Netns, server: IpAddr, zone: &str, xfr: Xfr, key: Option<&TsigKey>) -> Result<Transfer> {
    run_transfer(ns.command("kdig"), server, zone, xfr, key)
}

/// The serial of `zone` that `server` answers (kdig from inside the namespace), `None` when
/// it gives no SOA (not loaded yet, not listening).
pub(crate) fn query_serial(mut kdig: Command, server: IpAddr, zone: &str) -> Result<Option<u32>> {
    let out = cmd::capture(kdig.args([&format!("@{server}"), zone, "SOA", "+time=1", "+retry=0", "+short"]))?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().find_map(soa_rdata_serial))
}

/// The serial of `zone` that `server` answers to kdig in `ns`; `None` without an answer.
pub fn soa_serial(ns: &Netns, server: IpAddr, zone: &str) -> Result<Option<u32>> {
    query_serial(ns.command("kdig"), server, zone)
}

/// A small RPZ zone file: `$ORIGIN`, `$TTL 3600`, a SOA with `serial` (refresh 3600, retry
/// 600, expire 86400, minimum 300), an NS, then `records` (one a line, names relative to the
/// zone unless they end with a dot).
pub fn rpz_zone(zone: &str, serial: u32, records: &[&str]) -> String {
    let zone = zone.trim_end_matches('.');
    let mut text = format!(
        "$ORIGIN {zone}.\n$TTL 3600\n@ SOA ns.invalid. hostmaster.invalid. {serial} 3600 600 86400 300\n@ NS ns.invalid.\n"
    );
    for r in records {
        text.push_str(r);
        text.push('\n');
    }
    text
}

/// The last `lines` lines of the log file at `path` (empty when it is missing).
pub(crate) fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    crate::tail(&text, lines).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        // RFC 4648 section 10.
        for (plain, coded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn generated_keys_have_the_digest_length() {
        let k = TsigKey::generate("xfr-key", "hmac-sha256");
        assert_eq!(k.secret.len(), 44);
        assert_ne!(k.secret, TsigKey::generate("xfr-key", "hmac-sha256").secret);
        assert_eq!(TsigKey::generate("k", "hmac-sha512").secret.len(), 88);
        assert_eq!(k.inline(), format!("hmac-sha256:xfr-key:{}", k.secret));
    }

    #[test]
    fn bind_key_file_as_tsig_keygen_writes_it() {
        let k = TsigKey::new("xfr-key", "hmac-sha256", "c2VjcmV0");
        assert_eq!(k.bind_key_file(), "key \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n");
    }

    /// kdig 3.2, an IXFR with TSIG.
    const KDIG_IXFR: &str = ";; IXFR for x.rpz.
x.rpz.              \t3600\tIN\tSOA\tns.x.rpz. hostmaster.x.rpz. 11 3600 600 86400 300
x.rpz.              \t3600\tIN\tSOA\tns.x.rpz. hostmaster.x.rpz. 10 3600 600 86400 300
a.example.x.rpz.    \t3600\tIN\tCNAME\t.
x.rpz.              \t3600\tIN\tSOA\tns.x.rpz. hostmaster.x.rpz. 11 3600 600 86400 300
b.example.x.rpz.    \t3600\tIN\tCNAME\t.
x.rpz.              \t3600\tIN\tSOA\tns.x.rpz. hostmaster.x.rpz. 11 3600 600 86400 300
k1.                 \t0\tANY\tTSIG\thmac-sha256. 1796410225 300 32 PYkdapvzCgRGp8OPQgCeYPk73rbkG9Ssgw8WfVxzAHk= 30360 NOERROR 0
";

    #[test]
    fn kdig_ixfr() {
        let t = Transfer::parse(KDIG_IXFR);
        assert!(t.signed && t.error.is_none() && t.is_incremental() && !t.is_full());
        assert_eq!(t.soa_serials(), [11, 10, 11, 11]);
        assert!(t.contains("B.example.x.rpz", "cname") && !t.contains("c.example.x.rpz.", "CNAME"));
    }

    #[test]
    fn kdig_refused_axfr() {
        let t = Transfer::parse(
            ";; AXFR for x.rpz.;; ERROR: server replied with error 'REFUSED'\n;; ERROR: failed to query server 10.54.9.2@53(TCP)\n",
        );
        assert_eq!(t.error.as_deref(), Some("server replied with error 'REFUSED'"));
        assert!(t.records.is_empty() && !t.signed && !t.is_full());
    }

    #[test]
    fn serial_of_zone_text() {
        assert_eq!(zone_text_serial(&rpz_zone("x.rpz", 42, &["a CNAME ."])), Some(42));
        let multi = "$TTL 1h\n@ IN SOA ns hm ( ; comment\n   7 ; serial\n 1 2 3 4 )\n";
        assert_eq!(zone_text_serial(multi), Some(7));
        assert_eq!(zone_text_serial("a A 1.2.3.4\n"), None);
    }
}
