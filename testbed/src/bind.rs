//! BIND 9 (named 9.18) as a primary: `ixfr-from-differences yes` turns each zone file
//! rewrite into an IXFR, `allow-transfer { key K; }` requires the TSIG key, and
//! `notify explicit` with `also-notify { ADDR port P key K; }` sends a signed NOTIFY (over UDP,
//! BIND's way; TCP only when UDP fails) to the given targets only, at once (`notify-delay 0`:
//! named otherwise waits 5 s between two NOTIFY of a zone). `max-ixfr-ratio unlimited`:
//! named would otherwise answer an IXFR whose changes outweigh the (small) zone with a full
//! transfer.
//!
//! Files under `dir`: `named.log` (named's stderr: `-g` logs there) and `bind/` with
//! `named.conf`, `rndc.conf`, the zone files (`NAME.zone`), their journals, the pid file.
//! rndc reaches named on ADDR port 953 inside the namespace, with a key of its own.
//!
//! On a host where AppArmor enforces Debian's profile for /usr/sbin/named, named may read
//! only /etc/bind and /var/cache/bind: [`Bind::start`] says so instead of failing obscurely.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    Child, Netns, Result, cmd,
    primary::{NsHandle, TsigKey, log_tail, query_serial, zone_text_serial},
};

/// The port of named's control channel (rndc), on the listening address.
const RNDC_PORT: u16 = 953;

/// named.conf.
fn config(
    state: &Path,
    addr: IpAddr,
    key: Option<&TsigKey>,
    rndc: &TsigKey,
    notify: &[SocketAddr],
    zones: &[String],
) -> String {
    let state = state.display();
    let (v4, v6) = match addr {
        IpAddr::V4(_) => (format!("{addr};"), "none;".to_string()),
        IpAddr::V6(_) => ("none;".to_string(), format!("{addr};")),
    };
    let mut c = rndc.bind_key_file();
    if let Some(key) = key {
        c.push_str(&key.bind_key_file());
    }
    c.push_str(&format!(
        "controls {{ inet {addr} port {RNDC_PORT} allow {{ any; }} keys {{ \"{rndc}\"; }}; }};
options {{
\tdirectory \"{state}\";
\tpid-file \"{state}/named.pid\";
\tsession-keyfile \"{state}/session.key\";
\tmanaged-keys-directory \"{state}\";
\tlisten-on port 53 {{ {v4} }};
\tlisten-on-v6 port 53 {{ {v6} }};
\trecursion no;
\tdnssec-validation no;
\tnotify explicit;
\tnotify-delay 0;
\tixfr-from-differences yes;
\tmax-ixfr-ratio unlimited;
\tallow-transfer {{ {allow} }};
",
        rndc = rndc.name,
        allow = key.map_or("any;".to_string(), |k| format!("key \"{}\";", k.name)),
    ));
    if !notify.is_empty() {
        let targets: Vec<String> = notify
            .iter()
            .map(|t| {
                let key = key.map(|k| format!(" key \"{}\"", k.name)).unwrap_or_default();
                format!("{} port {}{key};", t.ip(), t.port())
            })
            .collect();
        c.push_str(&format!("\talso-notify {{ {} }};\n", targets.join(" ")));
    }
    c.push_str("};\n");
    for z in zones {
        c.push_str(&format!("zone \"{z}\" {{ type primary; file \"{z}.zone\"; }};\n"));
    }
    c
}

/// rndc.conf for the key `rndc`.
fn rndc_config(addr: IpAddr, rndc: &TsigKey) -> String {
    format!(
        "{}options {{ default-key \"{}\"; default-server {addr}; default-port {RNDC_PORT}; }};\n",
        rndc.bind_key_file(),
        rndc.name
    )
}

/// Whether AppArmor enforces a profile for named (Debian's confines it to /etc/bind,
/// /var/cache/bind and the like).
fn apparmor_confines_named() -> bool {
    std::fs::read_to_string("/sys/kernel/security/apparmor/profiles")
        .is_ok_and(|p| p.lines().any(|l| l.starts_with("named ") && l.contains("(enforce)")))
}

/// A running named, killed when dropped; the files stay (the caller's folder owns them).
pub struct Bind {
    ns: NsHandle,
    addr: IpAddr,
    state: PathBuf,
    log: PathBuf,
    zones: Vec<String>,
    child: Option<Child>,
}

impl Bind {
    /// Starts named in `ns` as primary of `zones` (name, zone file text), listening on `addr`
    /// port 53, with its files under `dir`. With `key`, transfers need that TSIG key and
    /// NOTIFY is signed with it; `notify`: the targets of NOTIFY (and the only ones). Returns
    /// once every zone answers SOA queries on `addr`.
    pub fn start(
        ns: &Netns,
        dir: &Path,
        addr: IpAddr,
        key: Option<&TsigKey>,
        notify: &[SocketAddr],
        zones: &[(String, String)],
    ) -> Result<Bind> {
        if apparmor_confines_named() {
            return Err("AppArmor enforces its profile for /usr/sbin/named, which keeps it out of the test folders: \
                        run `aa-complain /usr/sbin/named` (apparmor-utils) on this test host"
                .into());
        }
        let state = dir.join("bind");
        std::fs::create_dir_all(&state).map_err(|e| format!("create {}: {e}", state.display()))?;
        let names: Vec<String> = zones.iter().map(|(n, _)| n.trim_end_matches('.').to_string()).collect();
        for (name, (_, text)) in names.iter().zip(zones) {
            crate::write_file(&state.join(format!("{name}.zone")), text)?;
        }
        let rndc = TsigKey::generate("rndc-key", "hmac-sha256");
        let conf = state.join("named.conf");
        crate::write_file(&conf, &config(&state, addr, key, &rndc, notify, &names))?;
        crate::write_file(&state.join("rndc.conf"), &rndc_config(addr, &rndc))?;
        let log = dir.join("named.log");
        let mut command = ns.command("named");
        command.arg("-g").arg("-c").arg(&conf).args(["-n", "1"]);
        let child = Netns::spawn(&mut command, &log)?;
        let mut bind = Bind { ns: NsHandle::of(ns)?, addr, state, log, zones: names, child: Some(child) };
        crate::wait_for(Duration::from_secs(10), "named to serve its zones", || {
            if let Some(status) = bind.child.as_mut().and_then(Child::exited) {
                return Err(format!("named exited ({status})"));
            }
            for zone in &bind.zones {
                if query_serial(bind.ns.command("kdig"), addr, zone)?.is_none() {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .map_err(|e| format!("{e}\n{}", bind.log_tail()))?;
        Ok(bind)
    }

    fn log_tail(&self) -> String {
        format!("----- {} -----\n{}", self.log.display(), log_tail(&self.log, 30))
    }

    /// Everything named logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The address named listens on (port 53).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The zone file of `zone`.
    pub fn zone_file(&self, zone: &str) -> PathBuf {
        self.state.join(format!("{}.zone", zone.trim_end_matches('.')))
    }

    /// `rndc -c RNDC.CONF ARGS...` inside the namespace.
    fn rndc(&self, args: &[&str]) -> Result<String> {
        let mut c = self.ns.command("rndc");
        c.arg("-c").arg(self.state.join("rndc.conf")).args(args);
        cmd::run(&mut c).map_err(|e| format!("{e}\n{}", self.log_tail()))
    }

    /// The serial of `zone` that named answers (a SOA query inside the namespace).
    pub fn serial(&self, zone: &str) -> Result<u32> {
        let zone = zone.trim_end_matches('.');
        query_serial(self.ns.command("kdig"), self.addr, zone)?.ok_or_else(|| format!("named gives no SOA for {zone}"))
    }

    /// Replaces the zone file of `zone` with `text` and reloads it (`rndc reload ZONE`);
    /// with `ixfr-from-differences`, named journals the difference, served as an IXFR. The
    /// serial of `text` must be above the one served. Returns it, once named serves it.
    pub fn rewrite_zone(&self, zone: &str, text: &str) -> Result<u32> {
        let zone = zone.trim_end_matches('.');
        let serial = zone_text_serial(text).ok_or_else(|| format!("{zone}: no SOA serial in the new zone text"))?;
        let before = self.serial(zone)?;
        if serial <= before {
            return Err(format!("{zone}: the new serial {serial} is not above {before}: named would not reload"));
        }
        crate::write_file(&self.zone_file(zone), text)?;
        self.rndc(&["reload", zone])?;
        crate::wait_for(Duration::from_secs(10), &format!("named to serve {zone} serial {serial}"), || {
            Ok(self.serial(zone)? == serial)
        })
        .map_err(|e| format!("{e}\n{}", self.log_tail()))?;
        Ok(serial)
    }

    /// Stops named (`rndc stop`, then SIGKILL after 10 s); nothing when it is stopped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if child.exited().is_none() {
            let _ = self.rndc(&["stop"]);
            let _ = crate::wait_for(Duration::from_secs(10), "named to stop", || Ok(child.exited().is_some()));
        }
        child.kill();
    }

    /// The process id of named.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.child.as_ref().map(Child::pid)
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_conf() {
        let key = TsigKey::new("xfr", "hmac-sha256", "c2VjcmV0");
        let rndc = TsigKey::new("rndc-key", "hmac-sha256", "cm5kYw==");
        let c = config(
            Path::new("/tmp/b/bind"),
            "10.54.2.2".parse().unwrap(),
            Some(&key),
            &rndc,
            &["10.54.2.1:5300".parse().unwrap()],
            &["x.rpz".into()],
        );
        for line in [
            "key \"xfr\" {",
            "controls { inet 10.54.2.2 port 953 allow { any; } keys { \"rndc-key\"; }; };",
            "directory \"/tmp/b/bind\";",
            "listen-on port 53 { 10.54.2.2; };",
            "listen-on-v6 port 53 { none; };",
            "notify explicit;",
            "notify-delay 0;",
            "ixfr-from-differences yes;",
            "allow-transfer { key \"xfr\"; };",
            "also-notify { 10.54.2.1 port 5300 key \"xfr\"; };",
            "zone \"x.rpz\" { type primary; file \"x.rpz.zone\"; };",
        ] {
            assert!(c.lines().any(|l| l.trim() == line), "{line} missing:\n{c}");
        }
        let open = config(Path::new("/b"), "fd54:2::2".parse().unwrap(), None, &rndc, &[], &[]);
        assert!(open.contains("allow-transfer { any; };") && open.contains("listen-on-v6 port 53 { fd54:2::2; };"));
        assert!(!open.contains("also-notify"), "{open}");
    }
}
