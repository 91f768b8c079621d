//! A pass-everything XDP program for the client end of the veth pair, with raw bpf syscalls
//! (no BPF toolchain needed).
//!
//! Frames sent with XDP_TX on one end of a veth pair land in the peer's ring, but the veth
//! driver only kicks the peer's NAPI for them when the peer has an XDP program itself
//! (`veth_xdp_flush`): with GRO alone they sit in the ring and the client never sees the
//! answer. The kernel selftests attach such a dummy to veth peers for the same reason.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
    thread,
};

use crate::{Netns, Result};

/// XDP_PASS attached in native mode through a bpf_link; detached when dropped (or when the
/// interface goes away), unless pinned.
pub struct XdpPass {
    link: OwnedFd,
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to the fields used here.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_LINK_CREATE, up to the fields used here.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `union bpf_attr` for BPF_OBJ_PIN.
#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The bpf syscall; its result as a raw number.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: attr is a live, initialised bpf_attr prefix of the size passed; the kernel zero
    // extends it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// The bpf syscall for commands that return a new file descriptor.
fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: BPF_PROG_LOAD and BPF_LINK_CREATE return a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads an XDP program from raw instructions (one `u64` each). On a verifier refusal the
/// error carries the verifier log.
pub fn load(name: &str, code: &[u64]) -> Result<OwnedFd> {
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    let n = name.len().min(15);
    attr.prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    match bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Again with the verifier log, to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(format!("loading XDP program {name}: {first}\n{}", String::from_utf8_lossy(&log[..end])))
        }
    }
}

impl XdpPass {
    /// Loads the program and attaches it to `iface` inside `ns`.
    pub fn attach(ns: &Netns, iface: &str) -> Result<XdpPass> {
        // r0 = XDP_PASS; exit
        let insns: [u64; 2] = [0xb7 | (2 << 32), 0x95];
        let c_iface = CString::new(iface).map_err(|e| format!("{iface:?}: {e}"))?;
        // setns changes only the calling thread's namespace: do it in a thread of its own.
        let attach = || -> Result<OwnedFd> {
            // SAFETY: setns with a namespace fd that `ns` holds open.
            if unsafe { libc::setns(ns.file().as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns {}: {}", ns.name, std::io::Error::last_os_error()));
            }
            // SAFETY: a NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(c_iface.as_ptr()) };
            if ifindex == 0 {
                return Err(format!("{iface} in {}: {}", ns.name, std::io::Error::last_os_error()));
            }
            let prog = load("xdp_pass", &insns)?;
            let mut create = LinkCreateAttr {
                prog_fd: prog.as_raw_fd() as u32,
                target_ifindex: ifindex,
                attach_type: BPF_XDP,
                flags: XDP_FLAGS_DRV_MODE,
            };
            bpf_fd(BPF_LINK_CREATE, &mut create).map_err(|e| format!("attach XDP_PASS to {iface}: {e}"))
        };
        let link = thread::scope(|s| s.spawn(attach).join()).map_err(|_| "the XDP_PASS attach thread panicked")??;
        Ok(XdpPass { link })
    }

    /// Pins the link at `path` (on bpffs), so that it outlives this process; unlinking the
    /// pin (or deleting the interface) detaches it.
    pub fn pin(&self, path: &Path) -> Result<()> {
        let c_path =
            CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut attr =
            ObjPinAttr { pathname: c_path.as_ptr() as u64, bpf_fd: self.link.as_raw_fd() as u32, file_flags: 0 };
        bpf(BPF_OBJ_PIN, &mut attr).map_err(|e| format!("pin the XDP_PASS link at {}: {e}", path.display()))?;
        Ok(())
    }
}
