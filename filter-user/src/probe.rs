//! What the kernel must offer, checked before the program is loaded: a kernel below the floor
//! is refused with the helper (or map feature) it lacks and the Linux version that brought it,
//! instead of a verifier log.
//!
//! Helpers are probed as `bpftool feature probe` and libbpf do (aya's `is_helper_supported`):
//! a two-instruction XDP program calls the helper, and the verifier's "invalid func" or
//! "unknown func" answer means the kernel lacks it. The flags of the table generations are
//! probed by creating a one-element array with them. A probe that cannot decide (no privilege
//! to load programs, say) counts as present: the load that follows reports that error itself.
//!
//! Not probed: BTF-defined maps and callbacks (needed by `bpf_loop`, so covered by it), and
//! XDP `bpf_link` (Linux 5.9, older than every helper below that needs 5.17 or 5.18).

use std::{fmt, sync::OnceLock};

use aya::{programs::ProgramType, sys::BpfHelper};

/// The oldest Linux release the program loads on.
pub const MINIMUM_LINUX: &str = "5.18";

/// A helper the program calls: the kernel's id, its name, and the release that added it
/// (for XDP programs).
const HELPERS: [(BpfHelper, &str, &str); 7] = [
    (BpfHelper::BPF_FUNC_map_lookup_elem, "bpf_map_lookup_elem", "3.19"),
    (BpfHelper::BPF_FUNC_csum_diff, "bpf_csum_diff", "4.6"),
    (BpfHelper::BPF_FUNC_xdp_adjust_head, "bpf_xdp_adjust_head", "4.10"),
    (BpfHelper::BPF_FUNC_xdp_adjust_tail, "bpf_xdp_adjust_tail", "4.18"),
    (BpfHelper::BPF_FUNC_loop, "bpf_loop", "5.17"),
    (BpfHelper::BPF_FUNC_xdp_load_bytes, "bpf_xdp_load_bytes", "5.18"),
    (BpfHelper::BPF_FUNC_xdp_store_bytes, "bpf_xdp_store_bytes", "5.18"),
];

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_F_INNER_MAP: u32 = 1 << 12;

/// Map flags the table generations are created with, and the release that added each.
const MAP_FLAGS: [(u32, &str, &str); 2] = [
    (BPF_F_MMAPABLE, "mmapable arrays (BPF_F_MMAPABLE)", "5.5"),
    (BPF_F_MMAPABLE | BPF_F_INNER_MAP, "inner-map arrays (BPF_F_INNER_MAP)", "5.10"),
];

/// One thing the kernel lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The helper or feature, as the kernel documentation names it.
    pub what: &'static str,
    /// The Linux release that added it.
    pub since: &'static str,
}

/// The kernel lacks what the program needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("this kernel ({kernel}) lacks {}; dnsfilter needs Linux {MINIMUM_LINUX} or later", list(.missing))]
pub struct Unsupported {
    /// `uname -r`.
    pub kernel: String,
    /// What it lacks, oldest requirement first.
    pub missing: Vec<Missing>,
}

/// "a (needs Linux 1), b (needs Linux 2) and c (needs Linux 3)".
fn list(missing: &[Missing]) -> String {
    let items: Vec<String> = missing.iter().map(Missing::to_string).collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.concat(),
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (needs Linux {})", self.what, self.since)
    }
}

/// The running kernel's release (`uname -r`), or `unknown`.
pub fn kernel_release() -> String {
    // SAFETY: uname fills a zeroed utsname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: the kernel NUL-terminates `release` within the array.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned()
}

/// Checks once per process that the kernel has every helper and map feature the program
/// needs; later calls return the first answer.
pub fn check() -> Result<(), Unsupported> {
    static ANSWER: OnceLock<Result<(), Unsupported>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let missing = missing();
            if missing.is_empty() { Ok(()) } else { Err(Unsupported { kernel: kernel_release(), missing }) }
        })
        .clone()
}

/// Probes every helper and map feature now; returns what the kernel lacks.
pub fn missing() -> Vec<Missing> {
    let mut out = Vec::new();
    for (helper, what, since) in HELPERS {
        match aya::sys::is_helper_supported(ProgramType::Xdp, helper) {
            Ok(true) => {}
            Ok(false) => out.push(Missing { what, since }),
            Err(e) => tracing::debug!(helper = what, error = %e, "cannot probe the helper; assuming it is present"),
        }
    }
    for (flags, what, since) in MAP_FLAGS {
        match map_flags_supported(flags) {
            Ok(true) => {}
            Ok(false) => out.push(Missing { what, since }),
            Err(e) => tracing::debug!(feature = what, error = %e, "cannot probe the map flags; assuming they work"),
        }
    }
    out
}

/// Whether the kernel creates a one-element array with `flags` (EINVAL: it does not know
/// one of them).
fn map_flags_supported(flags: u32) -> std::io::Result<bool> {
    /// The head of `union bpf_attr` for BPF_MAP_CREATE; the kernel zero-fills the rest.
    #[repr(C)]
    struct Attr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    }
    let attr = Attr { map_type: BPF_MAP_TYPE_ARRAY, key_size: 4, value_size: 8, max_entries: 1, map_flags: flags };
    // SAFETY: BPF_MAP_CREATE with an attr prefix of the declared size.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, &attr as *const Attr, size_of::<Attr>()) };
    if fd >= 0 {
        // SAFETY: the kernel returned a descriptor that nothing else owns.
        unsafe { libc::close(fd as i32) };
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINVAL) { Ok(false) } else { Err(e) }
}

/// The helper ids the probe covers (for the test that the object calls no other).
pub fn probed_helpers() -> impl Iterator<Item = (u32, &'static str)> {
    HELPERS.iter().map(|(h, name, _)| (*h as u32, *name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_kernel_the_helper_and_the_versions() {
        let e = Unsupported {
            kernel: "5.15.0-91-generic".into(),
            missing: vec![Missing { what: "bpf_loop", since: "5.17" }],
        };
        assert_eq!(
            e.to_string(),
            "this kernel (5.15.0-91-generic) lacks bpf_loop (needs Linux 5.17); dnsfilter needs Linux 5.18 or later"
        );
        let e = Unsupported {
            kernel: "5.10.0-28-amd64".into(),
            missing: vec![
                Missing { what: "bpf_loop", since: "5.17" },
                Missing { what: "bpf_xdp_load_bytes", since: "5.18" },
                Missing { what: "bpf_xdp_store_bytes", since: "5.18" },
            ],
        };
        assert_eq!(
            e.to_string(),
            "this kernel (5.10.0-28-amd64) lacks bpf_loop (needs Linux 5.17), bpf_xdp_load_bytes (needs Linux \
             5.18) and bpf_xdp_store_bytes (needs Linux 5.18); dnsfilter needs Linux 5.18 or later"
        );
    }

    #[test]
    fn the_probe_covers_every_helper_the_object_calls() {
        const CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
        let obj = aya_obj::Object::parse(crate::BPF_OBJECT).expect("parse the embedded object");
        let probed: Vec<u32> = probed_helpers().map(|(id, _)| id).collect();
        let mut called: Vec<i32> = obj
            .functions
            .values()
            .flat_map(|f| f.instructions.iter())
            .filter(|i| i.code == CALL && i.src_reg() == 0)
            .map(|i| i.imm)
            .collect();
        called.sort_unstable();
        called.dedup();
        assert!(!called.is_empty(), "the object calls helpers");
        for id in called {
            assert!(probed.contains(&(id as u32)), "the object calls helper #{id}, which the probe does not check");
        }
    }

    #[test]
    fn the_release_is_read() {
        let r = kernel_release();
        assert!(r.chars().next().is_some_and(|c| c.is_ascii_digit()), "{r}");
    }
}
