//! dnsfilter userspace: builds lookup tables from lists, loads the XDP program, swaps table
//! generations, attaches to interfaces and reads counters.

pub mod canary;
pub mod cli;
pub mod conf;
pub mod config;
pub mod daemon;
pub mod fleet;
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

#[cfg(test)]
mod tests {
    /// Whether `needle` occurs in `hay`.
    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
    }

    /// The object's digest identifies the commit and the pinned toolchain, not the folder it
    /// was built in: build.rs remaps the tree's, cargo's and rustup's paths.
    #[test]
    fn the_object_names_no_folder_of_this_machine() {
        let tree = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace");
        assert!(
            !contains(super::BPF_OBJECT, tree.to_str().expect("utf-8").as_bytes()),
            "the object names {}",
            tree.display()
        );
        assert!(contains(super::BPF_OBJECT, b"/dnsfilter/filter-ebpf/src/main.rs"), "remapped source paths");
        if let Some(home) = std::env::var_os("HOME").filter(|h| h.len() > 1) {
            let home = std::path::Path::new(&home).join(".cargo");
            assert!(!contains(super::BPF_OBJECT, home.to_str().expect("utf-8").as_bytes()), "{}", home.display());
        }
        assert_eq!(super::OBJECT_SHA256.len(), 64, "a sha256 in hex: {}", super::OBJECT_SHA256);
    }
}
