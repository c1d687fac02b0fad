//! The control endpoint of a running job: JSON lines on a loopback TCP port, served by a
//! small tokio runtime beside the job's task threads.
//!
//! Every request carries the job's token: a random secret weir writes at start into a file
//! only its user can read ([`token_path`]), so another local user can neither stop the job
//! nor have it write a savepoint. A request is one line of at most [`MAX_REQUEST`] bytes,
//! at most [`MAX_CONNECTIONS`] connections are served at once, an idle one is closed after
//! [`IDLE`], and an answer never repeats the request.
//!
//! `{"token": T, "command": "savepoint", "dir": DIR, "stop": false}` writes a savepoint into
//! DIR and answers `{"ok":true,"path":"DIR"}`; with `"stop": true` the job also stops once
//! the savepoint is complete (Flink's stop with savepoint: no final watermark, nothing fires
//! that the savepoint holds).
//!
//! `{"token": T, "command": "reload", "operator": OP, "path": PATH}` hot-reloads operator
//! OP's plugin from PATH (see weir-host's `reload`) and answers what happened;
//! `{"token": T, "command": "status"}` answers the job's state: each operator's plugin
//! version, when it was loaded, the last reload's outcome, and the job's counters.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::Sender;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::checkpoint::SavepointRequest;

/// The longest request line, in bytes.
pub const MAX_REQUEST: usize = 4096;
/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 8;
/// A connection that sends nothing for this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);
/// How long a request under way when the run ends may take to answer (a reload whose
/// rollback ends the run answers as the run ends).
pub const GRACE: Duration = Duration::from_secs(10);

/// Where the token of the endpoint at `addr` lives: `$WEIR_CONTROL_DIR`, else
/// `$XDG_RUNTIME_DIR/weir`, else `~/.weir`, as `control-<ip>-<port>.token`.
pub fn token_path(addr: SocketAddr) -> PathBuf {
    let dir = std::env::var_os("WEIR_CONTROL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("weir")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".weir")))
        .unwrap_or_else(|| std::env::temp_dir().join("weir"));
    let ip = addr.ip().to_string().replace(':', "_");
    dir.join(format!("control-{ip}-{}.token", addr.port()))
}

/// A fresh random token, 32 bytes as hex, from the kernel's generator.
fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `token` to `path`, readable and writable by this user only.
fn write_token(path: &Path, token: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(token.as_bytes())?;
    Ok(())
}

/// A fresh token for the endpoint at `addr` (`what` names it in errors), written to its
/// [`token_path`]: the file, and the token.
pub(crate) fn issue_token(addr: SocketAddr, what: &str) -> anyhow::Result<(PathBuf, Arc<str>)> {
    let token_file = token_path(addr);
    let token: Arc<str> = new_token()?.into();
    write_token(&token_file, &token).with_context(|| format!("{what}: cannot write its token to {}", token_file.display()))?;
    Ok((token_file, token))
}

/// Compares in time independent of where the first difference is.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A running endpoint: its thread and its token file (removed when the job ends).
#[derive(Debug)]
pub struct Endpoint {
    thread: std::thread::JoinHandle<()>,
    token_file: PathBuf,
}

impl Endpoint {
    /// Waits for the endpoint to close (after `done` was set) and removes the token file.
    pub fn join(self) {
        let _ = self.thread.join();
        let _ = std::fs::remove_file(&self.token_file);
    }
}

/// What the endpoint asks of the job besides savepoints (weir-host answers).
pub trait Commands: Send + Sync {
    /// Hot-reloads `operator`'s plugin from `path`: the answer's JSON, or why not.
    fn reload(&self, operator: &str, path: &Path) -> Result<serde_json::Value, String>;
    /// The job's state, as JSON.
    fn status(&self) -> serde_json::Value;
}

/// Binds `addr` (before the job starts, so a taken port is a clear error), writes the
/// token file, and serves until `done` is set.
pub fn serve(
    addr: SocketAddr,
    requests: Sender<SavepointRequest>,
    commands: Arc<dyn Commands>,
    done: Arc<AtomicBool>,
) -> anyhow::Result<Endpoint> {
    // The token first: a client may connect as soon as the port listens.
    let (token_file, token) = issue_token(addr, "control endpoint")?;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("control endpoint: cannot listen on {addr}"));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_file(&token_file);
            return Err(e);
        }
    };
    listener.set_nonblocking(true)?;
    let stop = done.clone();
    let serve = move |stream| handle(stream, requests.clone(), commands.clone(), token.clone(), stop.clone());
    let refuse = |mut stream: tokio::net::TcpStream| async move {
        let busy = format!("{}\n", refusal(&format!("too many connections (at most {MAX_CONNECTIONS})")));
        let _ = stream.write_all(busy.as_bytes()).await;
    };
    let thread = crate::listen::spawn("weir-control", listener, MAX_CONNECTIONS, done, GRACE, serve, refuse)?;
    Ok(Endpoint { thread, token_file })
}

/// An answer that says it succeeded.
fn accepted(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("ok".into(), true.into());
    }
    v
}

/// The answer to a request refused, or to one that failed.
fn refusal(message: &str) -> serde_json::Value {
    serde_json::json!({"ok": false, "error": message})
}

/// Serves one connection: a line in, an answer out, until the client closes, idles, or the
/// run ends (a request already read is still answered).
async fn handle(
    stream: tokio::net::TcpStream,
    requests: Sender<SavepointRequest>,
    commands: Arc<dyn Commands>,
    token: Arc<str>,
    done: Arc<AtomicBool>,
) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    loop {
        // One line, read no further than the cap (a line without an end would grow forever).
        let mut line = Vec::new();
        let mut limited = (&mut r).take(MAX_REQUEST as u64 + 1);
        let read = limited.read_until(b'\n', &mut line);
        let n = tokio::select! {
            read = tokio::time::timeout(IDLE, read) => match read {
                Ok(Ok(n)) => n,
                _ => return,
            },
            _ = crate::listen::stopped(&done) => return,
        };
        if n == 0 {
            return;
        }
        if line.last() != Some(&b'\n') {
            let too_long = format!("{}\n", refusal(&format!("request too long (at most {MAX_REQUEST} bytes a line); closing")));
            let _ = w.write_all(too_long.as_bytes()).await;
            return;
        }
        let answer = answer(&line, &requests, &commands, &token).await;
        if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A request of the control protocol.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Request {
    token: String,
    command: String,
    #[serde(default)]
    dir: Option<PathBuf>,
    #[serde(default)]
    stop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
}

impl Request {
    fn new(token: String, command: &str) -> Request {
        Request { token, command: command.into(), dir: None, stop: false, operator: None, path: None }
    }
}

async fn answer(line: &[u8], requests: &Sender<SavepointRequest>, commands: &Arc<dyn Commands>, token: &str) -> serde_json::Value {
    // Errors describe the request's shape, never its content.
    let Ok(req) = serde_json::from_slice::<Request>(line) else {
        return refusal(
            "not a request: send one JSON object a line, {\"token\", \"command\": \"savepoint\" | \"reload\" | \"status\", ...}",
        );
    };
    if !same(&req.token, token) {
        return refusal(
            "wrong token: use the one in the token file the job wrote at start (`weir savepoint`, `weir reload` and `weir status` read it)",
        );
    }
    let (dir, stop) = match (req.command.as_str(), req.dir) {
        ("savepoint", Some(dir)) => (dir, req.stop),
        ("savepoint", None) => return refusal("`savepoint` needs `dir`"),
        ("status", _) => {
            let commands = commands.clone();
            return tokio::task::spawn_blocking(move || commands.status()).await.map(accepted).unwrap_or_else(|_| refusal("status failed"));
        }
        ("reload", _) => {
            let (Some(operator), Some(path)) = (req.operator, req.path) else { return refusal("`reload` needs `operator` and `path`") };
            return reload(commands, operator, path).await;
        }
        _ => return refusal("unknown command; the commands are `savepoint`, `reload` and `status`"),
    };
    let (reply, rx) = crossbeam_channel::bounded(1);
    if requests.send(SavepointRequest { dir, stop, reply }).is_err() {
        return refusal("the job is ending");
    }
    match tokio::task::spawn_blocking(move || rx.recv()).await {
        Ok(Ok(Ok(path))) => serde_json::json!({"ok": true, "path": path}),
        Ok(Ok(Err(e))) => refusal(&e),
        _ => refusal("the job ended before answering"),
    }
}

/// Hot-reloads `operator` from `path` (compiling a component takes a while: off the
/// endpoint's thread); the answer, `ok` or not.
pub(crate) async fn reload(commands: &Arc<dyn Commands>, operator: String, path: PathBuf) -> serde_json::Value {
    let commands = commands.clone();
    match tokio::task::spawn_blocking(move || commands.reload(&operator, &path)).await {
        Ok(Ok(v)) => accepted(v),
        Ok(Err(e)) => refusal(&e),
        Err(_) => refusal("the reload failed unexpectedly"),
    }
}

/// Sends one request to the job at `addr`, with the token read from `token_file` (default:
/// [`token_path`] of `addr`), and returns its answer when it is `ok`.
fn request(
    addr: SocketAddr,
    token_file: Option<&Path>,
    command: &str,
    fill: impl FnOnce(&mut Request),
) -> anyhow::Result<serde_json::Value> {
    use std::io::{BufRead, Write};
    let token_file = token_file.map(Path::to_path_buf).unwrap_or_else(|| token_path(addr));
    let token = std::fs::read_to_string(&token_file).with_context(|| {
        format!(
            "cannot read the job's control token {} (is a job running with `control = \"{addr}\"` as this user? else pass --token-file)",
            token_file.display()
        )
    })?;
    let mut s = std::net::TcpStream::connect(addr)
        .with_context(|| format!("no job answers on {addr} (is it running with `control = \"{addr}\"`?)"))?;
    let mut req = Request::new(token.trim().to_string(), command);
    fill(&mut req);
    writeln!(s, "{}", serde_json::to_string(&req)?)?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("unexpected answer `{}`", line.trim()))?;
    if v["ok"] == true {
        Ok(v)
    } else {
        anyhow::bail!("{command} failed: {}", v["error"].as_str().unwrap_or("unknown error"))
    }
}

/// Client side of `weir savepoint`: asks the job at `addr` for a savepoint into `dir`.
pub fn request_savepoint(addr: SocketAddr, dir: &Path, stop: bool, token_file: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir)?;
    let v = request(addr, token_file, "savepoint", |r| {
        r.dir = Some(dir);
        r.stop = stop;
    })?;
    Ok(PathBuf::from(v["path"].as_str().unwrap_or_default()))
}

/// Client side of `weir reload`: asks the job at `addr` to swap `operator`'s plugin for the
/// component at `path`; the answer says at which checkpoint, and the version.
pub fn request_reload(addr: SocketAddr, operator: &str, path: &Path, token_file: Option<&Path>) -> anyhow::Result<serde_json::Value> {
    let path = std::path::absolute(path)?;
    request(addr, token_file, "reload", |r| {
        r.operator = Some(operator.to_string());
        r.path = Some(path);
    })
}

/// Client side of `weir status`: the job's state.
pub fn request_status(addr: SocketAddr, token_file: Option<&Path>) -> anyhow::Result<serde_json::Value> {
    request(addr, token_file, "status", |_| {})
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read as _;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    use super::*;

    /// Reloads that end only with the run, as one whose rollback restarts the job does:
    /// each says on `started` that it began, waits for `done`, and is refused a little after.
    pub(crate) struct EndsWithTheRun {
        pub(crate) started: Sender<()>,
        pub(crate) done: Arc<AtomicBool>,
    }

    impl Commands for EndsWithTheRun {
        fn reload(&self, _: &str, _: &Path) -> Result<serde_json::Value, String> {
            let _ = self.started.send(());
            while !self.done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            // The coordinator's answer comes a little after the run's end.
            std::thread::sleep(Duration::from_millis(300));
            Err("swapped in and is being rolled back".into())
        }

        fn status(&self) -> serde_json::Value {
            serde_json::json!({})
        }
    }

    #[test]
    fn a_request_under_way_when_the_run_ends_is_answered_and_an_idle_connection_closed() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
        let done = Arc::new(AtomicBool::new(false));
        let (started, reloading) = crossbeam_channel::bounded(1);
        let commands = Arc::new(EndsWithTheRun { started, done: done.clone() });
        let (requests, _savepoints) = crossbeam_channel::unbounded();
        let endpoint = serve(addr, requests, commands, done.clone()).expect("serve");
        let idle = std::net::TcpStream::connect(addr).expect("connect");
        let client = std::thread::spawn(move || request_reload(addr, "op", Path::new("/nowhere.wasm"), None));
        reloading.recv_timeout(Duration::from_secs(10)).expect("the reload arrives");
        let ended = Instant::now();
        done.store(true, Ordering::SeqCst);
        endpoint.join();
        let answer = client.join().expect("client");
        let err = format!("{:#}", answer.expect_err("a refusal"));
        assert!(err.contains("is being rolled back"), "the answer came before the endpoint closed: {err}");
        assert!(ended.elapsed() < GRACE, "the idle connection did not hold the end up to the grace time");
        let mut rest = Vec::new();
        assert_eq!((&idle).read_to_end(&mut rest).expect("read"), 0, "the idle connection is closed without an answer");
    }
}
