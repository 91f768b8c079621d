//! Outcome counters. The program counts every packet exactly once, under one [`Counter`], in a
//! per-CPU array indexed by the discriminant. Userspace sums the per-CPU values. New counters
//! are appended, so that the index of an existing counter never changes.

/// One outcome of the XDP program. The discriminant is the index in the `COUNTERS` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Not IPv4 or IPv6 (ARP, LLDP, MPLS, more than [`crate::VLAN_MAX`] tags...).
    PassNotIp = 0,
    /// An IP packet that is not UDP.
    PassNotUdp,
    /// UDP to a port outside the configured DNS ports.
    PassNotDnsPort,
    /// An IPv4 fragment (first or later): never inspected.
    PassIpFragment,
    /// IPv6 with extension headers in front of UDP: not inspected.
    PassIpv6ExtHeader,
    /// Ethernet, IP or UDP header shorter than it claims, or lengths that disagree.
    PassBadHeader,
    /// DNS message shorter than its 12-octet header.
    PassShortDns,
    /// QR=1 (a response) or an OPCODE other than QUERY.
    PassNotQuery,
    /// QDCOUNT other than 1.
    PassQdcount,
    /// ANCOUNT or NSCOUNT not zero.
    PassHasRecords,
    /// ARCOUNT above 1.
    PassArcount,
    /// A label longer than 63 octets or of a reserved type (0x40, 0x80).
    PassMalformedName,
    /// A compression pointer in the question name.
    PassCompressedName,
    /// The name runs past the end of the packet, or QTYPE/QCLASS are missing.
    PassTruncatedName,
    /// The name is longer than 255 octets.
    PassNameTooLong,
    /// QCLASS other than IN.
    PassNotClassIn,
    /// No list is loaded.
    PassNoTable,
    /// The name matches no entry.
    PassNoMatch,
    /// An `allow` entry matched: passed.
    HitAllow,
    /// A `monitor` entry matched: counted and passed.
    HitMonitor,
    /// Answered NXDOMAIN.
    AnswerNxdomain,
    /// Answered NOERROR with no data.
    AnswerNodata,
    /// Answered REFUSED.
    AnswerRefused,
    /// Answered with TC=1.
    AnswerTruncate,
    /// Answered with the stop-page address (or NODATA for other types).
    AnswerRedirect,
    /// Dropped.
    Drop,
    /// A block matched but the answer could not be built or sent: passed.
    AnswerFailed,
    /// The lookup table is inconsistent (bad header, or an entry names a stop record the
    /// generation lacks): passed. Cannot happen with our loader.
    PassBadTable,
    /// A query to a DNS port whose destination is not a configured resolver: passed. Counted
    /// only when resolvers are configured.
    PassNotResolver,
}

impl Counter {
    /// Number of counters: the size of the `COUNTERS` map.
    pub const COUNT: u32 = Counter::PassNotResolver as u32 + 1;

    /// Every counter, in index order.
    pub const ALL: [Counter; Counter::COUNT as usize] = [
        Counter::PassNotIp,
        Counter::PassNotUdp,
        Counter::PassNotDnsPort,
        Counter::PassIpFragment,
        Counter::PassIpv6ExtHeader,
        Counter::PassBadHeader,
        Counter::PassShortDns,
        Counter::PassNotQuery,
        Counter::PassQdcount,
        Counter::PassHasRecords,
        Counter::PassArcount,
        Counter::PassMalformedName,
        Counter::PassCompressedName,
        Counter::PassTruncatedName,
        Counter::PassNameTooLong,
        Counter::PassNotClassIn,
        Counter::PassNoTable,
        Counter::PassNoMatch,
        Counter::HitAllow,
        Counter::HitMonitor,
        Counter::AnswerNxdomain,
        Counter::AnswerNodata,
        Counter::AnswerRefused,
        Counter::AnswerTruncate,
        Counter::AnswerRedirect,
        Counter::Drop,
        Counter::AnswerFailed,
        Counter::PassBadTable,
        Counter::PassNotResolver,
    ];

    /// Stable snake_case name, used in CLI, JSON and metrics output.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::PassNotIp => "pass_not_ip",
            Counter::PassNotUdp => "pass_not_udp",
            Counter::PassNotDnsPort => "pass_not_dns_port",
            Counter::PassIpFragment => "pass_ip_fragment",
            Counter::PassIpv6ExtHeader => "pass_ipv6_ext_header",
            Counter::PassBadHeader => "pass_bad_header",
            Counter::PassShortDns => "pass_short_dns",
            Counter::PassNotQuery => "pass_not_query",
            Counter::PassQdcount => "pass_qdcount",
            Counter::PassHasRecords => "pass_has_records",
            Counter::PassArcount => "pass_arcount",
            Counter::PassMalformedName => "pass_malformed_name",
            Counter::PassCompressedName => "pass_compressed_name",
            Counter::PassTruncatedName => "pass_truncated_name",
            Counter::PassNameTooLong => "pass_name_too_long",
            Counter::PassNotClassIn => "pass_not_class_in",
            Counter::PassNoTable => "pass_no_table",
            Counter::PassNoMatch => "pass_no_match",
            Counter::HitAllow => "hit_allow",
            Counter::HitMonitor => "hit_monitor",
            Counter::AnswerNxdomain => "answer_nxdomain",
            Counter::AnswerNodata => "answer_nodata",
            Counter::AnswerRefused => "answer_refused",
            Counter::AnswerTruncate => "answer_truncate",
            Counter::AnswerRedirect => "answer_redirect",
            Counter::Drop => "drop",
            Counter::AnswerFailed => "answer_failed",
            Counter::PassBadTable => "pass_bad_table",
            Counter::PassNotResolver => "pass_not_resolver",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn all_is_in_index_order_and_names_are_unique() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?} out of order");
        }
        let mut names: std::vec::Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }

    #[test]
    fn indices_are_stable() {
        // Counters are appended: these indices are part of the map's contract.
        assert_eq!(Counter::PassNotIp as u32, 0);
        assert_eq!(Counter::PassBadTable as u32, 27);
        assert_eq!(Counter::PassNotResolver as u32, 28);
        assert_eq!(Counter::COUNT as usize, Counter::ALL.len());
    }
}
