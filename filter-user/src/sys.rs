//! The few bpf(2) commands aya 0.14 does not expose: opening a pinned object as a raw fd,
//! reading an XDP link's interface, and force-detaching a link.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const BPF_LINK_DETACH: libc::c_long = 34;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` prefix of the declared size.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// Opens a pinned BPF object (map, program or link).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    #[repr(C)]
    struct Attr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        pad: u32,
    }
    let mut attr = Attr { pathname: c.as_ptr() as u64, bpf_fd: 0, file_flags: 0, path_fd: 0, pad: 0 };
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: the kernel returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What the kernel says about an XDP link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpLinkInfo {
    pub link_id: u32,
    pub prog_id: u32,
    /// 0 once the interface is gone (the link is defunct).
    pub ifindex: u32,
}

/// Reads an XDP link's ids and interface.
pub fn xdp_link_info(fd: BorrowedFd<'_>) -> io::Result<XdpLinkInfo> {
    // struct bpf_link_info: type, id, prog_id, then a union aligned to 8 whose `xdp` member
    // starts with ifindex (offset 16).
    let mut info = [0u64; 16];
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr =
        Attr { bpf_fd: fd.as_raw_fd() as u32, info_len: size_of_val(&info) as u32, info: info.as_mut_ptr() as u64 };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let w = |i: usize| info.get(i).copied().unwrap_or(0);
    Ok(XdpLinkInfo { link_id: (w(0) >> 32) as u32, prog_id: w(1) as u32, ifindex: w(2) as u32 })
}

/// Detaches a link from its hook now, whoever else holds it (Linux 5.9).
pub fn link_detach(fd: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
        pad: [u32; 3],
    }
    let mut attr = Attr { link_fd: fd.as_raw_fd() as u32, pad: [0; 3] };
    bpf(BPF_LINK_DETACH, &mut attr).map(|_| ())
}

/// Opens the loaded BTF object with the given id (Linux 5.0).
pub fn btf_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        btf_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut attr = Attr { btf_id: id, next_id: 0, open_flags: 0 };
    let fd = bpf(BPF_BTF_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Index of a network interface, or `None` if there is none of that name.
pub fn if_index(iface: &str) -> Option<u32> {
    let c = CString::new(iface).ok()?;
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// `statfs` magic of the BPF filesystem.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs is mounted by convention.
pub const BPFFS: &str = "/sys/fs/bpf";

fn fs_type(path: &Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statfs fills a zeroed struct for a valid path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// Makes sure `dir` can hold pins: mounts bpffs on /sys/fs/bpf when it is not mounted there
/// (as systemd does at boot), and refuses folders on any other filesystem.
pub fn ensure_bpffs(dir: &Path) -> Result<(), String> {
    let mut probe = dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    if fs_type(&probe).map_err(|e| format!("{}: {e}", probe.display()))? == BPF_FS_MAGIC {
        return Ok(());
    }
    let bpffs = Path::new(BPFFS);
    if dir.starts_with(bpffs) && (probe == bpffs || bpffs.starts_with(&probe)) {
        std::fs::create_dir_all(bpffs).map_err(|e| format!("{BPFFS}: {e}"))?;
        let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
        let (src, target, fstype, data) = (c("bpf")?, c(BPFFS)?, c("bpf")?, c("mode=0700")?);
        // SAFETY: mount(2) with valid NUL-terminated strings.
        let r = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, data.as_ptr().cast()) };
        if r != 0 {
            return Err(format!(
                "{BPFFS} is not a bpf filesystem and mounting one failed: {}",
                io::Error::last_os_error()
            ));
        }
        tracing::warn!(
            "mounted a bpf filesystem on {BPFFS}: it was not mounted in this mount namespace. If this \
             process runs in a private one (`ip netns exec` makes one), the pins vanish when it exits and \
             the filter with them; run it with `nsenter --net=/run/netns/NAME` instead"
        );
        return Ok(());
    }
    Err(format!("{} is not on a bpf filesystem (mount one with: mount -t bpf bpf DIR)", dir.display()))
}
