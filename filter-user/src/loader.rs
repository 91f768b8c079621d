//! Loads the XDP program, writes its configuration, installs table generations (built off-line,
//! written through mmap, then swapped in with one map update) and reads its counters.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, Map, MapData, PerCpuArray},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use filter_common::{
    PROGRAM,
    config::Config,
    counters::Counter,
    maps,
    table::{Bucket, TableHeader},
};

use crate::table::Built;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_F_INNER_MAP: u32 = 1 << 12;

/// Errors of the loader; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the BPF object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("program {PROGRAM}: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("map {name}: {source}")]
    Map { name: &'static str, source: aya::maps::MapError },
    #[error("map {0} is missing from the object")]
    MissingMap(&'static str),
    #[error("creating a table generation of {buckets} buckets: {source}")]
    CreateTable { buckets: usize, source: std::io::Error },
    #[error("interface {iface}: {reason}")]
    Attach { iface: String, reason: String },
}

/// How to attach to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Native (driver) XDP; falls back to skb mode with a warning if the driver lacks it.
    Native,
    /// Generic XDP in the network stack.
    Skb,
}

/// A loaded filter: the program, its maps, and the generation in force.
pub struct Filter {
    ebpf: Ebpf,
    header: Option<TableHeader>,
}

/// Raises RLIMIT_MEMLOCK for kernels before 5.11 (memcg accounting). Failure is not fatal:
/// newer kernels do not need it, and the process may lack CAP_SYS_RESOURCE.
fn raise_memlock() {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK (not needed on Linux >= 5.11)");
    }
}

impl Filter {
    /// Loads the object and the program (not attached).
    pub fn load() -> Result<Filter, LoadError> {
        raise_memlock();
        let ebpf = EbpfLoader::new().load(crate::BPF_OBJECT)?;
        let mut f = Filter { ebpf, header: None };
        f.program()?.load()?;
        f.set_config(&Config::default())?;
        Ok(f)
    }

    /// The XDP program.
    pub fn program(&mut self) -> Result<&mut Xdp, LoadError> {
        let p = self.ebpf.program_mut(PROGRAM).ok_or(LoadError::MissingMap(PROGRAM))?;
        Ok(p.try_into()?)
    }

    fn map(&self, name: &'static str) -> Result<&Map, LoadError> {
        self.ebpf.map(name).ok_or(LoadError::MissingMap(name))
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, LoadError> {
        self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))
    }

    /// Writes the runtime configuration.
    pub fn set_config(&mut self, cfg: &Config) -> Result<(), LoadError> {
        let name = maps::CONFIG;
        let mut a: Array<&mut MapData, Config> =
            Array::try_from(self.map_mut(name)?).map_err(|source| LoadError::Map { name, source })?;
        a.set(0, cfg, 0).map_err(|source| LoadError::Map { name, source })
    }

    /// Installs a generation: creates a new array, fills it through mmap, then swaps it in
    /// with one update of the `TABLE` slot. Packets see the old generation or the new one,
    /// never a mix within a lookup step; the old one is freed by the kernel after an RCU grace
    /// period.
    pub fn install(&mut self, built: &Built) -> Result<(), LoadError> {
        let inner = create_generation(&built.buckets)?;
        let name = maps::TABLE;
        let mut outer: ArrayOfMaps<&mut MapData, MapData> =
            ArrayOfMaps::try_from(self.map_mut(name)?).map_err(|source| LoadError::Map { name, source })?;
        outer.set(0, &inner, 0).map_err(|source| LoadError::Map { name, source })?;
        self.header = Some(built.header);
        Ok(())
    }

    /// Header of the generation this process installed last.
    pub fn header(&self) -> Option<TableHeader> {
        self.header
    }

    /// Counter totals, summed over CPUs, indexed by [`Counter`].
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>, LoadError> {
        let name = maps::COUNTERS;
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(name)?).map_err(|source| LoadError::Map { name, source })?;
        Counter::ALL
            .iter()
            .map(|c| {
                let v = a.get(&(*c as u32), 0).map_err(|source| LoadError::Map { name, source })?;
                Ok((*c, v.iter().sum()))
            })
            .collect()
    }

    /// Hits of one group, summed over CPUs.
    pub fn group_hits(&self, group: u32) -> Result<u64, LoadError> {
        let name = maps::GROUP_HITS;
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(name)?).map_err(|source| LoadError::Map { name, source })?;
        let v = a.get(&group, 0).map_err(|source| LoadError::Map { name, source })?;
        Ok(v.iter().sum())
    }

    /// Attaches to `iface`. Native mode falls back to skb mode (with a warning) when the
    /// driver has no native XDP. Returns the mode in use.
    pub fn attach(&mut self, iface: &str, mode: Mode) -> Result<(XdpLinkId, Mode), LoadError> {
        if nix_if_index(iface).is_none() {
            return Err(LoadError::Attach { iface: iface.into(), reason: "no such interface".into() });
        }
        let prog = self.program()?;
        match mode {
            Mode::Skb => prog
                .attach(iface, XdpMode::Skb)
                .map(|id| (id, Mode::Skb))
                .map_err(|e| LoadError::Attach { iface: iface.into(), reason: format!("skb mode: {e}") }),
            Mode::Native => match prog.attach(iface, XdpMode::Driver) {
                Ok(id) => Ok((id, Mode::Native)),
                Err(native) => {
                    tracing::warn!(iface, error = %native, "native XDP unavailable, falling back to skb mode");
                    prog.attach(iface, XdpMode::Skb).map(|id| (id, Mode::Skb)).map_err(|e| LoadError::Attach {
                        iface: iface.into(),
                        reason: format!("native mode: {native}; skb mode: {e}"),
                    })
                }
            },
        }
    }

    /// Detaches a link made by [`Filter::attach`].
    pub fn detach(&mut self, id: XdpLinkId) -> Result<(), LoadError> {
        Ok(self.program()?.detach(id)?)
    }
}

/// Index of a network interface, or `None` if there is none of that name.
pub fn nix_if_index(iface: &str) -> Option<u32> {
    let c = std::ffi::CString::new(iface).ok()?;
    // SAFETY: valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// `union bpf_attr` for BPF_MAP_CREATE (the fields up to map_name).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

/// Creates an mmapable array of `buckets.len()` buckets holding `buckets`.
fn create_generation(buckets: &[Bucket]) -> Result<MapData, LoadError> {
    let n = buckets.len();
    let err = |source| LoadError::CreateTable { buckets: n, source };
    let max_entries = u32::try_from(n).map_err(|_| err(std::io::Error::other("too many buckets")))?;
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: size_of::<Bucket>() as u32,
        max_entries,
        map_flags: BPF_F_MMAPABLE | BPF_F_INNER_MAP,
        ..Default::default()
    };
    attr.map_name[..8].copy_from_slice(b"dnsf_gen");
    // SAFETY: BPF_MAP_CREATE with a zero-padded attr of the declared size.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, &attr as *const MapCreateAttr, size_of::<MapCreateAttr>())
    };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: the syscall returned a new file descriptor that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let bytes = n * size_of::<Bucket>();
    // SAFETY: mapping the whole array of an mmapable map, shared and writable.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
    };
    if p == libc::MAP_FAILED {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: p maps `bytes` writable octets; buckets has exactly that many.
    unsafe {
        std::ptr::copy_nonoverlapping(buckets.as_ptr().cast::<u8>(), p.cast::<u8>(), bytes);
        libc::munmap(p, bytes);
    }
    MapData::from_fd(fd).map_err(|e| err(std::io::Error::other(e.to_string())))
}
