//! The last good copy of each policy zone, kept for ever in the state folder:
//! `zones/NAME.zone` (the zone as a zone file, the text the RPZ reader reads) and
//! `zones/NAME.json` (its serial, sha256, where and when it came from). Both are written
//! atomically (temporary file, fsync, rename, fsync of the folder), the zone file first: a
//! crash leaves the previous pair or the new zone file with the previous serial, which the
//! next check corrects by asking again.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::xfr::{RrKey, SoaTimers, ZoneData};
use crate::daemon::{compile::sha256_hex, state::write_atomic};

/// What is stored beside a zone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub zone: String,
    pub serial: u32,
    /// sha256 (hex) of the zone file.
    pub sha256: String,
    pub soa: SoaTimers,
    /// The primary it came from, and how (axfr, ixfr, file).
    pub primary: String,
    pub kind: String,
    /// When it was stored (Unix seconds).
    pub stored_at: i64,
    pub records: usize,
}

/// The folder of the stored zones.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("zones")
}

pub fn zone_path(state_dir: &Path, zone: &str) -> PathBuf {
    dir(state_dir).join(format!("{zone}.zone"))
}

pub fn meta_path(state_dir: &Path, zone: &str) -> PathBuf {
    dir(state_dir).join(format!("{zone}.json"))
}

/// Stores a zone's text and meta.
pub fn save(state_dir: &Path, text: &str, meta: &Meta) -> Result<(), String> {
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let zp = zone_path(state_dir, &meta.zone);
    write_atomic(&zp, text.as_bytes()).map_err(|e| e.to_string())?;
    let mp = meta_path(state_dir, &meta.zone);
    let json = serde_json::to_vec_pretty(meta).map_err(|e| e.to_string())?;
    write_atomic(&mp, &json).map_err(|e| e.to_string())
}

/// The stored meta of a zone, if any (and readable).
pub fn load_meta(state_dir: &Path, zone: &str) -> Option<Meta> {
    let p = meta_path(state_dir, zone);
    let bytes = std::fs::read(&p).ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|e| tracing::warn!(file = %p.display(), error = %e, "unreadable zone meta"))
        .ok()
}

/// The stored zone, checked against its meta (a zone file whose digest does not match is not
/// trusted for IXFR: the next transfer is an AXFR).
pub fn load(state_dir: &Path, zone: &str) -> Option<(ZoneData, Meta)> {
    let meta = load_meta(state_dir, zone)?;
    let p = zone_path(state_dir, zone);
    let text = std::fs::read_to_string(&p).ok()?;
    if sha256_hex(text.as_bytes()) != meta.sha256 {
        tracing::warn!(file = %p.display(), "the stored zone does not match its digest; it will be fetched whole");
        return None;
    }
    let data = parse_rendered(zone, &text)?;
    (data.soa.serial == meta.serial).then_some((data, meta))
}

/// Reads back what [`ZoneData::render`] wrote: comments, the SOA line, then one record per
/// line (`owner ttl class type data`).
pub fn parse_rendered(apex: &str, text: &str) -> Option<ZoneData> {
    let mut lines = text.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty());
    let soa_line = lines.next()?.to_string();
    let f: Vec<&str> = soa_line.split(' ').collect();
    // owner ttl IN SOA mname rname serial refresh retry expire minimum
    if f.len() < 11 || !f[3].eq_ignore_ascii_case("SOA") {
        return None;
    }
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u32>().ok());
    let soa = SoaTimers { serial: n(6)?, refresh: n(7)?, retry: n(8)?, expire: n(9)?, minimum: n(10)? };
    let mut records = BTreeMap::new();
    for l in lines {
        let mut p = l.splitn(5, ' ');
        let (Some(owner), Some(ttl), Some(_class), Some(rtype), Some(data)) =
            (p.next(), p.next(), p.next(), p.next(), p.next())
        else {
            return None;
        };
        let rtype = rtype.parse::<domain::base::Rtype>().ok()?.to_int();
        let key = RrKey { owner: owner.to_ascii_lowercase(), rtype, data: data.to_string() };
        records.insert(key, (ttl.parse().ok()?, l.to_string()));
    }
    Some(ZoneData { apex: apex.to_string(), soa, soa_line, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_zone_reads_back_and_is_stored_atomically() {
        let mut records = BTreeMap::new();
        for (o, d) in [("allo.rpz.example.", "."), ("*.allo.rpz.example.", "."), ("ok.rpz.example.", "rpz-passthru.")] {
            let key = RrKey { owner: o.into(), rtype: 5, data: d.into() };
            records.insert(key, (300, format!("{o} 300 IN CNAME {d}")));
        }
        let z = ZoneData {
            apex: "rpz.example".into(),
            soa: SoaTimers { serial: 7, refresh: 60, retry: 10, expire: 600, minimum: 30 },
            soa_line: "rpz.example. 3600 IN SOA ns.rpz.example. host.rpz.example. 7 60 10 600 30".into(),
            records,
        };
        let text = z.render("zone rpz.example serial 7");
        assert_eq!(parse_rendered("rpz.example", &text), Some(z.clone()));
        let dir = tempfile::tempdir().expect("tmp");
        let meta = Meta {
            zone: "rpz.example".into(),
            serial: 7,
            sha256: sha256_hex(text.as_bytes()),
            soa: z.soa,
            primary: "192.0.2.1:53".into(),
            kind: "axfr".into(),
            stored_at: 1,
            records: 3,
        };
        save(dir.path(), &text, &meta).expect("save");
        assert_eq!(load(dir.path(), "rpz.example"), Some((z, meta.clone())));
        // A zone file that does not match its digest is not trusted.
        std::fs::write(zone_path(dir.path(), "rpz.example"), text.replace("ok.", "no.")).expect("write");
        assert_eq!(load(dir.path(), "rpz.example"), None);
        assert!(!dir.path().join("zones/rpz.example.tmp").exists());
    }
}
