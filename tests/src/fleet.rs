//! Support for the fleet tier: an edge node ([`Node`]) whose daemon runs in a network namespace
//! of its own (through `nsenter --net`, so that its pins stay visible to the test), attached
//! to a veth pair there, and configured as a secondary of primaries in the same namespace
//! (on 127.0.0.1): nothing outside the test's namespaces is contacted.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    daemon::{DaemonProcess, Output, Sandbox, cli},
    netns::Netns,
    primary::TsigKey,
};

/// `key` as the testbed's real primaries take it ([`testbed::Knot`], [`testbed::Bind`]): the
/// name without its final dot, the algorithm by name, the secret in base64.
pub fn testbed_key(key: &TsigKey) -> testbed::TsigKey {
    testbed::TsigKey::new(key.name.trim_end_matches('.'), &key.algorithm.to_string(), &key.secret_base64())
}

/// Prints the last lines of log files (a primary's) when dropped during a panic, so that a
/// failing test shows what the primary said, not only the daemon.
pub struct LogsOnPanic(pub Vec<PathBuf>);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.0 {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                eprintln!("----- {} -----\n{}", p.display(), testbed::tail(&text, 60));
            }
        }
    }
}

/// The daemon's end of the veth pair.
pub const NODE_IF: &str = "dnsf-edge";
/// Where the daemon hears NOTIFY, inside the node's namespace.
pub const NOTIFY_ADDR: &str = "127.0.0.1:5300";

/// A node: its sandbox (pins, state, logs), namespace and daemon. Declared in this order so
/// that the daemon is killed first and the pins removed last.
pub struct Node {
    pub daemon: Option<DaemonProcess>,
    pub ns: Netns,
    pub sandbox: Sandbox,
    /// The `[fleet]` TOML of the config.
    fleet: String,
    restarts: usize,
}

#[expect(clippy::new_without_default, reason = "new() creates a namespace and pins; a Default would hide that")]
impl Node {
    /// A namespace with `lo` up and a veth pair for the daemon to attach to.
    pub fn new() -> Node {
        let sandbox = Sandbox::new();
        let ns = Netns::new("dnsf-fleet");
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "link", "add", NODE_IF, "type", "veth", "peer", "name", "dnsf-peer"]);
        ns.exec(&["ip", "link", "set", NODE_IF, "up"]);
        ns.exec(&["ip", "link", "set", "dnsf-peer", "up"]);
        Node { daemon: None, ns, sandbox, fleet: String::new(), restarts: 0 }
    }

    /// The NOTIFY address, as primaries send to it.
    pub fn notify_addr(&self) -> SocketAddr {
        NOTIFY_ADDR.parse().expect("address")
    }

    /// Writes the key `key` as a BIND key file (mode 0600) and returns its path.
    pub fn key_file(&self, key: &TsigKey) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let p = self.sandbox.path(&format!("{}.key", key.name.trim_end_matches('.')));
        let text = format!(
            "key \"{}\" {{\n\talgorithm {};\n\tsecret \"{}\";\n}};\n",
            key.name.trim_end_matches('.'),
            key.algorithm,
            key.secret_base64()
        );
        std::fs::write(&p, text).expect("write the key file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod the key file");
        p
    }

    /// A `[fleet]` section with one zone from `primary`, signed with `key` (as a key file) if
    /// given, and `extra` zone keys (TOML lines).
    pub fn fleet_toml(&self, zone: &str, primary: SocketAddr, key: Option<&TsigKey>, extra: &str) -> String {
        let mut t = format!("[fleet]\nnotify_listen = [\"{NOTIFY_ADDR}\"]\n");
        if let Some(k) = key {
            t +=
                &format!("[[fleet.key]]\nname = \"{}\"\nfile = {:?}\n", k.name.trim_end_matches('.'), self.key_file(k));
        }
        t += &format!("[[fleet.zone]]\nname = \"{zone}\"\nprimaries = [\"{primary}\"]\n");
        if let Some(k) = key {
            t += &format!("key = \"{}\"\n", k.name.trim_end_matches('.'));
        }
        t + extra
    }

    /// Writes the config: this node's interface, no list files, no watching, then `fleet`.
    pub fn configure(&mut self, fleet: &str) -> PathBuf {
        self.fleet = fleet.to_string();
        self.sandbox.write_config(&format!("interfaces = [\"{NODE_IF}\"]\nwatch = false\n{fleet}"))
    }

    pub fn config(&self) -> PathBuf {
        self.sandbox.path("dnsfilter.toml")
    }

    /// Starts the daemon and waits until it is ready (its stored copies enforced).
    pub fn start(&mut self) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        self.restarts += 1;
        let log = self.sandbox.path(&format!("dnsfilter-{}.log", self.restarts));
        let mut d = DaemonProcess::spawn_in(Some(&self.ns.name), &self.config(), &[], log);
        d.wait_notify("READY=1", Duration::from_secs(30));
        self.daemon = Some(d);
    }

    /// Stops the daemon (SIGTERM; the filter stays attached).
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.signal(libc::SIGTERM);
            let st = d.wait_exit(Duration::from_secs(20));
            assert!(st.success(), "dnsfilter exited with {st}; log:\n{}", d.log());
        }
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(|d| d.log()).unwrap_or_default()
    }

    /// `dnsfilter ARGS` against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.config(), args)
    }

    /// `dnsfilter zone status --json`: one zone's status.
    pub fn zone_status(&self, zone: &str) -> serde_json::Value {
        let v = self.cli(&["zone", "status", "--json"]).json();
        v["zones"][zone].clone()
    }

    /// Knot DNS in this node's namespace, on `addr` port 53, as primary of `zones`, with `key`
    /// (transfers need it, NOTIFY is signed with it) and NOTIFY to this node when `notify`. Its
    /// files are under the sandbox's `FOLDER/`, its log `FOLDER/knot.log`.
    pub fn knot(
        &self,
        folder: &str,
        addr: IpAddr,
        key: Option<&TsigKey>,
        notify: bool,
        zones: &[testbed::KnotZone],
    ) -> testbed::Knot {
        let targets: &[SocketAddr] = if notify { &[self.notify_addr()] } else { &[] };
        let key = key.map(testbed_key);
        testbed::Knot::start(&self.ns, &self.sandbox.path(folder), addr, key.as_ref(), targets, zones)
            .unwrap_or_else(|e| panic!("start knotd: {e}"))
    }

    /// BIND 9 in this node's namespace, on `addr` port 53, as primary of `zones` (name, zone
    /// file text), with `key` and NOTIFY to this node. Files under the sandbox's `FOLDER/`, its
    /// log `FOLDER/named.log`.
    pub fn bind(&self, folder: &str, addr: IpAddr, key: Option<&TsigKey>, zones: &[(String, String)]) -> testbed::Bind {
        let dir = self.sandbox.path(folder);
        std::fs::create_dir_all(&dir).expect("create the BIND folder");
        let key = key.map(testbed_key);
        testbed::Bind::start(&self.ns, &dir, addr, key.as_ref(), &[self.notify_addr()], zones)
            .unwrap_or_else(|e| panic!("start named: {e}"))
    }

    /// `dnsfilter zone resync ZONE` (`--force` with `force`): an AXFR now, waited for.
    pub fn resync(&self, zone: &str, force: bool) -> Output {
        let mut args = vec!["zone", "resync", zone];
        if force {
            args.push("--force");
        }
        self.cli(&args)
    }

    /// The stored copy of `zone` (`state/zones/ZONE.zone`), as the daemon wrote it.
    pub fn stored_zone(&self, zone: &str) -> PathBuf {
        self.sandbox.path("state").join("zones").join(format!("{}.zone", zone.trim_end_matches('.')))
    }

    /// Waits until the kernel enforces `serial` of `zone`.
    #[track_caller]
    pub fn wait_serial(&self, zone: &str, serial: u32, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let s = self.zone_status(zone);
            if s["serial_enforced"] == serial {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "{zone}: serial {serial} not enforced within {timeout:?}; status {s:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `pred` holds for the zone's status.
    #[track_caller]
    pub fn wait_status(
        &self,
        zone: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.zone_status(zone);
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "{zone}: {what} not seen within {timeout:?}; status {s:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
