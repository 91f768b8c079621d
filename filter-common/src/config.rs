//! Runtime configuration of the program: element 0 of the `CONFIG` array map.
//! Native byte order unless a field says otherwise. Userspace writes it before attaching and
//! may rewrite it at any time (each field is read once per packet).

use crate::RESOLVERS_MAX;
use crate::table::{STOP_HAS_V4, STOP_HAS_V6, StopRecord};

/// Longest pre-rendered SOA record tail ([`Config::soa_rr`]).
pub const SOA_RR_MAX: usize = 128;

/// [`Config::flags`]: a stop-page IPv4 address is set.
pub const CFG_STOP_V4: u16 = 1;
/// [`Config::flags`]: a stop-page IPv6 address is set.
pub const CFG_STOP_V6: u16 = 2;

/// Runtime settings shared by every packet.
///
/// Resolver scope: when `nresolvers_v4` and `nresolvers_v6` are both 0, every query to a DNS
/// port is inspected, whatever its destination. Otherwise only queries whose destination
/// address is one of the first `nresolvers_v4` IPv4 or `nresolvers_v6` IPv6 addresses are; the
/// others pass (counted as `PassNotResolver`). The lists are per family, so with only IPv4
/// resolvers configured every IPv6 query passes (and the other way round). At most
/// [`RESOLVERS_MAX`] addresses per family.
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
    /// Number of valid `resolvers_v4` (at most [`RESOLVERS_MAX`]).
    pub nresolvers_v4: u16,
    /// Number of valid `resolvers_v6` (at most [`RESOLVERS_MAX`]).
    pub nresolvers_v6: u16,
    /// The authority-section SOA record after its owner name: TYPE, CLASS, TTL, RDLENGTH and
    /// RDATA (MNAME, RNAME, SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM), in wire format.
    pub soa_rr: [u8; SOA_RR_MAX],
    /// IPv4 resolver addresses: each the `u32` whose native-order octets are the address in
    /// network order (`u32::from_ne_bytes(addr.octets())`), so that the program compares whole
    /// words.
    pub resolvers_v4: [u32; RESOLVERS_MAX],
    /// IPv6 resolver addresses, each as four `u32` words built like `resolvers_v4`.
    pub resolvers_v6: [[u32; 4]; RESOLVERS_MAX],
}

// `Config::soa_word` reads `soa_rr` with aligned 4-octet loads.
const _: () = assert!(core::mem::offset_of!(Config, soa_rr) % 4 == 0 && align_of::<Config>() >= 4);

impl Config {
    /// Octets `8 * i .. 8 * i + 8` of [`Config::soa_rr`] (`i` masked to the array) as a
    /// little-endian word, from two aligned 4-octet loads: the field sits at a multiple of 4
    /// (checked at compile time), and the BPF target splits unaligned loads into single octets.
    #[inline(always)]
    pub fn soa_word(&self, i: usize) -> u64 {
        let i = i & (SOA_RR_MAX / 8 - 1);
        let p = self.soa_rr.as_ptr().cast::<u32>();
        // SAFETY: i < 16, so words 2i and 2i + 1 lie inside the 128-octet array, which is
        // 4-aligned (checked above).
        let (lo, hi) = unsafe { (p.add(i.wrapping_mul(2)).read(), p.add(i.wrapping_mul(2).wrapping_add(1)).read()) };
        u64::from(u32::from_le(lo)) | (u64::from(u32::from_le(hi)) << 32)
    }
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
            nresolvers_v4: 0,
            nresolvers_v6: 0,
            soa_rr: [0; SOA_RR_MAX],
            resolvers_v4: [0; RESOLVERS_MAX],
            resolvers_v6: [[0; 4]; RESOLVERS_MAX],
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

    /// Whether the program is limited to listed resolvers (any of either family configured).
    #[inline(always)]
    pub const fn has_resolvers(&self) -> bool {
        (self.nresolvers_v4 | self.nresolvers_v6) != 0
    }

    /// Whether `dst` (the octets of an IPv4 destination, as in the packet) is a listed resolver.
    #[inline(always)]
    pub fn is_resolver_v4(&self, dst: [u8; 4]) -> bool {
        let dst = u32::from_ne_bytes(dst);
        let n = usize::from(self.nresolvers_v4);
        let mut i = 0usize;
        while i < RESOLVERS_MAX {
            if i >= n {
                return false;
            }
            if self.resolvers_v4.get(i).copied() == Some(dst) {
                return true;
            }
            i = i.wrapping_add(1);
        }
        false
    }

    /// Whether `dst` (the octets of an IPv6 destination, as in the packet) is a listed resolver.
    #[inline(always)]
    pub fn is_resolver_v6(&self, dst: [u8; 16]) -> bool {
        let w = resolver_v6_words(dst);
        let n = usize::from(self.nresolvers_v6);
        let mut i = 0usize;
        while i < RESOLVERS_MAX {
            if i >= n {
                return false;
            }
            if self.resolvers_v6.get(i).copied() == Some(w) {
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

/// An IPv4 address (network-order octets) as stored in [`Config::resolvers_v4`].
#[inline(always)]
pub const fn resolver_v4_word(octets: [u8; 4]) -> u32 {
    u32::from_ne_bytes(octets)
}

/// An IPv6 address (network-order octets) as stored in [`Config::resolvers_v6`].
#[inline(always)]
pub const fn resolver_v6_words(o: [u8; 16]) -> [u32; 4] {
    let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3] = o;
    [
        u32::from_ne_bytes([a0, a1, a2, a3]),
        u32::from_ne_bytes([b0, b1, b2, b3]),
        u32::from_ne_bytes([c0, c1, c2, c3]),
        u32::from_ne_bytes([d0, d1, d2, d3]),
    ]
}

#[cfg(feature = "user")]
// SAFETY: Config is repr(C), Copy, and has no padding (checked by the layout test).
unsafe impl aya::Pod for Config {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_padding() {
        // ports, nports, flags; answer_ttl, stop_v4, stop_v6, edns_udp_size, soa_rr_len;
        // nresolvers_v4, nresolvers_v6, soa_rr; resolvers_v4, resolvers_v6.
        let ports = 2 * crate::PORTS_MAX + 2 + 2;
        let answers = 4 + 4 + 16 + 2 + 2;
        let resolvers = 2 + 2 + 4 * RESOLVERS_MAX + 16 * RESOLVERS_MAX;
        assert_eq!(core::mem::size_of::<Config>(), ports + answers + resolvers + SOA_RR_MAX);
    }

    #[test]
    fn resolvers() {
        let mut c = Config::default();
        assert!(!c.has_resolvers());
        assert!(!c.is_resolver_v4([192, 0, 2, 1]), "no list: nothing is listed (the program skips the check)");
        c.resolvers_v4[0] = resolver_v4_word([192, 0, 2, 1]);
        c.resolvers_v4[1] = resolver_v4_word([192, 0, 2, 2]);
        assert!(!c.is_resolver_v4([192, 0, 2, 1]), "only nresolvers_v4 are used");
        c.nresolvers_v4 = 2;
        assert!(c.has_resolvers());
        assert!(c.is_resolver_v4([192, 0, 2, 1]) && c.is_resolver_v4([192, 0, 2, 2]));
        assert!(!c.is_resolver_v4([192, 0, 2, 3]) && !c.is_resolver_v4([0; 4]));
        assert!(!c.is_resolver_v6([0; 16]), "an IPv4 list lists no IPv6 address");
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[15] = 0x53;
        c.resolvers_v6[RESOLVERS_MAX - 1] = resolver_v6_words(v6);
        c.nresolvers_v6 = RESOLVERS_MAX as u16;
        assert!(c.is_resolver_v6(v6), "the last slot is compared");
        let mut other = v6;
        other[14] = 1;
        assert!(!c.is_resolver_v6(other));
        c.nresolvers_v6 = u16::MAX;
        assert!(!c.is_resolver_v6(other), "a count over the limit stays bounded");
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
