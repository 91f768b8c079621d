//! The contract between the dnsfilter XDP program and userspace.
//!
//! Everything the kernel decides is computed here, so host tests, fuzzers and the CLI run the
//! very code the kernel runs: header layouts, the DNS question parser, name canonicalisation and
//! suffix hashes, the lookup-table layout, counters and the runtime configuration.
#![no_std]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![deny(clippy::arithmetic_side_effects)]
// Tests may panic: that is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod answer;
pub mod config;
pub mod counters;
pub mod dns;
pub mod hash;
pub mod table;

/// Names of the maps the program declares, as userspace finds them in the object.
pub mod maps {
    /// `ArrayOfMaps<Array<Bucket>>` with one slot: the live table generation.
    pub const TABLE: &str = "TABLE";
    /// `Array<Config, 1>`: runtime settings, see [`crate::config::Config`].
    pub const CONFIG: &str = "CONFIG";
    /// `PerCpuArray<u64>` indexed by [`crate::counters::Counter`].
    pub const COUNTERS: &str = "COUNTERS";
    /// `PerCpuArray<u64>` indexed by an entry's group (the order it came from).
    pub const GROUP_HITS: &str = "GROUP_HITS";
    /// `PerCpuArray<Scratch>` with one slot: per-CPU working memory for the question.
    pub const SCRATCH: &str = "SCRATCH";
}

/// The XDP program's name in the object.
pub const PROGRAM: &str = "dnsfilter";

/// Most VLAN tags (802.1Q 0x8100 / 802.1ad 0x88a8) parsed in front of the IP header.
pub const VLAN_MAX: usize = 2;
/// Longest name on the wire, root label included (RFC 1035 §2.3.4).
pub const QNAME_MAX: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const LABEL_MAX: usize = 63;
/// Most labels in a legal name, the root label excluded: 127 one-octet labels take 254 octets.
pub const MAX_LABELS: usize = 127;
/// Most DNS ports the program watches (UDP destination port).
pub const PORTS_MAX: usize = 8;
/// Entry groups (orders × action) the `GROUP_HITS` map counts. Fixed in the object: the map
/// is pinned and reused across restarts, so it cannot be resized at load.
pub const GROUPS_MAX: u32 = 65536;
/// Most resolver addresses per family in [`config::Config`] (16 IPv4 and 16 IPv6).
pub const RESOLVERS_MAX: usize = 16;
