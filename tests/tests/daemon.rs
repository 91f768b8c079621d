//! The daemon tier: the real object loaded and pinned by `Daemon`, list files on disk, and
//! every query run through the PINNED program (the one attached interfaces run) with
//! BPF_PROG_TEST_RUN. Then the `dnsfilter` binary end to end on a veth: run, the reporting
//! verbs, reload on SIGHUP, crash and restart with adoption, stop, detach.

use std::{path::Path, time::Duration};

use filter_common::counters::Counter;
use filter_tests::{
    daemon::{DaemonProcess, Sandbox, cli, dnsfilter_binary, free_port, http_get},
    netns::Veth,
    privileged,
};
use filter_user::{
    canary::{Canary, Expect},
    conf::Conf,
    config::SettingsFile,
    daemon::{Daemon, DaemonError, Reason, state::State},
    metrics, sys, time,
};

/// A decision date before every time the tests use.
const DECIDED: &str = "2024-01-15";

/// An `[[order]]` table of `action` on `names` (one per line), with `extra` TOML lines.
fn order(id: &str, action: &str, extra: &str, names: &[&str]) -> String {
    let names: String = names.iter().map(|n| format!("    \"{n}\",\n")).collect();
    format!(
        "[[order]]\nid = \"{id}\"\nauthority = \"Tribunal judiciaire de Paris\"\nreference = \"RG {id}\"\n\
         decided = {DECIDED}\naction = \"{action}\"\n{extra}names = [\n{names}]\n\n"
    )
}

/// An `[[order.mirror]]` table, approved after [`DECIDED`]; goes right after its order.
fn mirror(name: &str) -> String {
    format!(
        "[[order.mirror]]\nname = \"{name}\"\napproved_by = \"ARCOM\"\napproved = 2024-03-01\n\
         reference = \"ARCOM-2024-017\"\n\n"
    )
}

/// 1-based number of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    1 + text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle:?} not in {text}"))
}

fn start(conf: Conf, now: i64) -> Daemon {
    Daemon::start(conf, SettingsFile::default(), false, now).unwrap_or_else(|e| panic!("Daemon::start: {e}"))
}

/// The generation the kernel has in force, read from the pinned table.
fn kernel_generation(sb: &Sandbox) -> u64 {
    let view = sb.maps().generation().expect("read the table").expect("a generation is installed");
    view.header().expect("a valid header").generation
}

/// Hits of the counter group of (order, action), read from the pinned GROUP_HITS.
fn order_hits(sb: &Sandbox, d: &Daemon, order: &str, action: &str) -> u64 {
    let wanted = Some((order.to_string(), action.to_string()));
    let g = d.state().groups.slots.iter().position(|s| *s == wanted).unwrap_or_else(|| panic!("no group {wanted:?}"));
    sb.maps().group_hits().expect("group hits")[g]
}

fn counter(sb: &Sandbox, c: Counter) -> u64 {
    sb.maps().counters().expect("counters").into_iter().find(|(k, _)| *k == c).expect("counter").1
}

fn render_metrics(sb: &Sandbox, d: &Daemon) -> String {
    let health = d.health.lock().expect("health").clone();
    metrics::render(&health, &sb.pins).expect("render the metrics")
}

/// Asserts that the metrics text has a sample line `series value`.
#[track_caller]
fn assert_sample(text: &str, series: &str, value: &str) {
    let want = format!("{series} {value}");
    assert!(text.lines().any(|l| l == want), "no `{want}` in the metrics:\n{text}");
}

#[test]
fn an_orders_file_blocks_its_names_and_nothing_else() {
    if !privileged("an_orders_file_blocks_its_names_and_nothing_else") {
        return;
    }
    let sb = Sandbox::new();
    sb.write_list("orders.toml", &order("tj-paris-2024-streamco", "nxdomain", "", &["streamco.example"]));
    let d = start(sb.conf(), time::now());

    let said = sb.expect_nxdomain("www.streamco.example");
    assert_eq!(said.ede, Some(16), "EDE 16 Censored by default: {said:?}");
    sb.expect_nxdomain("streamco.example");
    sb.expect_pass("notstreamco.example");
    sb.expect_pass("example.org");
    assert_eq!(kernel_generation(&sb), 1);
    assert_eq!(d.state().generation, 1);
    assert_eq!(d.health.lock().unwrap().entries, 1);
}

#[test]
fn a_reload_applies_a_new_mirror_and_lifts_a_removed_name() {
    if !privileged("a_reload_applies_a_new_mirror_and_lifts_a_removed_name") {
        return;
    }
    let sb = Sandbox::new();
    let id = "tj-paris-2024-streamco";
    sb.write_list("orders.toml", &order(id, "nxdomain", "", &["streamco.example", "streamco-tv.example"]));
    let mut d = start(sb.conf(), time::now());
    sb.expect_nxdomain("www.streamco-tv.example");
    sb.expect_pass("streamco-mirror.example");
    let before = kernel_generation(&sb);

    let edited = order(id, "nxdomain", "", &["streamco.example"]) + &mirror("streamco-mirror.example");
    let path = sb.write_list("orders.toml", &edited);
    let r = d.apply(Reason::Signal, false, time::now()).expect("apply the edited list");

    assert!(r.swapped);
    assert_eq!((r.generation, r.added, r.removed, r.entries), (before + 1, 1, 1, 2));
    assert_eq!(kernel_generation(&sb), before + 1);
    sb.expect_nxdomain("streamco-mirror.example");
    sb.expect_nxdomain("cdn.streamco-mirror.example");
    sb.expect_nxdomain("www.streamco.example");
    sb.expect_pass("www.streamco-tv.example");

    let applied = sb.audit_events("applied");
    let last = applied.last().expect("an applied record");
    assert_eq!((&last["reason"], &last["generation"]), (&"signal".into(), &(before + 1).into()), "{last}");
    let added = last["added"].as_array().expect("added");
    assert_eq!(added.len(), 1, "{last}");
    assert_eq!(added[0]["name"], "streamco-mirror.example");
    assert_eq!(added[0]["order"], id);
    assert_eq!(added[0]["mirror"]["approved_by"], "ARCOM");
    let source = format!("{}:{}", path.display(), line_of(&edited, "name = \"streamco-mirror.example\""));
    assert_eq!(added[0]["source"], source.as_str());
    let removed = last["removed"].as_array().expect("removed");
    assert_eq!(removed.len(), 1, "{last}");
    assert_eq!(removed[0]["name"], "streamco-tv.example");
}

#[test]
fn a_broken_list_is_refused_and_the_generation_in_force_stays() {
    if !privileged("a_broken_list_is_refused_and_the_generation_in_force_stays") {
        return;
    }
    let sb = Sandbox::new();
    let id = "tj-paris-2024-streamco";
    let good = order(id, "nxdomain", "", &["streamco.example"]);
    let path = sb.write_list("orders.toml", &good);
    let mut d = start(sb.conf(), time::now());
    let generation = kernel_generation(&sb);

    // Each broken file also lists a new name, which must not be loaded either.
    let broken = [
        (order(id, "nxdomain", "ede = censored\n", &["streamco.example", "added.example"]), "ede = censored"),
        (order(id, "nxdomain", "", &["streamco.example", "added.example", "com"]), "\"com\""),
        (order(id, "nxdomain", "", &["streamco.example", "added.example", "google.fr"]), "\"google.fr\""),
    ];
    for (i, (text, bad_line)) in broken.iter().enumerate() {
        let failures = i as u64 + 1;
        sb.write_list("orders.toml", text);
        let e = d.apply(Reason::Signal, false, time::now()).expect_err("a broken list must be refused");
        let at = format!("{}:{}:", path.display(), line_of(text, bad_line));
        assert!(matches!(e, DaemonError::Lists(_)), "{e:?}");
        assert!(e.to_string().contains(&at), "the error names {at}: {e}");

        sb.expect_nxdomain("www.streamco.example");
        sb.expect_pass("added.example");
        assert_eq!(kernel_generation(&sb), generation, "{bad_line}: generation unchanged");
        assert_eq!(d.state().generation, generation);
        let h = d.health.lock().unwrap().clone();
        assert_eq!((h.reload_failures, h.last_reload_ok, h.generation), (failures, false, generation));

        let rejected = sb.audit_events("rejected");
        assert_eq!(rejected.len() as u64, failures);
        let errors = rejected.last().unwrap()["errors"].to_string();
        assert!(errors.contains(&at), "the audit record names {at}: {errors}");

        let text = render_metrics(&sb, &d);
        assert_sample(&text, "dnsfilter_reload_success", "0");
        assert_sample(&text, "dnsfilter_reload_failures_total", &failures.to_string());
        assert_sample(&text, "dnsfilter_list_generation", &generation.to_string());
    }

    // Fixed: applied, and reported as such.
    sb.write_list("orders.toml", &order(id, "nxdomain", "", &["streamco.example", "added.example"]));
    let r = d.apply(Reason::Signal, false, time::now()).expect("the fixed list applies");
    assert_eq!(r.generation, generation + 1);
    sb.expect_nxdomain("added.example");
    assert_sample(&render_metrics(&sb, &d), "dnsfilter_reload_success", "1");
}

#[test]
fn the_change_share_guard_refuses_a_mass_change_unless_forced() {
    if !privileged("the_change_share_guard_refuses_a_mass_change_unless_forced") {
        return;
    }
    let sb = Sandbox::new();
    let list = |names: &[&str]| names.iter().map(|n| format!("{n}\n")).collect::<String>();
    let old = [
        "n0.example",
        "n1.example",
        "n2.example",
        "n3.example",
        "n4.example",
        "n5.example",
        "n6.example",
        "n7.example",
    ];
    sb.write_list("guarded.txt", &list(&old));
    let mut conf = sb.conf();
    conf.guards.change_guard_min = 2;
    conf.guards.max_change_share = 0.25;
    let mut d = start(conf, time::now());
    let generation = kernel_generation(&sb);

    // One entry more: under change_guard_min, applied without force.
    let small = [&old[..], &["n8.example"]].concat();
    sb.write_list("guarded.txt", &list(&small));
    let r = d.apply(Reason::Signal, false, time::now()).expect("a small change passes the guard");
    assert_eq!((r.generation, r.added), (generation + 1, 1));

    // Six of nine replaced: 12 changes, far above 25%.
    let new = [
        "n0.example",
        "n1.example",
        "n8.example",
        "m3.example",
        "m4.example",
        "m5.example",
        "m6.example",
        "m7.example",
        "m2.example",
    ];
    sb.write_list("guarded.txt", &list(&new));
    let e = d.apply(Reason::Signal, false, time::now()).expect_err("a mass change must be refused");
    assert!(matches!(e, DaemonError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains("max_change_share"), "{e}");
    assert_eq!(kernel_generation(&sb), generation + 1);
    sb.expect_nxdomain("n7.example");
    sb.expect_pass("m7.example");
    assert_eq!(sb.audit_events("rejected").len(), 1);

    let r = d.apply(Reason::Signal, true, time::now()).expect("a forced change applies");
    assert_eq!((r.generation, r.added, r.removed), (generation + 2, 6, 6));
    sb.expect_pass("n7.example");
    sb.expect_nxdomain("m7.example");
    sb.expect_nxdomain("n0.example");
    let last = sb.audit_events("applied").pop().expect("an applied record");
    assert_eq!(last["forced"], true, "{last}");
}

#[test]
fn orders_lift_and_take_effect_on_their_dates_without_a_restart() {
    if !privileged("orders_lift_and_take_effect_on_their_dates_without_a_restart") {
        return;
    }
    let sb = Sandbox::new();
    let now = time::now();
    let (lifts, starts) = (now + 5, now + 10);
    let text = order("expiring", "nxdomain", &format!("expires = {}\n", time::rfc3339(lifts)), &["expiring.example"])
        + &order("scheduled", "nxdomain", &format!("effective = {}\n", time::rfc3339(starts)), &["scheduled.example"]);
    sb.write_list("orders.toml", &text);
    let mut d = start(sb.conf(), now);
    sb.expect_nxdomain("www.expiring.example");
    sb.expect_pass("www.scheduled.example");
    assert_eq!(d.next_change(), Some(lifts));
    let generation = kernel_generation(&sb);

    let r = d.apply(Reason::Schedule, false, lifts).expect("the expiry applies");
    assert_eq!((r.generation, r.removed, r.added), (generation + 1, 1, 0));
    sb.expect_pass("www.expiring.example");
    sb.expect_pass("www.scheduled.example");
    assert_eq!(d.next_change(), Some(starts));

    let r = d.apply(Reason::Schedule, false, starts).expect("the start applies");
    assert_eq!((r.generation, r.added, r.removed), (generation + 2, 1, 0));
    sb.expect_nxdomain("www.scheduled.example");
    sb.expect_pass("www.expiring.example");
    assert_eq!(d.next_change(), None);
    let in_force: Vec<(&str, bool)> = d.state().orders.iter().map(|o| (o.id.as_str(), o.in_force)).collect();
    assert_eq!(in_force, [("expiring", false), ("scheduled", true)]);
}

#[test]
fn a_monitor_order_counts_its_names_but_passes_them() {
    if !privileged("a_monitor_order_counts_its_names_but_passes_them") {
        return;
    }
    let sb = Sandbox::new();
    let text = order("enforced", "nxdomain", "", &["enforced.example"])
        + &order("watched", "nxdomain", "mode = \"monitor\"\n", &["watched.example"]);
    sb.write_list("orders.toml", &text);
    let d = start(sb.conf(), time::now());

    let monitor_before = counter(&sb, Counter::HitMonitor);
    sb.expect_pass("www.watched.example");
    sb.expect_pass("watched.example");
    assert_eq!(counter(&sb, Counter::HitMonitor), monitor_before + 2);
    assert_eq!(order_hits(&sb, &d, "watched", "monitor"), 2);
    assert_eq!(order_hits(&sb, &d, "enforced", "nxdomain"), 0);

    sb.expect_nxdomain("enforced.example");
    assert_eq!(order_hits(&sb, &d, "enforced", "nxdomain"), 1);
    let text = render_metrics(&sb, &d);
    assert_sample(&text, r#"dnsfilter_order_hits_total{order="watched",action="monitor"}"#, "2");
    assert_sample(&text, r#"dnsfilter_order_hits_total{order="enforced",action="nxdomain"}"#, "1");
}

#[test]
fn changing_only_the_ede_of_an_order_takes_effect() {
    if !privileged("changing_only_the_ede_of_an_order_takes_effect") {
        return;
    }
    let sb = Sandbox::new();
    sb.write_list("orders.toml", &order("court", "nxdomain", "ede = \"censored\"\n", &["streamco.example"]));
    let mut d = start(sb.conf(), time::now());
    assert_eq!(sb.expect_nxdomain("streamco.example").ede, Some(16));

    sb.write_list("orders.toml", &order("court", "nxdomain", "ede = \"blocked\"\n", &["streamco.example"]));
    let r = d.apply(Reason::Signal, false, time::now()).expect("apply");
    assert!(r.swapped, "a new generation is built: {r:?}");
    assert_eq!(sb.expect_nxdomain("streamco.example").ede, Some(15), "the answer carries the new EDE");
}

#[test]
fn a_restart_adopts_the_attached_link_and_the_generation_in_force() {
    if !privileged("a_restart_adopts_the_attached_link_and_the_generation_in_force") {
        return;
    }
    let sb = Sandbox::new();
    let veth = Veth::new();
    sb.write_list("blocked.txt", "streamco.example\n");
    let mut conf = sb.conf();
    conf.interfaces = vec![veth.name.clone()];
    let ifindex = sys::if_index(&veth.name).expect("the veth's index");

    let d = start(conf.clone(), time::now());
    assert_eq!(sb.pins.linked(), std::slice::from_ref(&veth.name));
    let first = sb.pins.link_info(&veth.name).expect("the pinned link");
    assert_eq!(first.ifindex, ifindex);
    assert!(veth.has_xdp());
    assert_eq!(sb.audit_events("attached").len(), 1);
    let generation = kernel_generation(&sb);

    // The daemon goes away without detaching, as after SIGKILL: the interface stays filtered.
    d.stop(false).expect("stop without detaching");
    assert_eq!(sb.pins.link_info(&veth.name).expect("the link outlives the daemon"), first);
    assert!(veth.has_xdp());
    sb.expect_nxdomain("www.streamco.example");

    // A new daemon adopts the link (same link, now running its program) and the generation.
    let mut d = start(conf, time::now());
    let adopted = sb.pins.link_info(&veth.name).expect("the adopted link");
    assert_eq!((adopted.link_id, adopted.ifindex), (first.link_id, ifindex), "the same link");
    assert_ne!(adopted.prog_id, first.prog_id, "the link now runs the new daemon's program");
    assert_eq!(kernel_generation(&sb), generation, "unchanged lists: the same generation");
    assert_eq!(d.health.lock().unwrap().generation, generation);
    assert_eq!(sb.audit_events("attached").len(), 1, "adopted, not attached again");
    sb.expect_nxdomain("www.streamco.example");

    sb.write_list("blocked.txt", "streamco.example\nstreamco-mirror.example\n");
    let r = d.apply(Reason::Signal, false, time::now()).expect("apply");
    assert_eq!(r.generation, generation + 1);
    sb.expect_nxdomain("streamco-mirror.example");

    d.stop(true).expect("stop and detach");
    assert!(!sb.pins.root.exists(), "{} removed", sb.pins.root.display());
    assert!(!veth.has_xdp(), "no XDP program left on {}", veth.name);
}

#[test]
fn a_restart_with_a_refused_list_keeps_and_reports_the_pinned_generation() {
    if !privileged("a_restart_with_a_refused_list_keeps_and_reports_the_pinned_generation") {
        return;
    }
    let sb = Sandbox::new();
    sb.write_list("blocked.txt", "streamco.example\n");
    let d = start(sb.conf(), time::now());
    let generation = kernel_generation(&sb);
    d.stop(false).expect("stop without detaching");

    let path = sb.write_list("blocked.txt", "streamco.example\nbad..example\n");
    let d = start(sb.conf(), time::now());
    sb.expect_nxdomain("www.streamco.example");
    assert_eq!(kernel_generation(&sb), generation);
    let rejected = sb.audit_events("rejected");
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0]["errors"].to_string().contains(&format!("{}:2:", path.display())), "{}", rejected[0]);

    // What is in force is still described: the saved state keeps its sources and their copies
    // (explain and the next restart read them), and the metrics report the pinned generation.
    let saved = State::load(&sb.path("state")).expect("read the state").expect("a saved state");
    assert_eq!((saved.generation, saved.sources.len(), saved.orders.len()), (generation, 1, 1), "{saved:?}");
    assert!(saved.sources(&sb.path("state")).is_ok(), "the source copies are kept");
    let text = render_metrics(&sb, &d);
    assert_sample(&text, "dnsfilter_reload_success", "0");
    assert_sample(&text, "dnsfilter_list_generation", &generation.to_string());
    assert_sample(&text, "dnsfilter_entries", "1");
    assert_sample(&text, r#"dnsfilter_order_hits_total{order="plain:blocked.txt",action="nxdomain"}"#, "1");
}

/// The key series of `/metrics`, with a value.
const METRIC_SERIES: &[&str] = &[
    "dnsfilter_packets_total{outcome=\"answer_nxdomain\"}",
    "dnsfilter_order_hits_total{order=\"plain:blocked.txt\",action=\"nxdomain\"}",
    "dnsfilter_entries",
    "dnsfilter_list_generation",
    "dnsfilter_reload_success",
    "dnsfilter_xdp_attached{interface=",
];

/// The value of the series of `/metrics` that starts with `series`.
fn metric<'a>(text: &'a str, series: &str) -> &'a str {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no {series} in the metrics:\n{text}"))
}

fn status(config: &Path) -> serde_json::Value {
    let v = cli(config, &["status", "--json"]).json();
    assert_eq!(v["schema"], 1, "{v}");
    v
}

#[test]
fn the_binary_runs_reports_reloads_survives_a_crash_and_detaches() {
    if !privileged("the_binary_runs_reports_reloads_survives_a_crash_and_detaches") {
        return;
    }
    const READY: Duration = Duration::from_secs(30);
    let sb = Sandbox::new();
    let veth = Veth::new();
    let list = sb.write_list("blocked.txt", "# court order RG 24/00001\nstreamco.example\n");
    let addr = free_port();
    let config = sb.write_config(&format!(
        "interfaces = [{:?}]\nlists = [{list:?}]\nwatch = false\nmetrics = \"{addr}\"\n",
        veth.name
    ));

    let mut daemon = DaemonProcess::spawn(&config, &[], sb.path("daemon.log"));
    daemon.wait_notify("READY=1", READY);
    assert!(veth.has_xdp(), "attached to {}", veth.name);
    sb.expect_nxdomain("www.streamco.example");
    sb.expect_pass("other.example");

    let s = status(&config);
    assert_eq!(s["interfaces"][0]["name"], veth.name.as_str(), "{s}");
    assert_eq!(s["interfaces"][0]["attached"], true, "{s}");
    assert_eq!((&s["generation"], &s["daemon_pid"]), (&1.into(), &daemon.pid().into()), "{s}");
    assert_eq!(s["state_matches_kernel"], true, "{s}");
    let link_id = s["interfaces"][0]["link_id"].clone();

    let stats = cli(&config, &["stats", "--json"]).json();
    assert_eq!((&stats["schema"], &stats["generation"]), (&1.into(), &1.into()), "{stats}");
    assert_eq!(stats["outcomes"]["answer_nxdomain"], 1, "{stats}");
    let hits = serde_json::json!({"order": "plain:blocked.txt", "action": "nxdomain", "hits": 1});
    assert_eq!(stats["orders"], serde_json::json!([hits]), "{stats}");

    let explained = cli(&config, &["explain", "www.streamco.example"]);
    let text = explained.ok();
    assert!(text.contains("plain:blocked.txt"), "{text}");
    assert!(text.contains(&format!("{}:2", list.display())), "{text}");
    let text = cli(&config, &["explain", "other.example"]).ok().to_string();
    assert!(text.contains("no entry applies"), "{text}");

    let good = cli(&config, &["check", list.to_str().unwrap()]);
    assert!(good.ok().contains("ok: 1 entries"), "{good:?}");
    let bad = sb.path("bad.txt");
    std::fs::write(&bad, "ok.example\nbad..example\n").unwrap();
    let refused = cli(&config, &["check", bad.to_str().unwrap()]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(refused.stderr.contains(&format!("{}:2:", bad.display())), "{refused:?}");

    let (head, body) = http_get(addr, "/metrics");
    assert!(head.contains("200"), "{head}");
    for series in METRIC_SERIES {
        metric(&body, series);
    }
    assert_eq!(metric(&body, METRIC_SERIES[1]), "1");
    assert_eq!(metric(&body, "dnsfilter_list_generation"), "1");
    assert_eq!(metric(&body, "dnsfilter_reload_success"), "1");
    assert!(http_get(addr, "/readyz").0.contains("200"));

    // SIGHUP re-reads the edited list.
    std::fs::write(&list, "# court order RG 24/00001\nstreamco.example\nstreamco-mirror.example\n").unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_notify("RELOADING=1", READY);
    daemon.wait_notify("READY=1", READY);
    assert_eq!(status(&config)["generation"], 2);
    sb.expect_nxdomain("streamco-mirror.example");
    assert_eq!(metric(&http_get(addr, "/metrics").1, "dnsfilter_list_generation"), "2");

    // SIGKILL: the interface stays filtered, and the verbs still work from the pins.
    daemon.signal(libc::SIGKILL);
    daemon.wait_exit(READY);
    assert!(veth.has_xdp());
    assert_eq!(sb.pins.link_info(&veth.name).expect("the pinned link").ifindex, sys::if_index(&veth.name).unwrap());
    sb.expect_nxdomain("streamco-mirror.example");
    let s = status(&config);
    assert_eq!((&s["generation"], &s["daemon_pid"]), (&2.into(), &serde_json::Value::Null), "{s}");
    assert!(cli(&config, &["status"]).ok().contains("not running"));

    // A restart adopts the link and the generation.
    let mut daemon = DaemonProcess::spawn(&config, &[], sb.path("daemon-restarted.log"));
    daemon.wait_notify("READY=1", READY);
    let log = daemon.log();
    assert!(log.contains("adopted pinned link") && log.contains("adopted the pinned generation"), "{log}");
    let s = status(&config);
    assert_eq!((&s["generation"], &s["interfaces"][0]["link_id"]), (&2.into(), &link_id), "{s}");

    // SIGTERM without --detach-on-exit: a clean exit, still filtering.
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(READY).success(), "{}", daemon.log());
    assert!(veth.has_xdp());
    sb.expect_nxdomain("www.streamco.example");

    let out = cli(&config, &["detach", "--iface", &veth.name]);
    assert!(out.ok().contains(&format!("detached from {}", veth.name)), "{out:?}");
    assert!(!sb.pins.root.exists(), "pins removed: {out:?}");
    assert!(!veth.has_xdp());
    assert_eq!(cli(&config, &["status"]).code, Some(1), "nothing loaded any more");
}

#[test]
fn the_binary_with_detach_on_exit_removes_the_filter_on_sigterm() {
    if !privileged("the_binary_with_detach_on_exit_removes_the_filter_on_sigterm") {
        return;
    }
    let sb = Sandbox::new();
    let veth = Veth::new();
    let list = sb.write_list("blocked.txt", "streamco.example\n");
    // Paths from the global flags this time, with an empty config file.
    let config = sb.path("empty.toml");
    std::fs::write(&config, "").unwrap();
    let (pins, state, run, audit) = (sb.pins.root.clone(), sb.path("state"), sb.path("run"), sb.audit_log());
    let s = |p: &Path| p.to_str().expect("a UTF-8 path").to_string();
    let args = [
        "--pin-dir",
        &s(&pins),
        "--state-dir",
        &s(&state),
        "--run-dir",
        &s(&run),
        "--audit-log",
        &s(&audit),
        "--iface",
        &veth.name,
        "--list",
        &s(&list),
        "--no-watch",
        "--detach-on-exit",
    ];
    let mut daemon = DaemonProcess::spawn(&config, &args, sb.path("daemon.log"));
    daemon.wait_notify("READY=1", Duration::from_secs(30));
    assert!(veth.has_xdp());
    sb.expect_nxdomain("streamco.example");
    assert!(run.join("dnsfilter.pid").exists());

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(Duration::from_secs(30)).success(), "{}", daemon.log());
    assert!(!veth.has_xdp(), "detached from {}", veth.name);
    assert!(!pins.exists(), "{} removed", pins.display());
    assert!(!run.join("dnsfilter.pid").exists(), "pid file removed");
    assert_eq!(sb.audit_events("detached").len(), 1);
}

#[test]
fn an_expiry_applies_even_while_a_list_file_is_broken() {
    if !privileged("an_expiry_applies_even_while_a_list_file_is_broken") {
        return;
    }
    dnsfilter_binary(); // built first: the clock runs from here
    let sb = Sandbox::new();
    let veth = Veth::new();
    // Seconds for the daemon to start before the order lifts, and to apply the lift once due;
    // stretched under emulation (the kernel matrix's guests set DNSF_TIME_SCALE).
    let slack = i64::from(testbed::time_scale());
    let lifts = time::now() + 3 * slack;
    let expiring =
        order("expiring", "nxdomain", &format!("expires = {}\n", time::rfc3339(lifts)), &["expiring.example"]);
    let list = sb.write_list("orders.toml", &expiring);
    let config = sb.write_config(&format!("interfaces = [{:?}]\nlists = [{list:?}]\nwatch = false\n", veth.name));
    let mut daemon = DaemonProcess::spawn(&config, &[], sb.path("daemon.log"));
    daemon.wait_notify("READY=1", Duration::from_secs(30));
    sb.expect_nxdomain("expiring.example");

    // The file breaks before the order's date (no reload asked). The date coming due is applied
    // from the saved copy of what is in force: the block lifts on time, nothing is refused,
    // and nothing is retried in a loop.
    std::fs::write(&list, expiring.replace("action = \"nxdomain\"", "action = nxdomain")).unwrap();
    let wait = lifts - time::now() + slack;
    std::thread::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(0)));
    sb.expect_pass("expiring.example");
    assert!(sb.audit_events("rejected").is_empty(), "{:?}", sb.audit_events("rejected"));
    let applied = sb.audit_events("applied");
    let lifted = applied.last().expect("an applied record");
    assert_eq!(lifted["reason"], "schedule");
    assert_eq!(lifted["removed"][0]["name"], "expiring.example");

    // A reload of the broken file is refused once, and the lifted state stays.
    daemon.signal(libc::SIGHUP);
    daemon.wait_notify("RELOADING=1", Duration::from_secs(30));
    daemon.wait_notify("READY=1", Duration::from_secs(30));
    let rejected = sb.audit_events("rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["reason"], "signal");
    sb.expect_pass("expiring.example");
}

/// Orders with one entry per action, and an allow exception.
fn every_action() -> String {
    order("nx", "nxdomain", "allow = [\"ok.nx.example\"]\n", &["nx.example"])
        + &order("nodata", "nodata", "", &["nodata.example"])
        + &order("refused", "refused", "", &["refused.example"])
        + &order("tc", "truncate", "", &["*.tc.example"])
        + &order("stop", "redirect", "", &["stop.example"])
        + &order("dropped", "drop", "", &["dropped.example"])
        + &order("watched", "nxdomain", "mode = \"monitor\"\n", &["watched.example"])
}

/// Every live counter and group hit, read from the pins.
fn live_counts(sb: &Sandbox) -> (u64, u64) {
    let maps = sb.maps();
    let counters = maps.counters().expect("counters").iter().map(|(_, v)| v).sum();
    let hits = maps.group_hits().expect("group hits").iter().sum();
    (counters, hits)
}

/// NXDOMAIN answers are expected to say REFUSED: a deliberately wrong expectation.
fn wrong_rcode(c: &mut Canary) {
    if let Expect::Answer { counter: Counter::AnswerNxdomain, rcode, .. } = &mut c.expect {
        *rcode = 5;
    }
}

#[test]
fn the_canaries_run_on_a_private_instance_and_leave_the_evidence_alone() {
    if !privileged("the_canaries_run_on_a_private_instance_and_leave_the_evidence_alone") {
        return;
    }
    let sb = Sandbox::new();
    sb.write_list("orders.toml", &every_action());
    let mut d = start(sb.conf(), time::now());
    assert_eq!(live_counts(&sb), (0, 0), "the canaries at start counted nothing in the live maps");
    let rig: Vec<(Counter, u64)> = d.canary().filter().counters().expect("the canary counters");
    let seen = |c: Counter| rig.iter().find(|(k, _)| *k == c).map_or(0, |(_, v)| *v);
    // Each entry canary runs over IPv4 and IPv6, so does the unlisted name; one ARP, one UDP.
    let twice = [
        Counter::AnswerNxdomain,
        Counter::AnswerNodata,
        Counter::AnswerRefused,
        Counter::AnswerTruncate,
        Counter::AnswerRedirect,
        Counter::Drop,
        Counter::HitMonitor,
        Counter::HitAllow,
        Counter::PassNoMatch,
    ];
    for c in twice {
        assert_eq!(seen(c), 2, "{c:?} in the canary instance: {rig:?}");
    }
    assert_eq!((seen(Counter::PassNotIp), seen(Counter::PassNotDnsPort)), (1, 1), "{rig:?}");
    let generation = kernel_generation(&sb);

    // A reload checks the new generation, still without touching the evidence.
    sb.write_list("orders.toml", &(every_action() + &order("more", "nxdomain", "", &["more.example"])));
    d.apply(Reason::Signal, false, time::now()).expect("the reload passes its canaries");
    assert_eq!(kernel_generation(&sb), generation + 1);
    assert_eq!(live_counts(&sb), (0, 0));
    sb.expect_nxdomain("more.example");
    assert_eq!(live_counts(&sb), (1, 1), "a real query is counted");
    assert_eq!(order_hits(&sb, &d, "more", "nxdomain"), 1);
}

#[test]
fn a_generation_that_fails_its_canaries_is_refused_and_the_previous_one_stays() {
    if !privileged("a_generation_that_fails_its_canaries_is_refused_and_the_previous_one_stays") {
        return;
    }
    let sb = Sandbox::new();
    let id = "tj-paris-2024-streamco";
    sb.write_list("orders.toml", &order(id, "nxdomain", "", &["streamco.example"]));
    let mut d = start(sb.conf(), time::now());
    let generation = kernel_generation(&sb);

    d.canary().set_tamper(Some(wrong_rcode));
    sb.write_list("orders.toml", &order(id, "nxdomain", "", &["streamco.example", "added.example"]));
    let e = d.apply(Reason::Signal, false, time::now()).expect_err("the canaries must refuse the generation");
    assert!(matches!(e, DaemonError::Canary(_)) && !e.is_data(), "{e:?}");
    let text = e.to_string();
    let kernel = filter_user::probe::kernel_release();
    assert!(
        text.starts_with(&format!("canary failed on this kernel ({kernel}): the canary for nxdomain entry ")),
        "{text}"
    );
    assert!(text.ends_with("but the answer has rcode NXDOMAIN"), "{text}");

    assert_eq!(kernel_generation(&sb), generation, "the generation in force stays");
    sb.expect_nxdomain("streamco.example");
    sb.expect_pass("added.example");
    let h = d.health.lock().unwrap().clone();
    assert_eq!((h.reload_failures, h.last_reload_ok, h.generation), (1, false, generation));
    let rejected = sb.audit_events("rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0]["errors"].to_string().contains("canary failed on this kernel"), "{}", rejected[0]);
    assert_sample(&render_metrics(&sb, &d), "dnsfilter_reload_failures_total", "1");

    // A settings change alone is checked too.
    let mut conf = sb.conf();
    conf.settings.ports = Some(vec![53, 5353]);
    d.reconfigure(conf.clone()).expect("reconfigure");
    sb.write_list("orders.toml", &order(id, "nxdomain", "", &["streamco.example"]));
    let e = d.apply(Reason::Signal, false, time::now()).expect_err("refused");
    assert!(matches!(e, DaemonError::Canary(_)), "{e:?}");
    assert_eq!(sb.maps().config().expect("the pinned config").nports, 1, "the settings in force stay");

    d.canary().set_tamper(None);
    let r = d.apply(Reason::Signal, false, time::now()).expect("applies once the canaries pass");
    assert_eq!(r.generation, generation, "same entries: same generation, new settings");
    assert_eq!(sb.maps().config().expect("the pinned config").nports, 2);
}

#[test]
fn a_first_start_that_fails_its_canaries_attaches_nothing_and_leaves_no_pins() {
    if !privileged("a_first_start_that_fails_its_canaries_attaches_nothing_and_leaves_no_pins") {
        return;
    }
    let sb = Sandbox::new();
    let veth = Veth::new();
    sb.write_list("blocked.txt", "streamco.example\n");
    let mut conf = sb.conf();
    conf.interfaces = vec![veth.name.clone()];
    let e = Daemon::start_with(conf, SettingsFile::default(), false, time::now(), Some(wrong_rcode))
        .err()
        .expect("the canaries must refuse the start");
    assert!(matches!(e, DaemonError::Canary(_)) && !e.is_data(), "exit 71: {e:?}");
    assert!(e.to_string().contains("the canary for nxdomain entry streamco.example"), "{e}");
    assert!(!veth.has_xdp(), "nothing attached to {}", veth.name);
    assert!(!sb.pins.exists() && sb.pins.linked().is_empty(), "no pins left under {}", sb.pins.root.display());
}

#[test]
fn a_restart_whose_program_fails_its_canaries_keeps_the_previous_program() {
    if !privileged("a_restart_whose_program_fails_its_canaries_keeps_the_previous_program") {
        return;
    }
    let sb = Sandbox::new();
    let veth = Veth::new();
    sb.write_list("blocked.txt", "streamco.example\n");
    let mut conf = sb.conf();
    conf.interfaces = vec![veth.name.clone()];
    start(conf.clone(), time::now()).stop(false).expect("stop, leaving the filter attached");
    let before = sb.pins.link_info(&veth.name).expect("the pinned link");

    let e = Daemon::start_with(conf.clone(), SettingsFile::default(), false, time::now(), Some(wrong_rcode))
        .err()
        .expect("the canaries must refuse the restart");
    assert!(matches!(e, DaemonError::Canary(_)), "{e:?}");
    assert_eq!(sb.pins.link_info(&veth.name).expect("the link stays"), before, "the link keeps its program");
    assert!(veth.has_xdp());
    sb.expect_nxdomain("www.streamco.example");

    // The same restart without the wrong expectation adopts the link.
    let d = start(conf, time::now());
    let after = sb.pins.link_info(&veth.name).expect("the adopted link");
    assert_eq!(after.link_id, before.link_id);
    assert_ne!(after.prog_id, before.prog_id, "the link runs the new program");
    drop(d);
}
