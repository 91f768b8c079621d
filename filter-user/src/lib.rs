//! dnsfilter userspace: builds lookup tables from lists, loads the XDP program, swaps table
//! generations, attaches to interfaces and reads counters.

pub mod canary;
pub mod cli;
pub mod conf;
pub mod config;
pub mod daemon;
pub mod lists;
pub mod loader;
pub mod metrics;
pub mod names;
pub mod probe;
pub mod sys;
pub mod table;
pub mod time;

/// The XDP object, built by `build.rs` with aya-build.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dnsfilter"));
/// sha256 of [`BPF_OBJECT`], computed at build time: two machines run the same object if and
/// only if they print the same digest.
pub const OBJECT_SHA256: &str = env!("DNSFILTER_OBJECT_SHA256");
/// `dnsfilter --version`: the release, the object's digest and the toolchain that built it.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nBPF object sha256 ",
    env!("DNSFILTER_OBJECT_SHA256"),
    "\nbuilt with ",
    env!("DNSFILTER_BPF_TOOLCHAIN"),
    " and bpf-linker ",
    env!("DNSFILTER_BPF_LINKER"),
);
