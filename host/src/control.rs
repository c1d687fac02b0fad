//! The control endpoint of a running job: a line protocol on a loopback TCP port, served by
//! a small tokio runtime beside the job's task threads.
//!
//! `savepoint DIR` writes a savepoint into DIR and answers `{"ok":true,"path":"DIR"}`;
//! `savepoint DIR stop` also stops the job once the savepoint is complete (Flink's stop with
//! savepoint: no final watermark, nothing fires that the savepoint holds).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::Sender;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::checkpoint::SavepointRequest;

/// Binds `addr` (before the job starts, so a taken port is a clear error) and serves until
/// `done` is set.
pub fn serve(addr: SocketAddr, requests: Sender<SavepointRequest>, done: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("control endpoint: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let handle = std::thread::Builder::new().name("weir-control".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return eprintln!("weir: control endpoint: {e}"),
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            while !done.load(Ordering::Relaxed) {
                let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
                if let Ok(Ok((stream, _))) = accepted {
                    tokio::spawn(handle(stream, requests.clone()));
                }
            }
        });
    })?;
    Ok(handle)
}

async fn handle(stream: tokio::net::TcpStream, requests: Sender<SavepointRequest>) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = answer(&line, &requests).await;
        let _ = w.write_all(format!("{answer}\n").as_bytes()).await;
    }
}

async fn answer(line: &str, requests: &Sender<SavepointRequest>) -> serde_json::Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (dir, stop) = match words.as_slice() {
        ["savepoint", dir] => (PathBuf::from(dir), false),
        ["savepoint", dir, "stop"] => (PathBuf::from(dir), true),
        _ => return serde_json::json!({"ok": false, "error": format!("unknown command `{line}`; use `savepoint DIR [stop]`")}),
    };
    let (reply, rx) = crossbeam_channel::bounded(1);
    if requests.send(SavepointRequest { dir, stop, reply }).is_err() {
        return serde_json::json!({"ok": false, "error": "the job is ending"});
    }
    match tokio::task::spawn_blocking(move || rx.recv()).await {
        Ok(Ok(Ok(path))) => serde_json::json!({"ok": true, "path": path}),
        Ok(Ok(Err(e))) => serde_json::json!({"ok": false, "error": e}),
        _ => serde_json::json!({"ok": false, "error": "the job ended before answering"}),
    }
}

/// Client side of `weir savepoint`: asks the job at `addr` for a savepoint into `dir`.
pub fn request_savepoint(addr: SocketAddr, dir: &std::path::Path, stop: bool) -> anyhow::Result<PathBuf> {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr)
        .with_context(|| format!("no job answers on {addr} (is it running with `control = \"{addr}\"`?)"))?;
    let dir = std::path::absolute(dir)?;
    writeln!(s, "savepoint {}{}", dir.display(), if stop { " stop" } else { "" })?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("unexpected answer `{}`", line.trim()))?;
    if v["ok"] == true {
        Ok(PathBuf::from(v["path"].as_str().unwrap_or_default()))
    } else {
        anyhow::bail!("savepoint failed: {}", v["error"].as_str().unwrap_or("unknown error"))
    }
}
