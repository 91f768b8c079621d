//! Runtime settings of the program (`filter_common::config::Config`), built from what an
//! operator configures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use filter_common::{
    RESOLVERS_MAX,
    config::{CFG_STOP_V4, CFG_STOP_V6, Config, SOA_RR_MAX, resolver_v4_word, resolver_v6_words},
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
    /// Resolver addresses to enforce on (at most 16 IPv4 and 16 IPv6); queries to other
    /// destinations pass. Empty or unset: every destination. The lists are per family: with
    /// only IPv4 resolvers, IPv6 queries all pass.
    pub resolvers: Option<Vec<IpAddr>>,
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
    /// Destination addresses the filter applies to; empty: every destination. At most
    /// [`RESOLVERS_MAX`] per family (IPv4-mapped IPv6 addresses count as IPv4). With only
    /// addresses of one family, every query over the other family passes.
    pub resolvers: Vec<IpAddr>,
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
            resolvers: Vec::new(),
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
    #[error("{got} {family} resolver addresses, at most {max}")]
    Resolvers { family: &'static str, got: usize, max: usize },
}

impl Settings {
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
        let (v4, v6) = self.resolvers_by_family();
        if v4.len() > RESOLVERS_MAX {
            return Err(SettingsError::Resolvers { family: "IPv4", got: v4.len(), max: RESOLVERS_MAX });
        }
        if v6.len() > RESOLVERS_MAX {
            return Err(SettingsError::Resolvers { family: "IPv6", got: v6.len(), max: RESOLVERS_MAX });
        }
        for (slot, a) in cfg.resolvers_v4.iter_mut().zip(&v4) {
            *slot = resolver_v4_word(a.octets());
        }
        for (slot, a) in cfg.resolvers_v6.iter_mut().zip(&v6) {
            *slot = resolver_v6_words(a.octets());
        }
        cfg.nresolvers_v4 = v4.len() as u16;
        cfg.nresolvers_v6 = v6.len() as u16;
        let rr = self.soa_rr()?;
        cfg.soa_rr[..rr.len()].copy_from_slice(&rr);
        cfg.soa_rr_len = rr.len() as u16;
        Ok(cfg)
    }

    /// The resolver addresses by family, IPv4-mapped IPv6 addresses as IPv4, without duplicates,
    /// in the order given.
    fn resolvers_by_family(&self) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for a in &self.resolvers {
            match a.to_canonical() {
                IpAddr::V4(a) if !v4.contains(&a) => v4.push(a),
                IpAddr::V6(a) if !v6.contains(&a) => v6.push(a),
                _ => {}
            }
        }
        (v4, v6)
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

    #[test]
    fn resolvers_render_by_family() {
        let c = Settings::default().to_config().unwrap();
        assert_eq!((c.nresolvers_v4, c.nresolvers_v6), (0, 0), "default: every destination");
        assert!(!c.has_resolvers());
        let addrs: Vec<IpAddr> = ["192.0.2.53", "2001:db8::53", "::ffff:198.51.100.53", "192.0.2.53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let c = Settings { resolvers: addrs, ..Default::default() }.to_config().unwrap();
        assert_eq!((c.nresolvers_v4, c.nresolvers_v6), (2, 1), "mapped address as IPv4, duplicate dropped");
        assert!(c.is_resolver_v4([192, 0, 2, 53]));
        assert!(c.is_resolver_v4([198, 51, 100, 53]));
        assert!(!c.is_resolver_v4([192, 0, 2, 54]));
        assert!(c.is_resolver_v6("2001:db8::53".parse::<Ipv6Addr>().unwrap().octets()));
        assert!(!c.is_resolver_v6("2001:db8::54".parse::<Ipv6Addr>().unwrap().octets()));
        // Only IPv4 resolvers: no IPv6 destination is listed.
        let c = Settings { resolvers: vec!["192.0.2.53".parse().unwrap()], ..Default::default() }.to_config().unwrap();
        assert_eq!((c.nresolvers_v4, c.nresolvers_v6), (1, 0));
        assert!(c.has_resolvers());
        assert!(!c.is_resolver_v6("2001:db8::53".parse::<Ipv6Addr>().unwrap().octets()));
    }

    #[test]
    fn resolver_limits() {
        let v4 = |n: u8| -> Vec<IpAddr> { (0..n).map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))).collect() };
        let v6 = |n: u16| -> Vec<IpAddr> {
            (0..n).map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))).collect()
        };
        let max = RESOLVERS_MAX;
        let c =
            Settings { resolvers: [v4(max as u8), v6(max as u16)].concat(), ..Default::default() }.to_config().unwrap();
        assert_eq!((usize::from(c.nresolvers_v4), usize::from(c.nresolvers_v6)), (max, max));
        assert!(c.is_resolver_v4([192, 0, 2, max as u8 - 1]), "the last one is stored");
        let s = Settings { resolvers: v4(max as u8 + 1), ..Default::default() };
        assert_eq!(s.to_config(), Err(SettingsError::Resolvers { family: "IPv4", got: max + 1, max }));
        let s = Settings { resolvers: [v4(1), v6(max as u16 + 1)].concat(), ..Default::default() };
        assert_eq!(s.to_config(), Err(SettingsError::Resolvers { family: "IPv6", got: max + 1, max }));
        // Duplicates do not count twice.
        let s = Settings { resolvers: [v4(max as u8), v4(max as u8)].concat(), ..Default::default() };
        assert!(s.to_config().is_ok());
    }
}
