//! dnsfilter userspace: builds lookup tables from lists, loads the XDP program, swaps table
//! generations, attaches to interfaces and reads counters.

pub mod cli;
pub mod conf;
pub mod config;
pub mod daemon;
pub mod lists;
pub mod loader;
pub mod metrics;
pub mod names;
pub mod sys;
pub mod table;
pub mod time;

/// The XDP object, built by `build.rs` with aya-build.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dnsfilter"));
