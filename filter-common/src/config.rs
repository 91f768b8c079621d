//! Runtime configuration of the program: element 0 of the `CONFIG` array map.
//! Native byte order unless a field says otherwise. Userspace writes it before attaching and
//! may rewrite it at any time (each field is read once per packet).

use crate::table::{STOP_HAS_V4, STOP_HAS_V6, StopRecord};

/// Longest pre-rendered SOA record tail ([`Config::soa_rr`]).
pub const SOA_RR_MAX: usize = 128;

/// [`Config::flags`]: a stop-page IPv4 address is set.
pub const CFG_STOP_V4: u16 = 1;
/// [`Config::flags`]: a stop-page IPv6 address is set.
pub const CFG_STOP_V6: u16 = 2;

/// Runtime settings shared by every packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// UDP destination ports treated as DNS (host order); the first `nports` are used.
    pub ports: [u16; crate::PORTS_MAX],
    /// Number of valid `ports`.
    pub nports: u16,
    /// `CFG_*` bits.
    pub flags: u16,
    /// TTL of redirect answers (A/AAAA), seconds.
    pub answer_ttl: u32,
    /// Stop-page IPv4 address, network order.
    pub stop_v4: [u8; 4],
    /// Stop-page IPv6 address, network order.
    pub stop_v6: [u8; 16],
    /// UDP payload size advertised in our OPT record.
    pub edns_udp_size: u16,
    /// Octets of `soa_rr` in use.
    pub soa_rr_len: u16,
    /// Reserved, zero.
    pub reserved: u32,
    /// The authority-section SOA record after its owner name: TYPE, CLASS, TTL, RDLENGTH and
    /// RDATA (MNAME, RNAME, SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM), in wire format.
    pub soa_rr: [u8; SOA_RR_MAX],
}

impl Default for Config {
    fn default() -> Self {
        let mut ports = [0u16; crate::PORTS_MAX];
        ports[0] = 53;
        Config {
            ports,
            nports: 1,
            flags: 0,
            answer_ttl: 300,
            stop_v4: [0; 4],
            stop_v6: [0; 16],
            edns_udp_size: 1232,
            soa_rr_len: 0,
            reserved: 0,
            soa_rr: [0; SOA_RR_MAX],
        }
    }
}

impl Config {
    /// Whether `port` (host order) is one of the DNS ports.
    #[inline(always)]
    pub fn is_dns_port(&self, port: u16) -> bool {
        let n = self.nports as usize;
        let mut i = 0usize;
        while i < crate::PORTS_MAX {
            if i >= n {
                return false;
            }
            if self.ports.get(i).copied() == Some(port) {
                return true;
            }
            i = i.wrapping_add(1);
        }
        false
    }

    /// The global stop page as a [`StopRecord`] (used for `redirect` entries without their own).
    #[inline(always)]
    pub const fn stop_record(&self) -> StopRecord {
        let mut flags = 0;
        if self.flags & CFG_STOP_V4 != 0 {
            flags |= STOP_HAS_V4;
        }
        if self.flags & CFG_STOP_V6 != 0 {
            flags |= STOP_HAS_V6;
        }
        StopRecord { flags, v4: self.stop_v4, v6: self.stop_v6, reserved: [0; 5] }
    }
}

#[cfg(feature = "user")]
// SAFETY: Config is repr(C), Copy, and has no padding (checked by the layout test).
unsafe impl aya::Pod for Config {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_padding() {
        let fields = 2 * crate::PORTS_MAX + 2 + 2 + 4 + 4 + 16 + 2 + 2 + 4 + SOA_RR_MAX;
        assert_eq!(core::mem::size_of::<Config>(), fields);
    }

    #[test]
    fn stop_record_of_the_global_stop_page() {
        let mut c = Config::default();
        assert_eq!(c.stop_record().flags, 0);
        c.stop_v4 = [192, 0, 2, 80];
        c.flags = CFG_STOP_V4;
        let r = c.stop_record();
        assert_eq!((r.v4(), r.v6()), (Some([192, 0, 2, 80]), None));
        c.flags |= CFG_STOP_V6;
        assert!(c.stop_record().v6().is_some());
    }

    #[test]
    fn ports() {
        let mut c = Config::default();
        assert!(c.is_dns_port(53));
        assert!(!c.is_dns_port(5353));
        c.ports[1] = 5353;
        assert!(!c.is_dns_port(5353), "only nports are used");
        c.nports = 2;
        assert!(c.is_dns_port(5353));
        c.nports = 200;
        assert!(!c.is_dns_port(0) || c.ports.contains(&0));
    }
}
