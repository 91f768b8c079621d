//! A fleet on the testbed: edge nodes whose `dnsfilter` is a secondary of an RPZ zone served by
//! a real primary (Knot DNS), shared by `cargo xtask demo --fleet` and
//! `tests/tests/fleet_resolver.rs`.
//!
//! ```text
//!  node a: client netns  <-veth->  edge netns                          primary netns BASE-pri1
//!          dig                     dnsfilter (XDP on veth-edge),       knotd on 10.54.0.53
//!                                  Unbound                             (on lo: its service address)
//!                                  veth-pri1 10.54.1.1   <------>      veth-primary 10.54.1.2
//!  node b: client netns  <-veth->  edge netns
//!                                  veth-pri2 10.54.2.1   <------>      veth-node2   10.54.2.2
//! ```
//!
//! The first node's edge is joined to the primary's namespace by [`PrimaryNet`]; every further
//! node by an [`Uplink`] (subnet `10.54.N.0/24`, as `PrimaryNet` numbers them). In a
//! [`Fleet`], knotd listens on one service address ([`service_addr`]) that each node reaches
//! through its link, and the primary sends from it (the preferred source of its routes to the
//! links): every node names the same primary, and NOTIFY comes from it. Each node hears NOTIFY
//! on its own end of its link ([`notify_addr`]).
//!
//! The pieces:
//! - [`Secondary`]: `dnsfilter run` started from a config with `[fleet]` (no orders file), and
//!   the verbs run against it (`zone status`, `stats`, ...). Dropped, it kills the daemon and
//!   removes its pins.
//! - [`RpzResolver`]: the node's resolver as a secondary of the same zone (Unbound with an
//!   `rpz:` clause, or BIND 9 with `response-policy`), answering every other name itself, with
//!   its query log: what the filter lets through (TCP, DoT) gets the same policy.
//! - [`Node`], [`Fleet`]: a whole fleet (the demo's), torn down in one drop.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    os::{fd::AsRawFd as _, unix::fs::PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    Child, Client, DnsFilter, EDGE_IF, EDGE_V4, EDGE_V6, Knot, KnotZone, Netns, Opts, Paths, PrimaryNet, RESOLVER_V4,
    RESOLVER_V6, Reply, Result, Testbed, TsigKey, Unbound, WorkDir, cmd,
    primary::{NsHandle, query_serial, rpz_zone},
    unbound::LoggedQuery,
};

/// The policy zone of the fleet.
pub const ZONE: &str = "rpz.isp.example";
/// The port where the daemons hear NOTIFY (not 53: a resolver runs on the node).
pub const NOTIFY_PORT: u16 = 5300;
/// The name of the TSIG key that signs transfers and NOTIFY.
pub const KEY_NAME: &str = "xfr-key";

/// The Allostreaming judgment as RPZ records (names relative to the zone): the sites and every
/// name below the first one, answered NXDOMAIN.
pub const ALLOSTREAMING: [&str; 4] = [
    "allostreaming.com 3600 CNAME .",
    "*.allostreaming.com 3600 CNAME .",
    "alloshowtv.com 3600 CNAME .",
    "alloshare.com 3600 CNAME .",
];

/// The zone file of [`ZONE`] at `serial`: [`ALLOSTREAMING`], then `more`.
pub fn allostreaming_zone(serial: u32, more: &[&str]) -> String {
    let records: Vec<&str> = ALLOSTREAMING.iter().chain(more).copied().collect();
    rpz_zone(ZONE, serial, &records)
}

/// The node's end of link `n`: `10.54.N.1`.
pub fn node_addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 54, n, 1))
}

/// The primary's end of link `n`: `10.54.N.2`.
pub fn primary_addr(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 54, n, 2))
}

/// The primary's service address in a [`Fleet`], where knotd listens: `10.54.0.53`, on the
/// loopback of its namespace.
pub fn service_addr() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 54, 0, 53))
}

/// Where the daemon of the node on link `n` hears NOTIFY: `10.54.N.1:5300`.
pub fn notify_addr(n: u8) -> SocketAddr {
    SocketAddr::new(node_addr(n), NOTIFY_PORT)
}

/// A further veth pair from the primary's namespace to a node's edge: `veth-nodeN`
/// `10.54.N.2/24` on the primary's side, `veth-priN` `10.54.N.1/24` on the node's (the
/// addresses [`PrimaryNet`] gives subnet N). Deleting either namespace deletes it.
pub struct Uplink {
    pub primary_if: String,
    pub peer_if: String,
    pub primary_addr: IpAddr,
    pub peer_addr: IpAddr,
}

impl Uplink {
    pub fn create(primary: &Netns, peer: &Netns, n: u8) -> Result<Uplink> {
        let link = Uplink {
            primary_if: format!("veth-node{n}"),
            peer_if: format!("veth-pri{n}"),
            primary_addr: primary_addr(n),
            peer_addr: node_addr(n),
        };
        primary.exec(&[
            "ip",
            "link",
            "add",
            &link.primary_if,
            "type",
            "veth",
            "peer",
            "name",
            &link.peer_if,
            "netns",
            &peer.name,
        ])?;
        for (ns, iface, addr) in [(primary, &link.primary_if, link.primary_addr), (peer, &link.peer_if, link.peer_addr)]
        {
            ns.exec(&["ip", "addr", "add", &format!("{addr}/24"), "dev", iface])?;
            ns.exec(&["ip", "link", "set", iface, "up"])?;
        }
        Ok(link)
    }
}

/// What a node's `dnsfilter.toml` says.
#[derive(Clone, Debug)]
pub struct NodeConf {
    /// The interface to filter.
    pub iface: String,
    /// Where NOTIFY is heard.
    pub notify_listen: SocketAddr,
    /// The zone's primaries (port 53).
    pub primaries: Vec<IpAddr>,
    /// The TSIG key of transfers and NOTIFY; written beside the config as a key file.
    pub key: Option<TsigKey>,
    /// `[settings] resolvers`.
    pub resolvers: Vec<String>,
    /// More top-level lines (e.g. `metrics = "127.0.0.1:9553"`), before any table.
    pub extra: String,
}

impl NodeConf {
    /// The testbed's node on link `n`: [`EDGE_IF`], NOTIFY on [`notify_addr`], primary
    /// [`primary_addr`], the resolver on [`EDGE_V4`] and [`EDGE_V6`], signed with `key`.
    pub fn on_link(n: u8, key: Option<&TsigKey>) -> NodeConf {
        NodeConf {
            iface: EDGE_IF.into(),
            notify_listen: notify_addr(n),
            primaries: vec![primary_addr(n)],
            key: key.cloned(),
            resolvers: vec![EDGE_V4.into(), EDGE_V6.into()],
            extra: String::new(),
        }
    }

    /// The config text, with the key file at `key_file`.
    pub fn render(&self, key_file: &Path) -> String {
        let quoted = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let mut t = format!("interfaces = [{:?}]\n{}", self.iface, self.extra);
        if !self.resolvers.is_empty() {
            t += &format!("\n[settings]\n# Only queries to this node's resolver are filtered.\nresolvers = [{}]\n", {
                quoted(&self.resolvers)
            });
        }
        t += &format!("\n[fleet]\nnotify_listen = [\"{}\"]\n", self.notify_listen);
        if let Some(k) = &self.key {
            t += &format!("\n[[fleet.key]]\nname = {:?}\nfile = {:?}\n", k.name, key_file.display().to_string());
        }
        let primaries: Vec<String> = self.primaries.iter().map(IpAddr::to_string).collect();
        t += &format!("\n[[fleet.zone]]\nname = {ZONE:?}\nprimaries = [{}]\n", quoted(&primaries));
        if let Some(k) = &self.key {
            t += &format!("key = {:?}\n", k.name);
        }
        t
    }
}

/// `dnsfilter run` as a fleet secondary: started from a config file with `[fleet]` and no
/// orders file. Dropped, it kills the daemon, then (through its [`DnsFilter`]) detaches the
/// filter and removes the pins.
pub struct Secondary {
    // Dropped in this order: the daemon, then the pins.
    child: Option<Child>,
    filter: DnsFilter,
    config: String,
    config_path: PathBuf,
    key_file: PathBuf,
}

impl Secondary {
    /// Writes `conf` (and its key file, mode 0600) into `dir` and starts `bin run` in `ns`,
    /// with its pins under `pin_dir`; returns once the daemon holds its pid file and the
    /// filter is attached in native mode to the interface. The zone comes after: see
    /// [`Secondary::wait_serial`].
    pub fn start(bin: &Path, pin_dir: &Path, dir: &Path, ns: &Netns, conf: &NodeConf) -> Result<Secondary> {
        let filter = DnsFilter::new(bin, pin_dir, dir)?;
        let key_file = dir.join(format!("{KEY_NAME}.key"));
        if let Some(k) = &conf.key {
            write_private(&key_file, &k.bind_key_file())?;
        }
        let config = conf.render(&key_file);
        // The file that DnsFilter's verbs name with --config.
        let path = dir.join("dnsfilter.toml");
        std::fs::write(&path, &config).map_err(|e| format!("write {}: {e}", path.display()))?;
        let mut s = Secondary { child: None, filter, config, config_path: path, key_file };
        let mut c = ns.command(bin);
        c.args(s.filter.global_args()).arg("run").env("NO_COLOR", "1");
        let child = Netns::spawn(&mut c, &s.filter.log_path())?;
        let pid = child.pid();
        s.child = Some(child);
        let iface = conf.iface.clone();
        crate::wait_for(Duration::from_secs(20), &format!("dnsfilter to attach to {iface}"), || {
            if let Some(status) = s.child.as_mut().and_then(Child::exited) {
                return Err(format!("dnsfilter exited ({status}):\n{}", crate::tail(&s.filter.log(), 20)));
            }
            let st = s.filter.status()?;
            let ours = st["daemon_pid"].as_i64() == Some(i64::from(pid));
            let attached = st["interfaces"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|i| i["name"] == iface.as_str() && i["attached"] == true && i["mode"] == "native");
            Ok(ours && attached)
        })?;
        Ok(s)
    }

    /// The config the daemon runs.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Where its config is.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The key file the config names.
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// The daemon's verbs (`cli`, `stats`, `status`, ...), against its folders.
    pub fn filter(&self) -> &DnsFilter {
        &self.filter
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        self.filter.log()
    }

    /// `dnsfilter zone status --json`, the status of `zone`.
    pub fn zone_status(&self, zone: &str) -> Result<serde_json::Value> {
        let out = self.filter.cli(&["zone", "status", "--json"])?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| format!("dnsfilter zone status --json: {e}: {out}"))?;
        Ok(v["zones"][zone].clone())
    }

    /// The serial of `zone` that the kernel enforces, from `dnsfilter zone status`.
    pub fn serial(&self, zone: &str) -> Result<Option<u32>> {
        Ok(self.zone_status(zone)?["serial_enforced"].as_u64().and_then(|s| u32::try_from(s).ok()))
    }

    /// Whether the daemon has exited; an error with its log if so.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.as_mut().map(Child::exited) {
            Some(Some(status)) => Err(format!("dnsfilter exited ({status}):\n{}", crate::tail(&self.log(), 20))),
            None => Err("dnsfilter is not running".into()),
            Some(None) => Ok(()),
        }
    }

    /// Waits until `dnsfilter zone status` shows `serial` of `zone` enforced; how long it took.
    pub fn wait_serial(&mut self, zone: &str, serial: u32, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        crate::wait_for(timeout, &format!("{zone} serial {serial} to be enforced"), || {
            self.check_running()?;
            Ok(self.serial(zone)? == Some(serial))
        })
        .map_err(|e| format!("{e}\n{}", crate::tail(&self.log(), 20)))?;
        Ok(start.elapsed())
    }

    /// Fetches `path` from the daemon's metrics address `addr`, which listens in `ns`.
    pub fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> Result<String> {
        let file = ns.file().try_clone().map_err(|e| format!("netns {}: {e}", ns.name))?;
        let path = path.to_string();
        // setns applies to the calling thread only: a thread of its own enters the namespace.
        std::thread::spawn(move || -> Result<String> {
            // SAFETY: setns with an open namespace file; it changes only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            let mut s =
                TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{addr}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| format!("{addr}: {e}"))?;
            let mut out = String::new();
            s.read_to_string(&mut out).map_err(|e| format!("{addr}: {e}"))?;
            Ok(out)
        })
        .join()
        .map_err(|_| "the metrics reader panicked".to_string())?
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }
}

/// Writes `text` to `path`, readable by its owner only (a key file).
fn write_private(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// `dig @SERVER NAME TYPE` from `ns`, over UDP (`+notcp`) or TCP (`+tcp`), one try of 2 s:
/// the command line as typed, and the answer.
pub fn dig(ns: &Netns, server: &str, name: &str, rtype: &str, tcp: bool) -> Result<(String, Reply)> {
    dig_with(ns.command("dig"), server, name, rtype, tcp)
}

/// [`dig`] with `command` (dig, in some namespace).
fn dig_with(mut command: Command, server: &str, name: &str, rtype: &str, tcp: bool) -> Result<(String, Reply)> {
    let mut line = Client::Dig.command_line(server, name, rtype, &Opts::default());
    line.push(if tcp { "+tcp" } else { "+notcp" }.into());
    let out = cmd::capture(command.args(&line[1..]))?;
    let raw = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((line.join(" "), Reply::parse(&raw)))
}

/// Adds, while knotd runs, a transfer ACL for `addr` without a key to every zone of the
/// [`Knot`] whose folder is `knot_dir` (a configuration transaction through `knotc`, kept in
/// memory only): for a secondary that cannot sign (Unbound), beside the keyed ACL. With
/// `notify`, also a NOTIFY target at `notify` without a key.
pub fn knot_allow_unsigned(knot_dir: &Path, id: &str, addr: IpAddr, notify: Option<SocketAddr>) -> Result<()> {
    let conf = knot_dir.join("knot.conf");
    let text = std::fs::read_to_string(&conf).map_err(|e| format!("read {}: {e}", conf.display()))?;
    // The control socket: `listen:` under `control:`.
    let socket = text
        .lines()
        .skip_while(|l| l.trim() != "control:")
        .find_map(|l| l.trim().strip_prefix("listen: "))
        .ok_or_else(|| format!("{}: no control socket", conf.display()))?
        .to_string();
    let mut sets = vec![
        format!("conf-set acl[{id}]"),
        format!("conf-set acl[{id}].address {addr}"),
        format!("conf-set acl[{id}].action transfer"),
        format!("conf-set template[default].acl {id}"),
    ];
    if let Some(n) = notify {
        sets.push(format!("conf-set remote[{id}]"));
        sets.push(format!("conf-set remote[{id}].address {}@{}", n.ip(), n.port()));
        sets.push(format!("conf-set template[default].notify {id}"));
    }
    let knotc = |args: &str| -> Result<String> {
        let mut c = Command::new("knotc");
        c.arg("-s").arg(&socket).env("HOME", knot_dir).args(args.split(' '));
        let out = cmd::run(&mut c)?;
        match out.lines().find(|l| l.starts_with("error:")) {
            Some(e) => Err(format!("knotc {args}: {e}")),
            None => Ok(out),
        }
    };
    knotc("conf-begin")?;
    for s in &sets {
        if let Err(e) = knotc(s) {
            let _ = knotc("conf-abort");
            return Err(e);
        }
    }
    knotc("conf-commit").map(drop)
}

/// Which resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolverKind {
    /// Unbound (1.17): an `rpz:` clause, transfers and NOTIFY without TSIG.
    Unbound,
    /// BIND 9 (named 9.18): `response-policy` over a secondary zone signed with the key.
    Bind,
}

impl std::fmt::Display for ResolverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResolverKind::Unbound => "Unbound",
            ResolverKind::Bind => "BIND",
        })
    }
}

/// One query a resolver logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverQuery {
    pub client: String,
    /// As received, with the final dot when the resolver prints it.
    pub name: String,
    pub rtype: String,
    /// Over TCP; `None` when the log does not say (Unbound).
    pub tcp: Option<bool>,
}

impl ResolverQuery {
    /// Whether the query was for `name` (any case, with or without the final dot).
    pub fn is(&self, name: &str) -> bool {
        self.name.trim_end_matches('.').eq_ignore_ascii_case(name.trim_end_matches('.'))
    }

    /// Parses a BIND `querylog` line:
    /// `client @0x.. 10.53.0.1#40000 (x.com): query: x.com IN A +ET (10.53.0.2)`.
    fn parse_bind(line: &str) -> Option<ResolverQuery> {
        let client = line.split("client @").nth(1)?.split_whitespace().nth(1)?.rsplit_once('#')?.0;
        let f: Vec<&str> = line.split(": query: ").nth(1)?.split_whitespace().collect();
        let [name, "IN", rtype, flags, ..] = f.as_slice() else { return None };
        Some(ResolverQuery {
            client: client.to_string(),
            name: name.to_string(),
            rtype: rtype.to_string(),
            tcp: Some(flags.contains('T')),
        })
    }
}

/// The node's resolver as a secondary of [`ZONE`]: it transfers the zone from the primary
/// itself, applies it as a response policy, and answers every other name from local data
/// (A [`RESOLVER_V4`], AAAA [`RESOLVER_V6`]), like the testbed's [`Unbound`]. It logs every
/// query. Killed when dropped.
pub struct RpzResolver {
    pub kind: ResolverKind,
    child: Child,
    ns: NsHandle,
    conf: PathBuf,
    log: PathBuf,
    addr: IpAddr,
}

/// The root zone the resolvers answer other names from: every name has A [`RESOLVER_V4`] and
/// AAAA [`RESOLVER_V6`].
fn root_zone() -> String {
    format!(
        "$TTL 300\n. SOA resolver.invalid. hostmaster.invalid. 1 3600 600 86400 300\n. NS resolver.invalid.\n\
         * A {RESOLVER_V4}\n* AAAA {RESOLVER_V6}\n"
    )
}

/// Unbound's configuration. Its `local-zone` answers come before RPZ QNAME triggers, so the
/// other names are answered from an `auth-zone` (which comes after): a local-zone `.` would
/// hide the policy.
fn unbound_conf(dir: &Path, listen: &[IpAddr], primary: IpAddr) -> String {
    let d = dir.display();
    let interfaces: String = listen.iter().map(|a| format!("  interface: {a}\n")).collect();
    format!(
        r#"server:
{interfaces}  port: 53
  access-control: 0.0.0.0/0 allow
  access-control: ::/0 allow
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: ""
  use-syslog: no
  logfile: "{d}/resolver.log"
  log-queries: yes
  verbosity: 1
  module-config: "respip validator iterator"
auth-zone:
  name: "."
  zonefile: "{d}/root.zone"
  for-downstream: no
  for-upstream: yes
  fallback-enabled: no
rpz:
  name: {ZONE}
  primary: {primary}
  zonefile: "{d}/{ZONE}.zone"
  # Answers SOA queries for the zone: how a monitor sees the serial this resolver holds.
  for-downstream: yes
  rpz-log: yes
  rpz-log-name: {ZONE}
remote-control:
  control-enable: yes
  control-interface: {d}/unbound.ctl
  control-use-cert: no
"#
    )
}

/// named.conf of a BIND resolver.
fn bind_conf(dir: &Path, listen: &[IpAddr], primary: IpAddr, key: &TsigKey) -> String {
    let d = dir.display();
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = listen.iter().partition(|a| a.is_ipv4());
    let list = |v: &[IpAddr]| {
        if v.is_empty() { "none;".to_string() } else { v.iter().map(|a| format!("{a};")).collect::<Vec<_>>().join(" ") }
    };
    format!(
        r#"{key_text}controls {{ }};
options {{
	directory "{d}";
	pid-file "{d}/named.pid";
	session-keyfile "{d}/session.key";
	managed-keys-directory "{d}";
	listen-on port 53 {{ {v4} }};
	listen-on-v6 port 53 {{ {v6} }};
	recursion yes;
	allow-recursion {{ any; }};
	dnssec-validation no;
	notify no;
	querylog yes;
	// Without min-update-interval 0, named applies a new version of the policy zone 60 s
	// after the previous one at the soonest, though it has transferred it.
	response-policy {{ zone "{ZONE}" min-update-interval 0; }};
}};
zone "{ZONE}" {{
	type secondary;
	primaries {{ {primary} key "{key_name}"; }};
	file "{ZONE}.db";
	masterfile-format text;
}};
zone "." {{ type primary; file "root.zone"; }};
"#,
        key_text = key.bind_key_file(),
        key_name = key.name,
        v4 = list(&v4),
        v6 = list(&v6),
    )
}

impl RpzResolver {
    /// Starts Unbound in `ns` on `listen` port 53 (the first address is where it is asked),
    /// with an `rpz:` clause that transfers [`ZONE`] from `primary` without TSIG (Unbound
    /// 1.17 has none: the primary must allow its address), files under `dir`. Returns once it
    /// answers; the zone comes after: see [`RpzResolver::wait_serial`].
    pub fn unbound(ns: &Netns, dir: &Path, listen: &[IpAddr], primary: IpAddr) -> Result<RpzResolver> {
        let conf = dir.join("unbound.conf");
        crate::write_file(&dir.join("root.zone"), &root_zone())?;
        crate::write_file(&conf, &unbound_conf(dir, listen, primary))?;
        let mut c = ns.command("unbound");
        c.arg("-d").arg("-c").arg(&conf);
        RpzResolver::launch(ResolverKind::Unbound, ns, c, conf, dir.join("resolver.log"), dir, listen)
    }

    /// Starts named in `ns` on `listen` port 53 as a recursive resolver with
    /// `response-policy { zone ZONE; }` over a secondary zone transferred from `primary`
    /// under `key`, files under `dir`.
    pub fn bind(ns: &Netns, dir: &Path, listen: &[IpAddr], primary: IpAddr, key: &TsigKey) -> Result<RpzResolver> {
        let conf = dir.join("named.conf");
        crate::write_file(&dir.join("root.zone"), &root_zone())?;
        write_private(&conf, &bind_conf(dir, listen, primary, key))?;
        let mut c = ns.command("named");
        c.arg("-g").arg("-c").arg(&conf).args(["-n", "1"]);
        RpzResolver::launch(ResolverKind::Bind, ns, c, conf, dir.join("resolver.log"), dir, listen)
    }

    fn launch(
        kind: ResolverKind,
        ns: &Netns,
        mut c: Command,
        conf: PathBuf,
        log: PathBuf,
        dir: &Path,
        listen: &[IpAddr],
    ) -> Result<RpzResolver> {
        let addr = *listen.first().ok_or("the resolver needs an address")?;
        // named -g logs to stderr; Unbound writes its logfile and only early errors there.
        let stderr = if kind == ResolverKind::Bind { log.clone() } else { dir.join("resolver.stderr.log") };
        let child = Netns::spawn(&mut c, &stderr)?;
        let mut r = RpzResolver { kind, child, ns: NsHandle::of(ns)?, conf, log, addr };
        crate::wait_for(Duration::from_secs(10), &format!("{kind} to serve"), || {
            if let Some(status) = r.child.exited() {
                let text = std::fs::read_to_string(&stderr).unwrap_or_default();
                return Err(format!("{kind} exited ({status}): {}", crate::tail(&text, 20).trim()));
            }
            let (_, reply) = dig_with(r.ns.command("dig"), &addr.to_string(), "probe.example", "A", false)?;
            Ok(reply.status.is_some())
        })?;
        Ok(r)
    }

    /// The configuration file and its text.
    pub fn conf(&self) -> (&Path, String) {
        (&self.conf, std::fs::read_to_string(&self.conf).unwrap_or_default())
    }

    /// The log (queries, transfers).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The serial of [`ZONE`] this resolver holds (a SOA query to it); `None` before the first
    /// transfer.
    pub fn serial(&self) -> Result<Option<u32>> {
        query_serial(self.ns.command("kdig"), self.addr, ZONE)
    }

    /// Waits until the resolver holds `serial`; how long it took.
    pub fn wait_serial(&mut self, serial: u32, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let kind = self.kind;
        crate::wait_for(timeout, &format!("{kind} to hold {ZONE} serial {serial}"), || {
            if let Some(status) = self.child.exited() {
                return Err(format!("{kind} exited ({status})"));
            }
            Ok(self.serial()? == Some(serial))
        })
        .map_err(|e| format!("{e}\n{}", crate::tail(&self.log(), 30)))?;
        Ok(start.elapsed())
    }

    /// Every query logged so far.
    pub fn queries(&self) -> Vec<ResolverQuery> {
        let text = self.log();
        match self.kind {
            ResolverKind::Unbound => text
                .lines()
                .filter_map(LoggedQuery::parse)
                .map(|q| ResolverQuery { client: q.client, name: q.name, rtype: q.rtype, tcp: None })
                .collect(),
            ResolverKind::Bind => text.lines().filter_map(ResolverQuery::parse_bind).collect(),
        }
    }

    /// The logged queries for `name`.
    pub fn queries_for(&self, name: &str) -> Vec<ResolverQuery> {
        self.queries().into_iter().filter(|q| q.is(name)).collect()
    }
}

/// One edge node of a [`Fleet`]: the testbed's namespaces, Unbound (which answers every name
/// itself) and the daemon as a secondary. Dropped in field order.
pub struct Node {
    pub name: String,
    pub filter: Secondary,
    pub unbound: Unbound,
    pub net: Testbed,
    pub work: WorkDir,
    /// The node's end of its link to the primary: `10.54.N.1`.
    pub uplink: IpAddr,
    /// The primary's address the node's config names: [`service_addr`].
    pub primary: IpAddr,
}

/// A primary (Knot DNS, in its namespace) and edge nodes that are its secondaries, with the
/// names `BASE-a`, `BASE-b`, ... (nodes) and `BASE-pri1` (the primary). Dropped, it removes
/// everything: the daemons and their pins, the resolvers, knotd, the namespaces, the folders.
pub struct Fleet {
    pub nodes: Vec<Node>,
    pub knot: Knot,
    pub primary: PrimaryNet,
    pub uplinks: Vec<Uplink>,
    pub key: TsigKey,
    /// The primary's folder (knot.conf, the zone file, its log).
    pub work: WorkDir,
}

/// The name of node `i` (0-based) of the fleet `base`: `BASE-a`, `BASE-b`, ...
pub fn node_name(base: &str, i: usize) -> String {
    format!("{base}-{}", char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)))
}

/// The primary's scratch folder.
fn primary_work(base: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{base}-primary"))
}

impl Fleet {
    /// Builds the fleet `base` with `nodes` nodes (replacing leftovers of those names): the
    /// nodes' namespaces and Unbound, the primary's namespace joined to each node's edge
    /// (link N = node N, from 1), Knot DNS serving `zone_text` as [`ZONE`] on
    /// [`service_addr`] with a fresh TSIG key and NOTIFY to every node, then on every node the
    /// daemon as a secondary. Returns once every node enforces the zone's serial.
    pub fn start(base: &str, bin: &Path, nodes: usize, zone_text: &str) -> Result<Fleet> {
        Fleet::remove(base, bin, nodes);
        let work = WorkDir::create(primary_work(base))?;
        let key = TsigKey::generate(KEY_NAME, "hmac-sha256");
        let mut pieces = Vec::new();
        for i in 0..nodes {
            let name = node_name(base, i);
            let paths = Paths::of(&name);
            let node_work = WorkDir::create(&paths.work)?;
            let net = Testbed::create(&name)?;
            let unbound = Unbound::start(&net.edge, node_work.path())?;
            pieces.push((name, node_work, net, unbound));
        }
        let (_, _, first, _) = pieces.first().ok_or("a fleet needs a node")?;
        let primary = PrimaryNet::create(base, &first.edge, 1)?;
        let mut uplinks = Vec::new();
        for (i, (_, _, net, _)) in pieces.iter().enumerate().skip(1) {
            uplinks.push(Uplink::create(&primary.ns, &net.edge, link_number(i)?)?);
        }
        // The service address: on the primary's loopback, the source of what it sends to the
        // nodes, and routed to from every node through its link.
        let service = service_addr().to_string();
        primary.ns.exec(&["ip", "addr", "add", &format!("{service}/32"), "dev", "lo"])?;
        let ifaces = std::iter::once(crate::primary::PRIMARY_IF).chain(uplinks.iter().map(|u| u.primary_if.as_str()));
        for (i, ((_, _, net, _), iface)) in pieces.iter().zip(ifaces).enumerate() {
            let n = link_number(i)?;
            let subnet = format!("10.54.{n}.0/24");
            primary.ns.exec(&["ip", "route", "replace", &subnet, "dev", iface, "src", &service])?;
            net.edge.exec(&["ip", "route", "add", &format!("{service}/32"), "via", &primary_addr(n).to_string()])?;
        }
        let targets: Vec<SocketAddr> = (0..nodes).map(|i| link_number(i).map(notify_addr)).collect::<Result<_>>()?;
        let knot = Knot::start(
            &primary.ns,
            &work.file("knot"),
            service_addr(),
            Some(&key),
            &targets,
            &[KnotZone::new(ZONE, zone_text)],
        )?;
        let serial = knot.serial(ZONE)?;
        let mut built = Vec::new();
        for (i, (name, node_work, net, unbound)) in pieces.into_iter().enumerate() {
            let n = link_number(i)?;
            let conf = NodeConf { primaries: vec![service_addr()], ..NodeConf::on_link(n, Some(&key)) };
            let paths = Paths::of(&name);
            let filter = Secondary::start(bin, &paths.pins, &node_work.file("dnsfilter"), &net.edge, &conf)?;
            built.push(Node {
                name,
                filter,
                unbound,
                net,
                work: node_work,
                uplink: node_addr(n),
                primary: service_addr(),
            });
        }
        for node in &mut built {
            node.filter.wait_serial(ZONE, serial, Duration::from_secs(30))?;
        }
        Ok(Fleet { nodes: built, knot, primary, uplinks, key, work })
    }

    /// The knot.conf of the primary, with the key's secret replaced by `<secret>`.
    pub fn knot_conf(&self) -> String {
        let text = std::fs::read_to_string(self.work.file("knot").join("knot.conf")).unwrap_or_default();
        text.replace(&self.key.secret, "<secret>")
    }

    /// Removes what the fleet `base` of `nodes` nodes left, quietly.
    pub fn remove(base: &str, bin: &Path, nodes: usize) {
        Netns::remove(&PrimaryNet::ns_name(base, 1));
        for i in 0..nodes {
            crate::Lab::remove(&node_name(base, i), bin);
        }
        let _ = std::fs::remove_dir_all(primary_work(base));
    }

    /// What of the fleet `base` still exists.
    pub fn leftovers(base: &str, nodes: usize) -> Vec<String> {
        let mut left: Vec<String> = (0..nodes).flat_map(|i| crate::Lab::leftovers(&node_name(base, i))).collect();
        let ns = PrimaryNet::ns_name(base, 1);
        if Netns::exists(&ns) {
            left.push(ns);
        }
        if primary_work(base).exists() {
            left.push(primary_work(base).display().to_string());
        }
        left
    }
}

/// The link number of node `i` (0-based): `i + 1`.
fn link_number(i: usize) -> Result<u8> {
    u8::try_from(i + 1).ok().filter(|n| *n < 255).ok_or_else(|| format!("too many nodes ({})", i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_config_names_the_key_file_and_the_primary() {
        let key = TsigKey::new("xfr-key", "hmac-sha256", "c2VjcmV0");
        let c = NodeConf::on_link(2, Some(&key)).render(Path::new("/tmp/n/xfr-key.key"));
        for line in [
            "interfaces = [\"veth-edge\"]",
            "resolvers = [\"10.53.0.2\", \"fd53::2\"]",
            "notify_listen = [\"10.54.2.1:5300\"]",
            "file = \"/tmp/n/xfr-key.key\"",
            "name = \"rpz.isp.example\"",
            "primaries = [\"10.54.2.2\"]",
            "key = \"xfr-key\"",
        ] {
            assert!(c.lines().any(|l| l == line), "{line} missing:\n{c}");
        }
        assert!(!c.contains("c2VjcmV0"), "the secret stays in the key file:\n{c}");
        let plain = NodeConf::on_link(1, None).render(Path::new("/x"));
        assert!(!plain.contains("fleet.key") && !plain.contains("key ="), "{plain}");
    }

    #[test]
    fn bind_query_log_lines() {
        let q = ResolverQuery::parse_bind(
            "04-Dec-2026 19:52:03.999 client @0x7fe662b41098 10.53.0.1#34580 (AlloStreaming.com): query: \
             AlloStreaming.com IN A +ET (10.53.0.2)",
        )
        .expect("a query line");
        assert_eq!(q.client, "10.53.0.1");
        assert_eq!((q.name.as_str(), q.rtype.as_str(), q.tcp), ("AlloStreaming.com", "A", Some(true)));
        assert!(q.is("allostreaming.com.") && !q.is("www.allostreaming.com"));
        let udp = ResolverQuery::parse_bind("client @0x1 fd53::1#53000 (x.com): query: x.com IN AAAA +E(0)K (fd53::2)")
            .expect("a query line");
        assert_eq!((udp.client.as_str(), udp.tcp), ("fd53::1", Some(false)));
        assert_eq!(ResolverQuery::parse_bind("zone rpz.isp.example/IN: transferred serial 2"), None);
    }

    #[test]
    fn resolver_configs() {
        let key = TsigKey::new("xfr-key", "hmac-sha256", "c2VjcmV0");
        let listen: [IpAddr; 3] = ["10.53.0.2".parse().unwrap(), "fd53::2".parse().unwrap(), node_addr(1)];
        let b = bind_conf(Path::new("/tmp/r"), &listen, primary_addr(1), &key);
        for line in [
            "listen-on port 53 { 10.53.0.2; 10.54.1.1; };",
            "listen-on-v6 port 53 { fd53::2; };",
            "response-policy { zone \"rpz.isp.example\" min-update-interval 0; };",
            "primaries { 10.54.1.2 key \"xfr-key\"; };",
        ] {
            assert!(b.lines().any(|l| l.trim() == line), "{line} missing:\n{b}");
        }
        let u = unbound_conf(Path::new("/tmp/r"), &listen, primary_addr(1));
        for line in ["interface: 10.54.1.1", "name: rpz.isp.example", "primary: 10.54.1.2", "for-upstream: yes"] {
            assert!(u.lines().any(|l| l.trim() == line), "{line} missing:\n{u}");
        }
        assert!(!u.contains("local-zone"), "a local-zone would come before the policy:\n{u}");
    }
}
