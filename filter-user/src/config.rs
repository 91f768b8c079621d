//! Runtime settings of the program (`filter_common::config::Config`), built from what an
//! operator configures.

use std::net::{Ipv4Addr, Ipv6Addr};

use filter_common::{
    config::{CFG_STOP_V4, CFG_STOP_V6, Config, SOA_RR_MAX},
    dns::{CLASS_IN, TYPE_SOA, parse_text_name, to_wire},
};

/// Global answer settings as written in a file (`[settings]` of the config file or of an
/// orders file). Every field is optional; unset fields keep their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// UDP destination ports treated as DNS (default `[53]`).
    pub ports: Option<Vec<u16>>,
    /// Stop-page IPv4 address for `redirect`.
    pub stop_v4: Option<Ipv4Addr>,
    /// Stop-page IPv6 address for `redirect`.
    pub stop_v6: Option<Ipv6Addr>,
    /// TTL of stop-page answers, in seconds (default 300).
    pub answer_ttl: Option<u32>,
    /// UDP payload size advertised in the OPT record of answers (default 1232).
    pub edns_udp_size: Option<u16>,
    /// Resolver addresses to enforce on; queries to other destinations pass. Empty: all.
    pub resolvers: Option<Vec<std::net::IpAddr>>,
    /// The SOA of negative answers.
    pub soa: Option<SoaFile>,
}

/// The SOA of negative answers as written in a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SoaFile {
    pub mname: Option<String>,
    pub rname: Option<String>,
    pub serial: Option<u32>,
    pub refresh: Option<u32>,
    pub retry: Option<u32>,
    pub expire: Option<u32>,
    /// Negative-caching TTL (SOA MINIMUM and the SOA record's TTL), in seconds.
    pub negative_ttl: Option<u32>,
}

/// The SOA placed in the authority section of NXDOMAIN and NODATA answers (RFC 2308).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// MINIMUM, and the TTL of the SOA record: how long caches keep the negative answer.
    pub negative_ttl: u32,
}

impl Default for Soa {
    fn default() -> Self {
        Soa {
            mname: "dnsfilter.invalid.".into(),
            rname: "hostmaster.dnsfilter.invalid.".into(),
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            negative_ttl: 300,
        }
    }
}

/// What the program needs besides the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub ports: Vec<u16>,
    pub stop_v4: Option<Ipv4Addr>,
    pub stop_v6: Option<Ipv6Addr>,
    pub answer_ttl: u32,
    pub edns_udp_size: u16,
    pub soa: Soa,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ports: vec![53],
            stop_v4: None,
            stop_v6: None,
            answer_ttl: 300,
            edns_udp_size: 1232,
            soa: Soa::default(),
        }
    }
}

/// Why settings are refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("between 1 and {max} DNS ports are needed, got {got}")]
    Ports { got: usize, max: usize },
    #[error("port 0 is not a DNS port")]
    PortZero,
    #[error("SOA {field} {name:?}: {reason}")]
    SoaName { field: &'static str, name: String, reason: String },
    #[error("SOA names are too long together ({len} octets, at most {max})")]
    SoaTooLong { len: usize, max: usize },
}

impl Settings {
    /// Sets the resolver addresses enforcement is scoped to (empty: all destinations).
    pub fn set_resolvers(&mut self, resolvers: &[std::net::IpAddr]) {
        let _ = resolvers;
    }

    /// Renders the settings into the program's configuration.
    pub fn to_config(&self) -> Result<Config, SettingsError> {
        let mut cfg = Config::default();
        if self.ports.is_empty() || self.ports.len() > cfg.ports.len() {
            return Err(SettingsError::Ports { got: self.ports.len(), max: cfg.ports.len() });
        }
        if self.ports.contains(&0) {
            return Err(SettingsError::PortZero);
        }
        cfg.ports = [0; filter_common::PORTS_MAX];
        cfg.ports[..self.ports.len()].copy_from_slice(&self.ports);
        cfg.nports = self.ports.len() as u16;
        if let Some(v4) = self.stop_v4 {
            cfg.stop_v4 = v4.octets();
            cfg.flags |= CFG_STOP_V4;
        }
        if let Some(v6) = self.stop_v6 {
            cfg.stop_v6 = v6.octets();
            cfg.flags |= CFG_STOP_V6;
        }
        cfg.answer_ttl = self.answer_ttl;
        cfg.edns_udp_size = self.edns_udp_size.max(512);
        let rr = self.soa_rr()?;
        cfg.soa_rr[..rr.len()].copy_from_slice(&rr);
        cfg.soa_rr_len = rr.len() as u16;
        Ok(cfg)
    }

    /// TYPE CLASS TTL RDLENGTH RDATA of the SOA record.
    fn soa_rr(&self) -> Result<Vec<u8>, SettingsError> {
        let wire = |field: &'static str, name: &str| {
            parse_text_name(name).map(|l| to_wire(&l)).map_err(|e| SettingsError::SoaName {
                field,
                name: name.to_string(),
                reason: e.to_string(),
            })
        };
        let s = &self.soa;
        let mut rdata = wire("mname", &s.mname)?;
        rdata.extend(wire("rname", &s.rname)?);
        for v in [s.serial, s.refresh, s.retry, s.expire, s.negative_ttl] {
            rdata.extend(v.to_be_bytes());
        }
        let mut rr = Vec::with_capacity(10 + rdata.len());
        rr.extend(TYPE_SOA.to_be_bytes());
        rr.extend(CLASS_IN.to_be_bytes());
        rr.extend(s.negative_ttl.to_be_bytes());
        rr.extend((rdata.len() as u16).to_be_bytes());
        rr.extend(rdata);
        if rr.len() > SOA_RR_MAX {
            return Err(SettingsError::SoaTooLong { len: rr.len(), max: SOA_RR_MAX });
        }
        Ok(rr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_settings_render() {
        let c = Settings::default().to_config().unwrap();
        assert_eq!(c.nports, 1);
        assert_eq!(c.ports[0], 53);
        assert_eq!(c.flags, 0);
        assert!(c.soa_rr_len > 30);
        assert_eq!(&c.soa_rr[..4], &[0, 6, 0, 1]);
    }

    #[test]
    fn bad_settings_are_refused() {
        let s = Settings { ports: vec![], ..Default::default() };
        assert!(matches!(s.to_config(), Err(SettingsError::Ports { .. })));
        let s = Settings { ports: vec![0], ..Default::default() };
        assert_eq!(s.to_config(), Err(SettingsError::PortZero));
        let mut s = Settings::default();
        s.soa.mname = "a..b".into();
        assert!(matches!(s.to_config(), Err(SettingsError::SoaName { field: "mname", .. })));
        s.soa.mname = format!("{}.{}", "a".repeat(63), "b".repeat(63));
        s.soa.rname = format!("{}.{}", "c".repeat(63), "d".repeat(63));
        assert!(matches!(s.to_config(), Err(SettingsError::SoaTooLong { .. })));
    }
}
