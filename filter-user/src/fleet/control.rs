//! The daemon's control socket (`RUN_DIR/control.sock`, mode 0600): one request per
//! connection, one line in, one JSON line out.
//!
//! - `status`: every zone's [`super::run::Status`].
//! - `resync ZONE` / `resync ZONE force`: fetch the whole zone now (AXFR), whatever its serial
//!   (this is how an operator accepts a primary whose serial went backwards); `force` passes
//!   the change-share guard.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

use super::run::{Ctx, Wake};

/// Binds the socket, replacing a stale one.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(l)
}

pub async fn serve(l: UnixListener, ctx: Arc<Ctx>, wakers: Arc<BTreeMap<String, mpsc::Sender<Wake>>>) {
    loop {
        let Ok((s, _)) = l.accept().await else { continue };
        let (ctx, wakers) = (ctx.clone(), wakers.clone());
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut line = String::new();
            if BufReader::new(r).read_line(&mut line).await.is_err() {
                return;
            }
            let reply = answer(line.trim(), &ctx, &wakers).await;
            let mut out = reply.to_string();
            out.push('\n');
            let _ = w.write_all(out.as_bytes()).await;
        });
    }
}

async fn answer(line: &str, ctx: &Ctx, wakers: &BTreeMap<String, mpsc::Sender<Wake>>) -> serde_json::Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["status"] => serde_json::to_value(&*ctx.status_mut()).unwrap_or_default(),
        ["resync", zone, rest @ ..] => {
            let force = rest == ["force"];
            let name = zone.trim_end_matches('.').to_ascii_lowercase();
            let Some(w) = wakers.get(&name) else {
                return serde_json::json!({"ok": false, "error": format!("{zone}: not a configured fleet zone")});
            };
            let (tx, rx) = oneshot::channel();
            if w.send(Wake::Resync { force, reply: tx }).await.is_err() {
                return serde_json::json!({"ok": false, "error": "the zone task is gone"});
            }
            match rx.await {
                Ok(Ok(msg)) => serde_json::json!({"ok": true, "zone": name, "result": msg}),
                Ok(Err(e)) => serde_json::json!({"ok": false, "zone": name, "error": e}),
                Err(_) => serde_json::json!({"ok": false, "error": "the zone task is gone"}),
            }
        }
        _ => {
            serde_json::json!({"ok": false, "error": format!("unknown request {line:?}; status | resync ZONE [force]")})
        }
    }
}

/// Sends one request to the daemon's socket and returns its JSON answer (blocking).
pub fn request(path: &Path, line: &str, timeout: std::time::Duration) -> Result<serde_json::Value, String> {
    use std::io::{BufRead as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("{}: {e} (is the daemon running, with [[fleet.zone]] configured?)", path.display()))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.write_all(format!("{line}\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    std::io::BufReader::new(s).read_line(&mut out).map_err(|e| format!("no answer from the daemon: {e}"))?;
    serde_json::from_str(&out).map_err(|e| format!("bad answer from the daemon: {e}"))
}
