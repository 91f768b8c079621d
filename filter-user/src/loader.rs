//! Loads the XDP program, writes its configuration, installs table generations (built off-line,
//! written through mmap, then swapped in with one map update), attaches to interfaces and reads
//! counters.
//!
//! With [`Pins`], the maps, the program and one link per interface live under one bpffs folder
//! with a versioned layout, so the interfaces stay filtered with the last list when the daemon
//! stops, crashes or is upgraded; the next start adopts them.

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, Map, MapData, PerCpuArray},
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use filter_common::{
    PROGRAM,
    config::Config,
    counters::Counter,
    maps,
    table::{Bucket, TableHeader},
};

use crate::{sys, table::Built};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_F_INNER_MAP: u32 = 1 << 12;

/// The maps kept across restarts, with their pin file names.
const PINNED_MAPS: [(&str, &str); 4] =
    [(maps::TABLE, "table"), (maps::CONFIG, "config"), (maps::COUNTERS, "counters"), (maps::GROUP_HITS, "group_hits")];

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
    #[error("pin {path}: {reason}")]
    Pin { path: PathBuf, reason: String },
    #[error("nothing is pinned at {0} (is the filter running?)")]
    NotPinned(PathBuf),
    #[error(transparent)]
    Kernel(#[from] crate::probe::Unsupported),
}

fn pin_err(path: &Path, reason: impl ToString) -> LoadError {
    LoadError::Pin { path: path.to_path_buf(), reason: reason.to_string() }
}

/// How to attach to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Native (driver) XDP; falls back to skb mode with a warning if the driver lacks it.
    Native,
    /// Generic XDP in the network stack.
    Skb,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Skb => "skb",
        }
    }
}

/// The bpffs folder of one filter: `<root>/v1/{table,config,counters,group_hits,prog}` and
/// `<root>/v1/links/<interface>`. The layout version changes whenever the maps change shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pins {
    pub root: PathBuf,
}

impl Pins {
    /// Version of the pinned layout.
    pub const LAYOUT: &'static str = "v1";
    /// The default folder.
    pub const DEFAULT_ROOT: &'static str = "/sys/fs/bpf/dnsfilter";

    pub fn new(root: impl Into<PathBuf>) -> Pins {
        Pins { root: root.into() }
    }

    /// The folder of the current layout.
    pub fn dir(&self) -> PathBuf {
        self.root.join(Self::LAYOUT)
    }

    fn map_path(&self, file: &str) -> PathBuf {
        self.dir().join(file)
    }

    pub fn prog_path(&self) -> PathBuf {
        self.dir().join("prog")
    }

    pub fn links_dir(&self) -> PathBuf {
        self.dir().join("links")
    }

    pub fn link_path(&self, iface: &str) -> PathBuf {
        self.links_dir().join(iface)
    }

    /// Whether a filter is pinned here (its table map exists).
    pub fn exists(&self) -> bool {
        self.map_path("table").exists()
    }

    /// Interfaces with a pinned link, sorted.
    pub fn linked(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.links_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        v
    }

    /// What the kernel says about the link pinned for `iface`.
    pub fn link_info(&self, iface: &str) -> Result<sys::XdpLinkInfo, LoadError> {
        let path = self.link_path(iface);
        let fd = sys::obj_get(&path).map_err(|e| pin_err(&path, e))?;
        sys::xdp_link_info(fd.as_fd()).map_err(|e| pin_err(&path, e))
    }

    /// Detaches the link pinned for `iface` and removes its pin. The link is detached even if
    /// another process (a running daemon) holds it.
    pub fn detach(&self, iface: &str) -> Result<(), LoadError> {
        let path = self.link_path(iface);
        let fd = sys::obj_get(&path).map_err(|e| pin_err(&path, e))?;
        sys::link_detach(fd.as_fd()).map_err(|e| pin_err(&path, format!("detach: {e}")))?;
        std::fs::remove_file(&path).map_err(|e| pin_err(&path, e))
    }

    /// Removes every pin of the current layout (and the folders, when empty). Links must be
    /// detached first.
    pub fn remove_all(&self) -> Result<(), LoadError> {
        let _ = std::fs::remove_dir(self.links_dir());
        for (_, file) in PINNED_MAPS {
            remove_if_present(&self.map_path(file))?;
        }
        remove_if_present(&self.prog_path())?;
        let _ = std::fs::remove_dir(self.dir());
        let _ = std::fs::remove_dir(&self.root);
        Ok(())
    }

    /// Opens the pinned maps read-only, for the reporting verbs.
    pub fn open(&self) -> Result<PinnedMaps, LoadError> {
        if !self.exists() {
            return Err(LoadError::NotPinned(self.dir()));
        }
        let open = |file: &str| {
            let path = self.map_path(file);
            let data = MapData::from_pin(&path).map_err(|e| pin_err(&path, e))?;
            Map::from_map_data(data).map_err(|e| pin_err(&path, e))
        };
        Ok(PinnedMaps {
            table: open("table")?,
            config: open("config")?,
            counters: open("counters")?,
            group_hits: open("group_hits")?,
        })
    }
}

fn remove_if_present(path: &Path) -> Result<(), LoadError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(pin_err(path, e)),
        _ => Ok(()),
    }
}

/// The filter's maps opened from their pins.
pub struct PinnedMaps {
    table: Map,
    config: Map,
    counters: Map,
    group_hits: Map,
}

impl PinnedMaps {
    /// The generation in force, mapped read-only.
    pub fn generation(&self) -> Result<Option<GenerationView>, LoadError> {
        GenerationView::open(&self.table)
    }

    pub fn counters(&self) -> Result<Vec<(Counter, u64)>, LoadError> {
        read_counters(&self.counters)
    }

    pub fn group_hits(&self) -> Result<Vec<u64>, LoadError> {
        read_group_hits(&self.group_hits)
    }

    pub fn config(&self) -> Result<Config, LoadError> {
        let name = maps::CONFIG;
        let a: Array<&MapData, Config> =
            Array::try_from(&self.config).map_err(|source| LoadError::Map { name, source })?;
        a.get(&0, 0).map_err(|source| LoadError::Map { name, source })
    }
}

fn read_counters(map: &Map) -> Result<Vec<(Counter, u64)>, LoadError> {
    let name = maps::COUNTERS;
    let a: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    Counter::ALL
        .iter()
        .map(|c| {
            let v = a.get(&(*c as u32), 0).map_err(|source| LoadError::Map { name, source })?;
            Ok((*c, v.iter().sum()))
        })
        .collect()
}

/// Hits of every group, summed over CPUs (index = group).
fn read_group_hits(map: &Map) -> Result<Vec<u64>, LoadError> {
    let name = maps::GROUP_HITS;
    let a: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    (0..a.len())
        .map(|g| a.get(&g, 0).map(|v| v.iter().sum()).map_err(|source| LoadError::Map { name, source }))
        .collect()
}

/// A table generation in the kernel, mapped read-only.
pub struct GenerationView {
    ptr: *mut libc::c_void,
    len: usize,
    buckets: usize,
}

impl GenerationView {
    fn open(outer: &Map) -> Result<Option<GenerationView>, LoadError> {
        let name = maps::TABLE;
        let outer: ArrayOfMaps<&MapData, MapData> =
            ArrayOfMaps::try_from(outer).map_err(|source| LoadError::Map { name, source })?;
        let inner = match outer.get(&0, 0) {
            Ok(m) => m,
            Err(aya::maps::MapError::KeyNotFound) => return Ok(None),
            Err(aya::maps::MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
                return Ok(None);
            }
            Err(source) => return Err(LoadError::Map { name, source }),
        };
        let info = inner.info().map_err(|source| LoadError::Map { name, source })?;
        let buckets = info.max_entries() as usize;
        let len = buckets * size_of::<Bucket>();
        // SAFETY: read-only shared mapping of an mmapable array map of `len` octets.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, inner.fd().as_fd().as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(LoadError::CreateTable { buckets, source: std::io::Error::last_os_error() });
        }
        Ok(Some(GenerationView { ptr, len, buckets }))
    }

    /// Looks canonical labels up exactly as the kernel does; see [`crate::table::lookup`].
    pub fn lookup(&self, labels: &[Vec<u8>]) -> Option<(usize, filter_common::table::Entry)> {
        let h = self.header()?;
        crate::table::lookup(self.buckets(), &h, labels)
    }

    /// The own stop page of a matched entry (`None`: the global one); see [`crate::table::stop_of`].
    pub fn stop(&self, entry: &filter_common::table::Entry) -> Option<crate::table::Stop> {
        crate::table::stop_of(self.buckets(), &self.header()?, entry)
    }

    /// The elements, header first.
    pub fn buckets(&self) -> &[Bucket] {
        // SAFETY: the mapping holds `buckets` Bucket-sized, 8-aligned elements (page aligned),
        // and lives as long as self. Generations are never written once installed.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<Bucket>(), self.buckets) }
    }

    pub fn header(&self) -> Option<TableHeader> {
        self.buckets().first().map(Bucket::header).filter(|h| h.magic == filter_common::table::MAGIC)
    }
}

impl Drop for GenerationView {
    fn drop(&mut self) {
        // SAFETY: unmapping what open() mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// The BTF that table generations are created with: the object's, as loaded with the program,
/// and the type ids of the `TABLE` template's key and value.
///
/// Linux 6.1 admits an inner map into `TABLE` only if `bpf_map_meta_equal()` finds it equal to
/// the template, and that compares fields derived from BTF (`timer_off`): a generation created
/// without BTF is refused with EINVAL there. Later kernels compare BTF records, which are
/// empty either way. Creating every generation with the template's own types satisfies both.
struct GenerationBtf {
    fd: OwnedFd,
    key_type_id: u32,
    value_type_id: u32,
}

impl GenerationBtf {
    /// Reads the template's type ids from the object and opens the BTF loaded with `prog`.
    /// `None` if the kernel holds no BTF for the program (generations are then created
    /// without BTF, as kernels before BTF-defined maps would need).
    fn of(prog: &Xdp) -> Result<Option<GenerationBtf>, LoadError> {
        let Some((key_type_id, value_type_id)) = template_type_ids()? else { return Ok(None) };
        let Some(btf_id) = prog.info()?.btf_id() else { return Ok(None) };
        let fd = sys::btf_get_fd_by_id(btf_id).map_err(|source| LoadError::CreateTable { buckets: 0, source })?;
        Ok(Some(GenerationBtf { fd, key_type_id, value_type_id }))
    }
}

/// The BTF key and value type ids of the `TABLE` template in the embedded object, read once per
/// process (the daemon loads the object twice: the program and its canary instance).
fn template_type_ids() -> Result<Option<(u32, u32)>, LoadError> {
    static IDS: std::sync::OnceLock<Option<(u32, u32)>> = std::sync::OnceLock::new();
    if let Some(ids) = IDS.get() {
        return Ok(*ids);
    }
    let obj =
        aya_obj::Object::parse(crate::BPF_OBJECT).map_err(|e| LoadError::Object(aya::EbpfError::ParseError(e)))?;
    let ids = match obj.maps.get(maps::TABLE).and_then(aya_obj::maps::Map::inner) {
        Some(aya_obj::maps::Map::Btf(inner)) => Some((inner.def.btf_key_type_id, inner.def.btf_value_type_id)),
        _ => None,
    };
    Ok(*IDS.get_or_init(|| ids))
}

/// A loaded filter: the program, its maps, and the generation in force.
pub struct Filter {
    ebpf: Ebpf,
    /// BTF for new generations (see [`GenerationBtf`]).
    generation_btf: Option<GenerationBtf>,
    header: Option<TableHeader>,
    pins: Option<Pins>,
    /// Links of an unpinned filter, by interface.
    links: HashMap<String, XdpLinkId>,
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

/// What happened to a pinned link when a filter adopted it.
#[derive(Debug)]
pub enum Adopted {
    /// The link now runs this filter's program.
    Kept { iface: String, info: sys::XdpLinkInfo },
    /// The interface is gone (or was recreated): the stale pin was removed.
    Stale { iface: String },
}

impl Filter {
    /// Loads the object and the program (not attached), with maps of its own.
    pub fn load() -> Result<Filter, LoadError> {
        Self::load_with(None)
    }

    /// Loads the object and the program, reusing the maps pinned under `pins` (creating and
    /// pinning them the first time), so the counters and the generation in force carry over.
    /// Links are left alone: see [`Filter::adopt_links`].
    pub fn load_pinned(pins: &Pins) -> Result<Filter, LoadError> {
        let dir = pins.links_dir();
        sys::ensure_bpffs(&pins.root).map_err(|e| pin_err(&pins.root, e))?;
        std::fs::create_dir_all(&dir).map_err(|e| pin_err(&dir, e))?;
        Self::load_with(Some(pins))
    }

    fn load_with(pins: Option<&Pins>) -> Result<Filter, LoadError> {
        raise_memlock();
        // A kernel below the floor is named with what it lacks, before any verifier log.
        crate::probe::check()?;
        let mut loader = EbpfLoader::new();
        let paths: Vec<(&str, PathBuf)> = pins
            .map(|p| PINNED_MAPS.iter().map(|(name, file)| (*name, p.map_path(file))).collect())
            .unwrap_or_default();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader.load(crate::BPF_OBJECT)?;
        let mut f = Filter { ebpf, generation_btf: None, header: None, pins: pins.cloned(), links: HashMap::new() };
        f.program()?.load()?;
        f.generation_btf = GenerationBtf::of(f.program()?)?;
        if pins.is_none() {
            f.set_config(&Config::default())?;
        } else {
            f.header = f.current_header()?;
        }
        Ok(f)
    }

    /// The pins this filter uses, if any.
    pub fn pins(&self) -> Option<&Pins> {
        self.pins.as_ref()
    }

    /// Points every pinned link at this filter's program (one atomic link update each: the
    /// interface is never unfiltered), drops pins of interfaces that are gone, and pins the
    /// program. Call after [`Filter::load_pinned`].
    pub fn adopt_links(&mut self) -> Result<Vec<Adopted>, LoadError> {
        let Some(pins) = self.pins.clone() else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for iface in pins.linked() {
            let path = pins.link_path(&iface);
            let info = pins.link_info(&iface)?;
            if info.ifindex == 0 || sys::if_index(&iface) != Some(info.ifindex) {
                tracing::warn!(iface, "pinned link is stale (interface gone or recreated); removing it");
                let fd = sys::obj_get(&path).map_err(|e| pin_err(&path, e))?;
                let _ = sys::link_detach(fd.as_fd());
                remove_if_present(&path)?;
                out.push(Adopted::Stale { iface });
                continue;
            }
            let link = PinnedLink::from_pin(&path).map_err(|e| pin_err(&path, e))?;
            let link = XdpLink::try_from(FdLink::from(link)).map_err(|e| pin_err(&path, e))?;
            let id = self.program()?.attach_to_link(link)?;
            // The pin still names the same link; this process only drops its descriptor.
            let _ = self.program()?.take_link(id)?;
            let info = pins.link_info(&iface)?;
            out.push(Adopted::Kept { iface, info });
        }
        let prog = pins.prog_path();
        remove_if_present(&prog)?;
        self.program()?.pin(&prog).map_err(|e| pin_err(&prog, e))?;
        Ok(out)
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

    /// The runtime configuration in force.
    pub fn config(&self) -> Result<Config, LoadError> {
        let name = maps::CONFIG;
        let a: Array<&MapData, Config> =
            Array::try_from(self.map(name)?).map_err(|source| LoadError::Map { name, source })?;
        a.get(&0, 0).map_err(|source| LoadError::Map { name, source })
    }

    /// Installs a generation: creates a new array, fills it through mmap, then swaps it in
    /// with one update of the `TABLE` slot. Packets see the old generation or the new one,
    /// never a mix within a lookup step; the old one is freed by the kernel after an RCU grace
    /// period.
    pub fn install(&mut self, built: &Built) -> Result<(), LoadError> {
        let generation = self.prepare(built)?;
        self.install_prepared(&generation)
    }

    /// Header of the generation in force (as installed by this process, or adopted).
    pub fn header(&self) -> Option<TableHeader> {
        self.header
    }

    /// The generation in force, read from the kernel.
    pub fn generation(&self) -> Result<Option<GenerationView>, LoadError> {
        GenerationView::open(self.map(maps::TABLE)?)
    }

    fn current_header(&self) -> Result<Option<TableHeader>, LoadError> {
        Ok(self.generation()?.and_then(|g| g.header()))
    }

    /// Counter totals, summed over CPUs, indexed by [`Counter`].
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>, LoadError> {
        read_counters(self.map(maps::COUNTERS)?)
    }

    /// Hits of every group, summed over CPUs (index = group).
    pub fn group_hits_all(&self) -> Result<Vec<u64>, LoadError> {
        read_group_hits(self.map(maps::GROUP_HITS)?)
    }

    /// Hits of one group, summed over CPUs.
    pub fn group_hits(&self, group: u32) -> Result<u64, LoadError> {
        let name = maps::GROUP_HITS;
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(name)?).map_err(|source| LoadError::Map { name, source })?;
        let v = a.get(&group, 0).map_err(|source| LoadError::Map { name, source })?;
        Ok(v.iter().sum())
    }

    /// Zeroes the hit counters of the given groups (slots handed to a new order).
    pub fn clear_groups(&mut self, groups: &[u32]) -> Result<(), LoadError> {
        let name = maps::GROUP_HITS;
        let mut a: PerCpuArray<&mut MapData, u64> =
            PerCpuArray::try_from(self.map_mut(name)?).map_err(|source| LoadError::Map { name, source })?;
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| LoadError::Map {
            name,
            source: aya::maps::MapError::SyscallError(aya::sys::SyscallError { call: "nr_cpus", io_error: e }),
        })?;
        for g in groups {
            let zeros = aya::maps::PerCpuValues::try_from(vec![0u64; ncpus]).map_err(|e| LoadError::Map {
                name,
                source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                    call: "per-cpu values",
                    io_error: e,
                }),
            })?;
            a.set(*g, zeros, 0).map_err(|source| LoadError::Map { name, source })?;
        }
        Ok(())
    }

    /// Attaches to `iface`. Native mode falls back to skb mode (with a warning) when the
    /// driver has no native XDP. A pinned filter pins the link, so it outlives this process.
    /// Returns the mode in use.
    pub fn attach(&mut self, iface: &str, mode: Mode) -> Result<Mode, LoadError> {
        if sys::if_index(iface).is_none() {
            return Err(LoadError::Attach { iface: iface.into(), reason: "no such interface".into() });
        }
        let prog = self.program()?;
        let (id, mode) = match mode {
            Mode::Skb => prog
                .attach(iface, XdpMode::Skb)
                .map(|id| (id, Mode::Skb))
                .map_err(|e| LoadError::Attach { iface: iface.into(), reason: format!("skb mode: {e}") })?,
            Mode::Native => match prog.attach(iface, XdpMode::Driver) {
                Ok(id) => (id, Mode::Native),
                Err(native) => {
                    tracing::warn!(iface, error = %native, "native XDP unavailable, falling back to skb mode");
                    prog.attach(iface, XdpMode::Skb).map(|id| (id, Mode::Skb)).map_err(|e| LoadError::Attach {
                        iface: iface.into(),
                        reason: format!("native mode: {native}; skb mode: {e}"),
                    })?
                }
            },
        };
        if let Some(pins) = self.pins.clone() {
            let path = pins.link_path(iface);
            let link = self.program()?.take_link(id)?;
            let fd = FdLink::try_from(link).map_err(|e| LoadError::Attach {
                iface: iface.into(),
                reason: format!("the kernel attached without a bpf_link (Linux 5.9 or later is needed to pin): {e}"),
            })?;
            let pinned = fd.pin(&path).map_err(|e| pin_err(&path, e))?;
            drop(pinned);
        } else {
            self.links.insert(iface.to_string(), id);
        }
        Ok(mode)
    }

    /// Detaches from `iface` (and removes its pin, for a pinned filter).
    pub fn detach(&mut self, iface: &str) -> Result<(), LoadError> {
        if let Some(pins) = self.pins.clone() {
            return pins.detach(iface);
        }
        match self.links.remove(iface) {
            Some(id) => Ok(self.program()?.detach(id)?),
            None => Err(LoadError::Attach { iface: iface.into(), reason: "not attached".into() }),
        }
    }
}

/// A table generation created in the kernel but not installed: [`Filter::prepare`] creates it,
/// and [`Filter::install_prepared`] swaps it into the `TABLE` of any filter loaded from the same
/// object (the daemon's, and its private canary instance: both test and run the same map).
pub struct Generation {
    map: MapData,
    header: TableHeader,
}

impl Generation {
    pub fn header(&self) -> TableHeader {
        self.header
    }
}

impl Filter {
    /// Creates the array of a generation and fills it, as [`Filter::install`] does, without
    /// installing it.
    pub fn prepare(&self, built: &Built) -> Result<Generation, LoadError> {
        Ok(Generation { map: create_generation(&built.buckets, self.generation_btf.as_ref())?, header: built.header })
    }

    /// Swaps a prepared generation in with one update of the `TABLE` slot (see
    /// [`Filter::install`]).
    pub fn install_prepared(&mut self, generation: &Generation) -> Result<(), LoadError> {
        let name = maps::TABLE;
        let mut outer: ArrayOfMaps<&mut MapData, MapData> =
            ArrayOfMaps::try_from(self.map_mut(name)?).map_err(|source| LoadError::Map { name, source })?;
        outer.set(0, &generation.map, 0).map_err(|source| LoadError::Map { name, source })?;
        self.header = Some(generation.header);
        Ok(())
    }

    /// The generation in force with a valid header, as a map another filter can install.
    pub fn generation_in_force(&self) -> Result<Option<Generation>, LoadError> {
        let Some(header) = self.current_header()? else { return Ok(None) };
        let name = maps::TABLE;
        let outer: ArrayOfMaps<&MapData, MapData> =
            ArrayOfMaps::try_from(self.map(name)?).map_err(|source| LoadError::Map { name, source })?;
        let map = outer.get(&0, 0).map_err(|source| LoadError::Map { name, source })?;
        Ok(Some(Generation { map, header }))
    }
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

/// Creates an mmapable array of `buckets.len()` buckets holding `buckets`, with the
/// template's BTF types when there are some.
fn create_generation(buckets: &[Bucket], btf: Option<&GenerationBtf>) -> Result<MapData, LoadError> {
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
    if let Some(btf) = btf {
        attr.btf_fd = btf.fd.as_raw_fd() as u32;
        attr.btf_key_type_id = btf.key_type_id;
        attr.btf_value_type_id = btf.value_type_id;
    }
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
    let bytes = size_of_val(buckets);
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
