//! The whole testbed at once: namespaces, Unbound, and the daemon with an orders file.

use std::path::{Path, PathBuf};

use crate::{DnsFilter, EDGE_IF, Result, Testbed, Unbound, WorkDir};

/// Everything of one testbed named `base`, torn down in field order when dropped: the daemon
/// (and its pins), Unbound, the namespaces, the scratch folder.
pub struct Lab {
    pub filter: DnsFilter,
    pub unbound: Unbound,
    pub net: Testbed,
    pub work: WorkDir,
}

/// Where the pieces of the testbed `base` live.
pub struct Paths {
    /// The daemon's pin folder, on bpffs.
    pub pins: PathBuf,
    /// The pin that keeps the client's XDP_PASS link attached after `keep`.
    pub xdp_pin: PathBuf,
    /// Configs, logs, the orders file and the daemon's state.
    pub work: PathBuf,
}

impl Paths {
    pub fn of(base: &str) -> Paths {
        Paths {
            pins: PathBuf::from(format!("/sys/fs/bpf/{base}")),
            xdp_pin: PathBuf::from(format!("/sys/fs/bpf/{base}-client-xdp")),
            work: std::env::temp_dir().join(base),
        }
    }
}

impl Lab {
    /// Builds the testbed `base` (replacing leftovers of that name), starts Unbound, writes
    /// `orders` to `orders.toml` and starts `dnsfilter run` on it, with `extra` run flags.
    pub fn start(base: &str, bin: &Path, orders: &str, extra: &[&str]) -> Result<Lab> {
        let paths = Paths::of(base);
        let work = WorkDir::create(&paths.work)?;
        let net = Testbed::create(base)?;
        let unbound = Unbound::start(&net.edge, work.path())?;
        let list = work.write("orders.toml", orders)?;
        let mut filter = DnsFilter::new(bin, &paths.pins, &work.file("dnsfilter"))?;
        filter.run(&net.edge, EDGE_IF, &list, extra)?;
        Ok(Lab { filter, unbound, net, work })
    }

    /// A testbed whose names no other test or process uses.
    pub fn unique(tag: &str, bin: &Path, orders: &str, extra: &[&str]) -> Result<Lab> {
        Lab::start(&crate::unique_name(tag), bin, orders, extra)
    }

    /// The orders file the daemon runs on.
    pub fn orders(&self) -> PathBuf {
        self.work.file("orders.toml")
    }

    /// Replaces the orders file the way editors and config management do (a new file renamed
    /// over the old), so that the daemon never reads half a file.
    pub fn rewrite_orders(&self, orders: &str) -> Result<()> {
        let tmp = self.work.write(".orders.toml.new", orders)?;
        std::fs::rename(&tmp, self.orders()).map_err(|e| format!("rename {}: {e}", tmp.display()))
    }

    /// Leaves everything running after this process exits.
    pub fn keep(self, base: &str) -> Result<()> {
        let Lab { filter, unbound, net, work } = self;
        net.keep(&Paths::of(base).xdp_pin)?;
        filter.keep();
        unbound.keep();
        work.keep();
        Ok(())
    }

    /// Removes what the testbed `base` left, quietly: the namespaces (and the processes in
    /// them), the daemon's pins (detached first with `bin`, when it exists) and the scratch
    /// folder.
    pub fn remove(base: &str, bin: &Path) {
        let paths = Paths::of(base);
        Testbed::remove(base, &paths.xdp_pin);
        // Dropped at once: detaches what is pinned and removes the pins.
        drop(DnsFilter::new(bin, &paths.pins, &paths.work.join("dnsfilter")));
        let _ = std::fs::remove_dir_all(&paths.pins);
        let _ = std::fs::remove_dir_all(&paths.work);
    }

    /// What of the testbed `base` still exists.
    pub fn leftovers(base: &str) -> Vec<String> {
        let paths = Paths::of(base);
        let namespaces =
            [Testbed::client_ns(base), Testbed::edge_ns(base)].into_iter().filter(|n| crate::Netns::exists(n));
        let files =
            [paths.pins, paths.xdp_pin, paths.work].into_iter().filter(|p| p.exists()).map(|p| p.display().to_string());
        namespaces.chain(files).collect()
    }
}
