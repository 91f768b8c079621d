//! The `[fleet]` part of dnsfilter.toml: the policy zones this node is a secondary of, the
//! TSIG keys that sign their transfers, and where NOTIFY is heard.
//!
//! ```toml
//! [fleet]
//! notify_listen = ["192.0.2.10:5300"]    # UDP and TCP; off unless set
//! notify_allow = ["192.0.2.0/28"]        # besides each zone's primaries
//!
//! [[fleet.key]]
//! name = "xfr-key"
//! file = "/etc/dnsfilter/xfr.key"        # as tsig-keygen writes it; or secret = "hmac-sha256:xfr-key:BASE64"
//!
//! [[fleet.zone]]
//! name = "rpz.isp.example"
//! primaries = ["192.0.2.53", "192.0.2.54:5353"]
//! key = "xfr-key"
//! ```

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use domain::{
    base::Name,
    tsig::{Algorithm, Key, KeyName},
};
use filter_common::table::{Action, Ede};

/// `[fleet]` as written.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    pub notify_listen: Option<Vec<SocketAddr>>,
    pub notify_allow: Option<Vec<String>>,
    pub key: Option<Vec<KeyFile>>,
    pub zone: Option<Vec<ZoneFile>>,
}

/// `[[fleet.key]]` as written: a key file, or an inline `algorithm:name:secret`.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub name: String,
    pub file: Option<PathBuf>,
    pub secret: Option<String>,
}

/// `[[fleet.zone]]` as written. Durations are in seconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneFile {
    pub name: String,
    pub primaries: Vec<String>,
    pub key: Option<String>,
    pub source: Option<IpAddr>,
    pub request_ixfr: Option<bool>,
    pub refresh_min: Option<u64>,
    pub refresh_max: Option<u64>,
    pub retry_min: Option<u64>,
    pub retry_max: Option<u64>,
    pub jitter: Option<f64>,
    pub max_bytes: Option<u64>,
    pub max_records: Option<u64>,
    pub max_changes: Option<u64>,
    pub transfer_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub stale_after: Option<u64>,
    pub policy: Option<String>,
    pub ede: Option<String>,
    pub order: Option<ZoneOrder>,
}

/// Where a zone's entries go among the list files: the first listing of a name wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneOrder {
    /// Before the list files (its entries win over theirs).
    First,
    /// After the list files (theirs win).
    #[default]
    Last,
}

/// A TSIG key, shared by the zones that name it.
#[derive(Clone, Debug)]
pub struct TsigKey {
    pub key: Arc<Key>,
    /// Where it was read from (a file, or `inline`), for messages.
    pub origin: String,
}

impl PartialEq for TsigKey {
    fn eq(&self, other: &Self) -> bool {
        self.key.name() == other.key.name()
            && self.key.algorithm() == other.key.algorithm()
            && self.origin == other.origin
    }
}

/// One policy zone this node is a secondary of.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneConf {
    /// The apex, lower case, without the final dot.
    pub name: String,
    /// Tried in order.
    pub primaries: Vec<SocketAddr>,
    pub key: Option<TsigKey>,
    pub source: Option<IpAddr>,
    pub request_ixfr: bool,
    /// Bounds on the SOA refresh and retry timers.
    pub refresh: (Duration, Duration),
    pub retry: (Duration, Duration),
    /// Share of a timer drawn at random and added or removed (0 to 0.5).
    pub jitter: f64,
    pub max_bytes: u64,
    pub max_records: u64,
    /// Most records one IXFR may change; a larger one is fetched again by AXFR.
    pub max_changes: u64,
    pub transfer_timeout: Duration,
    pub idle_timeout: Duration,
    /// Stale after this long without a successful check; `None`: the SOA's expire.
    pub stale_after: Option<Duration>,
    /// Every entry of the zone gets this action (BIND's `policy` override).
    pub policy: Option<Action>,
    pub ede: Option<Ede>,
    pub order: ZoneOrder,
}

/// The resolved `[fleet]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fleet {
    pub notify_listen: Vec<SocketAddr>,
    pub notify_allow: Vec<Prefix>,
    pub zones: Vec<ZoneConf>,
}

impl Fleet {
    pub fn zone(&self, name: &str) -> Option<&ZoneConf> {
        let name = canonical_zone(name).ok()?;
        self.zones.iter().find(|z| z.name == name)
    }
}

/// An address prefix of `notify_allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("{s:?} is not an address or prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => {
                l.trim().parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?
            }
            None => max,
        };
        Ok(Prefix { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, unmapped(ip)) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
                u128::from(p) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `ip`, as IPv4 when it is an IPv4-mapped IPv6 address (what a dual-stack socket reports).
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A zone name as configured: lower case, no final dot.
pub fn canonical_zone(name: &str) -> Result<String, String> {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if n.is_empty() {
        return Err(format!("zone name {name:?} is empty (the root is not a policy zone)"));
    }
    <Name<Vec<u8>> as std::str::FromStr>::from_str(&n).map_err(|e| format!("zone name {name:?}: {e}"))?;
    Ok(n)
}

/// Parses `ALGORITHM:NAME:BASE64` (BIND's `-y` form).
pub fn inline_key(s: &str) -> Result<Key, String> {
    let mut parts = s.splitn(3, ':');
    let (Some(alg), Some(name), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("an inline secret is ALGORITHM:NAME:BASE64 (e.g. hmac-sha256:xfr-key:...)".into());
    };
    make_key(alg, name, secret)
}

fn make_key(alg: &str, name: &str, secret: &str) -> Result<Key, String> {
    let algorithm = match alg.trim().to_ascii_lowercase().as_str() {
        "hmac-sha256" => Algorithm::Sha256,
        "hmac-sha384" => Algorithm::Sha384,
        "hmac-sha512" => Algorithm::Sha512,
        other => {
            return Err(format!(
                "TSIG algorithm {other:?} is not supported; one of hmac-sha256, hmac-sha384, hmac-sha512"
            ));
        }
    };
    use base64::Engine as _;
    let bits = base64::engine::general_purpose::STANDARD
        .decode(secret.trim())
        .map_err(|e| format!("the secret is not base64: {e}"))?;
    if bits.len() < 16 {
        return Err(format!("the secret is {} bytes; at least 16 are required", bits.len()));
    }
    let name = <KeyName as std::str::FromStr>::from_str(name.trim().trim_end_matches('.'))
        .map_err(|e| format!("key name {name:?}: {e}"))?;
    Key::new(algorithm, &bits, name, None, None).map_err(|e| format!("{e}"))
}

/// Reads a BIND `key "NAME" { algorithm ALG; secret "BASE64"; };` file (what `tsig-keygen`
/// writes) and returns the key named `want` (or the only one). Refuses a file that others may
/// read.
pub fn read_key_file(path: &Path, want: &str) -> Result<Key, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "{}: the key file is readable by others (mode {:o}); chmod o-rwx it",
            path.display(),
            mode & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let keys = parse_bind_keys(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))?;
    let want_c = want.trim_end_matches('.').to_ascii_lowercase();
    let found = keys.iter().find(|k| k.0.trim_end_matches('.').eq_ignore_ascii_case(&want_c));
    let (name, alg, secret, line) = match (found, keys.as_slice()) {
        (Some(k), _) => k,
        (None, [only]) => only,
        (None, []) => return Err(format!("{}: no key {{}} statement", path.display())),
        (None, _) => return Err(format!("{}: no key named {want:?}", path.display())),
    };
    make_key(alg, name, secret).map_err(|e| format!("{}:{line}: {e}", path.display()))
}

/// The `key` statements of a BIND config fragment: (name, algorithm, secret, line).
/// A `key` statement: name, algorithm, secret, line.
type KeyStatement = (String, String, String, usize);

fn parse_bind_keys(text: &str) -> Result<Vec<KeyStatement>, (usize, String)> {
    // Tokens with their lines: words, quoted strings, and the punctuation { } ;
    let mut toks: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.split("//").next().unwrap_or("").split('#').next().unwrap_or("");
        let mut chars = l.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_whitespace() => {}
                '{' | '}' | ';' => toks.push((c.to_string(), line)),
                '"' => {
                    let mut s = String::new();
                    for c in chars.by_ref() {
                        if c == '"' {
                            break;
                        }
                        s.push(c);
                    }
                    toks.push((s, line));
                }
                c => {
                    let mut s = c.to_string();
                    while let Some(&n) = chars.peek() {
                        if n.is_whitespace() || "{};\"".contains(n) {
                            break;
                        }
                        s.push(n);
                        chars.next();
                    }
                    toks.push((s, line));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i].0 != "key" {
            i += 1;
            continue;
        }
        let line = toks[i].1;
        let name = toks.get(i + 1).map(|t| t.0.clone()).ok_or((line, "key without a name".to_string()))?;
        if toks.get(i + 2).map(|t| t.0.as_str()) != Some("{") {
            return Err((line, format!("key {name:?}: expected {{")));
        }
        i += 3;
        let (mut alg, mut secret) = (None, None);
        while i < toks.len() && toks[i].0 != "}" {
            match (toks[i].0.as_str(), toks.get(i + 1)) {
                ("algorithm", Some(v)) => alg = Some(v.0.clone()),
                ("secret", Some(v)) => secret = Some(v.0.clone()),
                (other, _) if other != ";" => {
                    return Err((toks[i].1, format!("key {name:?}: unknown clause {other:?}")));
                }
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        let alg = alg.ok_or((line, format!("key {name:?} has no algorithm")))?;
        let secret = secret.ok_or((line, format!("key {name:?} has no secret")))?;
        out.push((name, alg, secret, line));
        i += 1;
    }
    Ok(out)
}

fn secs(v: Option<u64>, default: u64) -> Duration {
    Duration::from_secs(v.unwrap_or(default))
}

impl Fleet {
    /// Resolves `[fleet]`; `parse_action`/`parse_ede` are the config's own name parsers.
    pub fn from_file(
        f: FleetFile,
        parse_action: impl Fn(&str) -> Result<Action, String>,
        parse_ede: impl Fn(&str) -> Result<Ede, String>,
    ) -> Result<Fleet, String> {
        let mut keys: Vec<(String, TsigKey)> = Vec::new();
        for k in f.key.unwrap_or_default() {
            let key = match (&k.file, &k.secret) {
                (Some(p), None) => {
                    TsigKey { key: Arc::new(read_key_file(p, &k.name)?), origin: p.display().to_string() }
                }
                (None, Some(s)) => TsigKey {
                    key: Arc::new(inline_key(s).map_err(|e| format!("fleet.key {:?}: {e}", k.name))?),
                    origin: "inline".into(),
                },
                _ => return Err(format!("fleet.key {:?}: give exactly one of file and secret", k.name)),
            };
            if keys.iter().any(|(n, _)| n == &k.name) {
                return Err(format!("fleet.key {:?} is defined twice", k.name));
            }
            keys.push((k.name.clone(), key));
        }
        let notify_allow = f
            .notify_allow
            .unwrap_or_default()
            .iter()
            .map(|s| Prefix::parse(s).map_err(|e| format!("fleet.notify_allow: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut zones: Vec<ZoneConf> = Vec::new();
        for z in f.zone.unwrap_or_default() {
            let name = canonical_zone(&z.name).map_err(|e| format!("fleet.zone: {e}"))?;
            let bad = |e: String| format!("fleet.zone {name:?}: {e}");
            if zones.iter().any(|o| o.name == name) {
                return Err(bad("configured twice".into()));
            }
            if z.primaries.is_empty() {
                return Err(bad("no primaries".into()));
            }
            let primaries = z
                .primaries
                .iter()
                .map(|p| {
                    p.parse::<SocketAddr>()
                        .or_else(|_| p.parse::<IpAddr>().map(|a| SocketAddr::new(a, 53)))
                        .map_err(|_| bad(format!("primary {p:?} is not ADDRESS or ADDRESS:PORT ([v6]:port)")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let key = match &z.key {
                Some(k) => Some(
                    keys.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, k)| k.clone())
                        .ok_or_else(|| bad(format!("key {k:?} is not a [[fleet.key]]")))?,
                ),
                None => None,
            };
            let refresh = (secs(z.refresh_min, 60), secs(z.refresh_max, 86_400));
            let retry = (secs(z.retry_min, 10), secs(z.retry_max, 3_600));
            if refresh.0 > refresh.1 || retry.0 > retry.1 || refresh.0.is_zero() || retry.0.is_zero() {
                return Err(bad("refresh_min/retry_min must be at least 1 and at most their _max".into()));
            }
            let jitter = z.jitter.unwrap_or(0.1);
            if !(0.0..=0.5).contains(&jitter) {
                return Err(bad(format!("jitter {jitter} must be in [0, 0.5]")));
            }
            zones.push(ZoneConf {
                primaries,
                key,
                source: z.source,
                request_ixfr: z.request_ixfr.unwrap_or(true),
                refresh,
                retry,
                jitter,
                max_bytes: z.max_bytes.unwrap_or(4 << 30),
                max_records: z.max_records.unwrap_or(20_000_000),
                max_changes: z.max_changes.unwrap_or(1_000_000),
                transfer_timeout: secs(z.transfer_timeout, 600),
                idle_timeout: secs(z.idle_timeout, 30),
                stale_after: z.stale_after.map(Duration::from_secs),
                policy: z.policy.as_deref().filter(|p| *p != "given").map(&parse_action).transpose().map_err(bad)?,
                ede: z.ede.as_deref().map(&parse_ede).transpose().map_err(bad)?,
                order: z.order.unwrap_or_default(),
                name,
            });
        }
        Ok(Fleet { notify_listen: f.notify_listen.unwrap_or_default(), notify_allow, zones })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_key_files_as_tsig_keygen_writes_them() {
        let text =
            "key \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"e3a1bWFkZS11cC1zZWNyZXQtMTIzNDU2Nzg=\";\n};\n";
        let keys = parse_bind_keys(text).expect("parses");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, "xfr-key");
        assert_eq!(keys[0].1, "hmac-sha256");
        let k = make_key(&keys[0].1, &keys[0].0, &keys[0].2).expect("a key");
        assert_eq!(k.algorithm(), Algorithm::Sha256);
        assert!(parse_bind_keys("key \"k\" { algorithm hmac-sha256; };").is_err());
        assert!(parse_bind_keys("key \"k\" { algorithm hmac-sha256; secret \"x\"; bogus 1; };").is_err());
    }

    #[test]
    fn inline_keys_and_algorithms() {
        assert!(inline_key("hmac-sha512:k:e3a1bWFkZS11cC1zZWNyZXQtMTIzNDU2Nzg=").is_ok());
        let e = inline_key("hmac-md5:k:e3a1bWFkZS11cC1zZWNyZXQtMTIzNDU2Nzg=").unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        assert!(inline_key("hmac-sha256:k").is_err());
        assert!(inline_key("hmac-sha256:k:!!!").unwrap_err().contains("base64"));
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("k.key");
        std::fs::write(&p, "key \"k\" { algorithm hmac-sha256; secret \"e3a1bWFkZS11cC1zZWNyZXQtMTIzNDU2Nzg=\"; };")
            .expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = read_key_file(&p, "k").unwrap_err();
        assert!(e.contains("readable by others") && e.contains("k.key"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(read_key_file(&p, "k").is_ok());
    }

    /// Every `[fleet]`, `[[fleet.key]]` and `[[fleet.zone]]` key is documented in
    /// dist/dnsfilter.toml, and the file as shipped reads.
    #[test]
    fn every_fleet_key_is_in_the_shipped_config() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/dnsfilter.toml");
        let dist = std::fs::read_to_string(path).expect("dist/dnsfilter.toml");
        crate::conf::Conf::from_file(
            crate::conf::ConfigFile::parse(Path::new(path), &dist).expect("parses"),
            Path::new(path),
        )
        .expect("resolves");
        let keys =
            |v: serde_json::Value| -> Vec<String> { v.as_object().expect("an object").keys().cloned().collect() };
        let mut all = keys(serde_json::to_value(FleetFile::default()).expect("json"));
        all.retain(|k| k != "key" && k != "zone");
        all.extend(keys(serde_json::to_value(KeyFile::default()).expect("json")));
        all.extend(keys(serde_json::to_value(ZoneFile::default()).expect("json")));
        assert!(all.len() > 20, "{all:?}");
        for k in all {
            assert!(
                dist.lines().any(|l| l.trim_start_matches(['#', ' ']).starts_with(&format!("{k} ="))),
                "dist/dnsfilter.toml does not document the fleet key {k}"
            );
        }
    }

    #[test]
    fn prefixes() {
        let p = Prefix::parse("192.0.2.0/24").expect("prefix");
        assert!(p.contains("192.0.2.77".parse().expect("ip")));
        assert!(!p.contains("192.0.3.1".parse().expect("ip")));
        assert!(p.contains("::ffff:192.0.2.1".parse().expect("ip")));
        assert!(Prefix::parse("2001:db8::/33").expect("v6").contains("2001:db8:7fff::1".parse().expect("ip")));
        assert!(Prefix::parse("10.0.0.0/33").is_err());
    }
}
