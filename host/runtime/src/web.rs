//! The job's HTTP endpoint (`[metrics] addr`, `weir run --metrics-addr`): its counters in
//! the Prometheus text format at `/metrics`, the same as JSON with the job graph at
//! `/api/job`, and a dashboard at `/` (one page built into the binary, no other resources),
//! all read from the job's live `JobMetrics` at each request. Served by hyper on a small tokio runtime of its own, beside the task threads, so
//! a scrape never waits for a task and a task never waits for a scrape.
//!
//! Names follow Prometheus's conventions: the `weir_` prefix, base units, `_total` on
//! counters (prometheus-client adds it), labels `job` and `operator` (names from the job
//! file, so the label values are bounded). After the job ends the endpoint keeps answering
//! for `[metrics] linger`, with `weir_job_running` 0, so that a scraper's last look at a
//! bounded job sees its final counts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use weir_core::status::{JobMetrics, NodeMetrics};

/// The content type of `/metrics` (what prometheus-client writes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One node of the job graph, as the dashboard draws it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphNode {
    /// Its name in the job file.
    pub name: String,
    /// `source`, `operator`, `sink` or `dead-letter`.
    pub kind: &'static str,
    /// Parallel subtasks.
    pub parallelism: usize,
    /// Upstream nodes, as `name` or `name.side-output`.
    pub inputs: Vec<String>,
}

/// What the endpoint serves: the job's name, graph and live counters.
pub struct Job {
    /// Its name.
    pub name: String,
    /// The graph, sources first.
    pub graph: Vec<GraphNode>,
    /// The counters, live.
    pub metrics: Arc<JobMetrics>,
    /// When the run started.
    pub started: std::time::Instant,
    /// The job's plugin versions and hot reloads (none: the job cannot reload).
    pub commands: Option<Arc<dyn crate::control::Commands>>,
}

/// The dashboard page.
const DASHBOARD: &str = include_str!("web/dashboard.html");

/// Connections served at once (a scraper and a few dashboards); more are answered 503.
pub const MAX_CONNECTIONS: usize = 16;

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("name", &self.name).field("graph", &self.graph).finish_non_exhaustive()
    }
}

/// The longest request body (`POST /api/reload`), in bytes.
pub const MAX_BODY: usize = 4096;

/// Dead letters `/api/job` shows, newest first.
pub const DEAD_LETTERS_SHOWN: usize = 20;

/// A running endpoint; [`Endpoint::finish`] stops it.
#[derive(Debug)]
pub struct Endpoint {
    thread: std::thread::JoinHandle<()>,
    running: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// The address it listens on (the port the OS chose when the job asked for port 0).
    pub addr: SocketAddr,
    /// The file holding the token that `POST /api/reload` needs (removed at the end); none
    /// when it could not be written (then the endpoint serves everything but reloads).
    pub token_file: Option<std::path::PathBuf>,
}

impl Endpoint {
    /// Marks the job ended (`weir_job_running` 0), keeps answering for `linger`, then stops.
    pub fn finish(self, linger: Duration) {
        self.running.store(false, Ordering::SeqCst);
        std::thread::sleep(linger);
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        if let Some(f) = &self.token_file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Starts serving `job` on `addr`.
pub fn serve(addr: SocketAddr, job: Job) -> anyhow::Result<Endpoint> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("metrics endpoint: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    // The token of the one request that changes the job, written before anything is served.
    // Without it (no writable folder for it) the endpoint still serves what it reads.
    let (token_file, token) = match crate::control::issue_token(local, "metrics endpoint") {
        Ok((file, token)) => (Some(file), Some(token)),
        Err(e) => {
            eprintln!("weir: warning: {e:#}; the dashboard cannot reload plugins (set WEIR_CONTROL_DIR to a writable folder)");
            (None, None)
        }
    };
    let (running, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
    let (r, s) = (running.clone(), stop.clone());
    let job = Arc::new(job);
    let ending = stop.clone();
    let serve = move |stream| {
        let (job, running, token, ending) = (job.clone(), r.clone(), token.clone(), ending.clone());
        async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (job, running, token) = (job.clone(), running.load(Ordering::SeqCst), token.clone());
                async move { Ok::<_, std::convert::Infallible>(respond(req, &job, running, token.as_deref()).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(30), conn.as_mut()) => return,
                _ = crate::listen::stopped(&ending) => {}
            }
            // The endpoint stops: a request under way is answered (a reload whose rollback
            // ended the run, say), an idle keep-alive connection is closed.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(crate::control::GRACE, conn).await;
        }
    };
    let refuse = |mut stream: tokio::net::TcpStream| async move {
        use tokio::io::AsyncWriteExt as _;
        let busy = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";
        let _ = stream.write_all(busy).await;
    };
    let thread = crate::listen::spawn("weir-http", listener, MAX_CONNECTIONS, s, crate::control::GRACE, serve, refuse);
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            if let Some(f) = &token_file {
                let _ = std::fs::remove_file(f);
            }
            return Err(e.into());
        }
    };
    Ok(Endpoint { thread, running, stop, addr: local, token_file })
}

/// `POST /api/reload`: `{"operator": OP, "path": PATH}` (PATH defaults to the file the
/// operator's plugin was loaded from, so a rebuilt plugin is one click away), with the
/// endpoint's token as `Authorization: Bearer TOKEN`. Answers as `weir reload` does.
async fn reload(req: Request<hyper::body::Incoming>, job: &Job, token: Option<&str>) -> (StatusCode, serde_json::Value) {
    use http_body_util::BodyExt as _;
    let refused = |status, why: &str| (status, serde_json::json!({"ok": false, "error": why}));
    let given = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "this endpoint has no token (weir could not write it at start), so it reloads nothing",
        );
    };
    if !given.is_some_and(|t| crate::control::same(t.trim(), token)) {
        return refused(
            StatusCode::UNAUTHORIZED,
            "wrong or missing token: send `Authorization: Bearer TOKEN`, TOKEN from the file weir named at start",
        );
    }
    let Some(commands) = &job.commands else {
        return refused(StatusCode::CONFLICT, "this job cannot reload plugins (hot reloads need `[checkpoint]`)");
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return refused(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body is longer than {MAX_BODY} bytes")),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        operator: String,
        #[serde(default)]
        path: Option<std::path::PathBuf>,
    }
    let Ok(ask) = serde_json::from_slice::<Ask>(&body) else {
        return refused(StatusCode::BAD_REQUEST, "send {\"operator\": OP} or {\"operator\": OP, \"path\": PATH}");
    };
    let path = match ask.path {
        Some(p) => p,
        None => match commands.status()["operators"][&ask.operator]["plugin"].as_str() {
            Some(p) => p.into(),
            None => return refused(StatusCode::NOT_FOUND, &format!("no operator `{}` runs a plugin that can be reloaded", ask.operator)),
        },
    };
    let answer = crate::control::reload(commands, ask.operator, path).await;
    (if answer["ok"] == true { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY }, answer)
}

async fn respond(req: Request<hyper::body::Incoming>, job: &Job, running: bool, token: Option<&str>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    let text = "text/plain; charset=utf-8";
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match (&method, path.as_str()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, CONTENT_TYPE, encode(&job.name, &job.metrics, running)),
        (&Method::GET, "/api/job") => reply(StatusCode::OK, "application/json", api(job, running).to_string()),
        (&Method::GET, "/") => reply(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.to_string()),
        // Browsers ask; there is none.
        (&Method::GET, "/favicon.ico") => reply(StatusCode::NO_CONTENT, text, String::new()),
        (&Method::GET, _) => reply(StatusCode::NOT_FOUND, text, "not found: weir serves /, /api/job and /metrics\n".into()),
        (&Method::POST, "/api/reload") => {
            let (status, answer) = reload(req, job, token).await;
            reply(status, "application/json", answer.to_string())
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, text, "only GET, and POST to /api/reload\n".into()),
    }
}

/// `/api/job`: the graph with each node's counters, the checkpoints, and the clock of the
/// run (the dashboard computes rates from two answers).
fn api(job: &Job, running: bool) -> serde_json::Value {
    let counters = job.metrics.to_json();
    let nodes: Vec<serde_json::Value> = job
        .graph
        .iter()
        .map(|n| {
            let mut v = serde_json::to_value(n).unwrap_or_default();
            v["counters"] = counters["nodes"][&n.name].clone();
            v
        })
        .collect();
    serde_json::json!({
        "job": job.name,
        "running": running,
        "elapsed_ms": job.started.elapsed().as_millis() as u64,
        "nodes": nodes,
        "checkpoints": counters["checkpoints"],
        "dead_letters": counters["dead_letters"],
        "latest_dead_letters": job.metrics.recent_dead_letters(DEAD_LETTERS_SHOWN),
        "plugins": job.commands.as_ref().map(|c| c.status()["operators"].clone()),
        "can_reload": job.commands.is_some(),
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperatorLabels {
    job: String,
    operator: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    job: String,
    operator: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubtaskLabels {
    job: String,
    operator: String,
    subtask: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckpointLabels {
    job: String,
    outcome: String,
}

/// Reads one value per subtask (ns) from a node's counters.
type PerSubtask<'a> = &'a dyn Fn(&NodeMetrics) -> Vec<u64>;

/// The job's counters in the OpenMetrics text format (what Prometheus scrapes).
pub fn encode(job: &str, metrics: &JobMetrics, running: bool) -> String {
    let mut reg = Registry::default();
    let labels = |n: &str, subtask: usize| SubtaskLabels { job: job.into(), operator: n.into(), subtask: subtask.to_string() };
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut per_node = |name: &str, help: &str, read: &dyn Fn(&NodeMetrics) -> u64| {
        let family = Family::<OperatorLabels, Counter>::default();
        for (n, m) in &metrics.nodes {
            family.get_or_create(&OperatorLabels { job: job.into(), operator: n.clone() }).inc_by(read(m));
        }
        reg.register(name, help, family);
    };
    per_node("weir_records_in", "Records that entered the operator (source: records read)", &|m| g(&m.records_in));
    per_node("weir_records_out", "Records the operator emitted on its main output", &|m| g(&m.records_out));
    per_node("weir_dead_letters", "Records the operator sent to the dead-letter output (malformed input, plugin failures)", &|m| {
        g(&m.dead_letters)
    });
    per_node("weir_unrouted_records", "Records emitted to side outputs the job does not route anywhere", &|m| g(&m.unrouted));
    per_node("weir_plugin_restarts", "Plugin instances recreated after a trap", &|m| g(&m.restarts));
    per_node("weir_plugin_traps", "Plugin calls that trapped (their records went to the dead letters)", &|m| g(&m.traps));
    let family = Family::<OperatorLabels, Counter<f64, AtomicU64>>::default();
    for (n, m) in &metrics.nodes {
        family.get_or_create(&OperatorLabels { job: job.into(), operator: n.clone() }).inc_by(g(&m.operator_ns) as f64 / 1e9);
    }
    reg.register_with_unit(
        "weir_operator_time",
        "Time in the operator's calls, over its subtasks (a plugin operator's: the plugin's calls with the host calls they make)",
        Unit::Seconds,
        family,
    );
    let reloads = Family::<OutcomeLabels, Counter>::default();
    for (n, m) in &metrics.nodes {
        for (outcome, v) in ["ok", "refused", "rolled_back"].into_iter().zip(&m.reloads) {
            reloads.get_or_create(&OutcomeLabels { job: job.into(), operator: n.clone(), outcome: outcome.into() }).inc_by(g(v));
        }
    }
    reg.register("weir_plugin_reloads", "Hot reloads of the operator's plugin that ended: ok, refused, rolled back", reloads);
    // Keyed state and sources, per subtask.
    let (entries, bytes, lag, progress) = (
        Family::<SubtaskLabels, Gauge>::default(),
        Family::<SubtaskLabels, Gauge>::default(),
        Family::<SubtaskLabels, Gauge>::default(),
        Family::<OperatorLabels, Gauge<f64, AtomicU64>>::default(),
    );
    for (n, m) in &metrics.nodes {
        for (subtask, s) in m.state.lock().unwrap_or_else(|e| e.into_inner()).iter().enumerate() {
            entries.get_or_create(&labels(n, subtask)).set(s.entries as i64);
            bytes.get_or_create(&labels(n, subtask)).set(s.bytes as i64);
        }
        for (subtask, l) in m.lags().into_iter().enumerate() {
            if let Some(l) = l {
                lag.get_or_create(&labels(n, subtask)).set(l as i64);
            }
        }
        if let Some(p) = m.source_progress() {
            if let Some(total) = p.total {
                let ratio = if total == 0 { 1.0 } else { p.done as f64 / total as f64 };
                progress.get_or_create(&OperatorLabels { job: job.into(), operator: n.clone() }).set(ratio);
            }
        }
    }
    reg.register("weir_state_entries", "Entries of the subtask's keyed state (an estimate on RocksDB)", entries);
    reg.register_with_unit(
        "weir_state_size",
        "Bytes of the subtask's keyed state, keys and values (an estimate on RocksDB)",
        Unit::Bytes,
        bytes,
    );
    reg.register(
        "weir_source_lag_records",
        "Records the source subtask could read and has not yet (Kafka: consumer lag over its partitions)",
        lag,
    );
    reg.register(
        "weir_source_progress_ratio",
        "Share of a bounded source's input read so far (a file's bytes, a topic's records)",
        progress,
    );
    let late = Family::<OutcomeLabels, Counter>::default();
    for (n, m) in &metrics.nodes {
        for (outcome, v) in [("dropped", g(&m.late_dropped)), ("side_output", g(&m.late_side))] {
            late.get_or_create(&OutcomeLabels { job: job.into(), operator: n.clone(), outcome: outcome.into() }).inc_by(v);
        }
    }
    // Event time per subtask: absent before its first watermark and after the end of input
    // (the final watermark is "forever").
    let (watermark, lag) =
        (Family::<SubtaskLabels, Gauge<f64, AtomicU64>>::default(), Family::<SubtaskLabels, Gauge<f64, AtomicU64>>::default());
    let now_ms = weir_core::time::wall_ms();
    for (n, m) in &metrics.nodes {
        for (subtask, w) in m.watermarks().into_iter().enumerate().filter(|(_, w)| *w != i64::MIN && *w != i64::MAX) {
            let labels = labels(n, subtask);
            watermark.get_or_create(&labels).set(w as f64 / 1000.0);
            lag.get_or_create(&labels).set(now_ms.saturating_sub(w) as f64 / 1000.0);
        }
    }
    // Where each task's thread spends its time (Flink's busy / idle / backpressured time)
    // and the CPU it used, by the node at the head of the task.
    let busy = |m: &NodeMetrics| m.task_time().iter().map(|t| t[0]).collect();
    let idle = |m: &NodeMetrics| m.task_time().iter().map(|t| t[1]).collect();
    let backpressured = |m: &NodeMetrics| m.task_time().iter().map(|t| t[2]).collect();
    let cpu = |m: &NodeMetrics| m.task_cpu();
    let per_task: [(&str, &str, PerSubtask<'_>); 4] = [
        ("weir_task_busy", "Time the subtask's task spent processing (counted by the node heading the task)", &busy),
        ("weir_task_idle", "Time the subtask's task spent waiting for input", &idle),
        ("weir_task_backpressured", "Time the subtask's task spent waiting for room in a full downstream channel", &backpressured),
        ("weir_task_cpu", "CPU time of the subtask's task thread (by the node heading the task)", &cpu),
    ];
    for (name, help, ns) in per_task {
        let family = Family::<SubtaskLabels, Counter<f64, AtomicU64>>::default();
        for (n, m) in &metrics.nodes {
            for (subtask, ns) in ns(m).into_iter().enumerate() {
                family.get_or_create(&labels(n, subtask)).inc_by(ns as f64 / 1e9);
            }
        }
        reg.register_with_unit(name, help, Unit::Seconds, family);
    }
    reg.register_with_unit("weir_watermark", "The event-time watermark a subtask last saw arrive, as epoch time", Unit::Seconds, watermark);
    reg.register_with_unit("weir_watermark_lag", "Wall-clock time minus the subtask's watermark", Unit::Seconds, lag);
    reg.register("weir_late_records", "Records behind the watermark past allowed lateness: dropped, or sent to the late side output", late);
    let c = &metrics.checkpoints;
    let checkpoints = Family::<CheckpointLabels, Counter>::default();
    for (outcome, v) in [("completed", g(&c.completed)), ("failed", g(&c.failed))] {
        checkpoints.get_or_create(&CheckpointLabels { job: job.into(), outcome: outcome.into() }).inc_by(v);
    }
    reg.register("weir_checkpoints", "Checkpoints completed, and failed or timed out", checkpoints);
    let seconds = |ms: u64| ms as f64 / 1000.0;
    let mut gauge = |name: &str, help: &str, unit: Option<Unit>, v: f64| {
        let family = Family::<JobLabel, Gauge<f64, AtomicU64>>::default();
        family.get_or_create(&JobLabel { job: job.into() }).set(v);
        match unit {
            Some(u) => reg.register_with_unit(name, help, u, family),
            None => reg.register(name, help, family),
        }
    };
    gauge(
        "weir_checkpoint_last_duration",
        "Trigger to metadata of the last completed checkpoint",
        Some(Unit::Seconds),
        seconds(g(&c.last_duration_ms)),
    );
    gauge("weir_checkpoint_max_duration", "The longest checkpoint so far", Some(Unit::Seconds), seconds(g(&c.max_duration_ms)));
    gauge("weir_checkpoint_last_size", "Files of the last completed checkpoint", Some(Unit::Bytes), g(&c.last_bytes) as f64);
    gauge(
        "weir_job_running",
        "1 while the job runs, 0 once it ended (the endpoint lingers for `[metrics] linger`)",
        None,
        f64::from(u8::from(running)),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    #[test]
    fn a_reload_under_way_when_the_endpoint_stops_is_answered_and_an_idle_connection_closed() {
        let done = Arc::new(AtomicBool::new(false));
        let (started, reloading) = crossbeam_channel::bounded(1);
        let commands = Arc::new(crate::control::tests::EndsWithTheRun { started, done: done.clone() });
        let job = Job {
            name: "j".into(),
            graph: Vec::new(),
            metrics: Arc::new(JobMetrics::default()),
            started: std::time::Instant::now(),
            commands: Some(commands),
        };
        let endpoint = serve("127.0.0.1:0".parse().expect("addr"), job).expect("serve");
        let token = std::fs::read_to_string(endpoint.token_file.as_ref().expect("a token file")).expect("token");
        let idle = std::net::TcpStream::connect(endpoint.addr).expect("connect");
        let mut ask = std::net::TcpStream::connect(endpoint.addr).expect("connect");
        let body = r#"{"operator": "op", "path": "/nowhere.wasm"}"#;
        write!(
            ask,
            "POST /api/reload HTTP/1.1\r\nhost: weir\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n{body}",
            token.trim(),
            body.len()
        )
        .expect("send");
        reloading.recv_timeout(Duration::from_secs(10)).expect("the reload arrives");
        let ended = std::time::Instant::now();
        done.store(true, Ordering::SeqCst);
        endpoint.finish(Duration::ZERO);
        let mut answer = String::new();
        ask.read_to_string(&mut answer).expect("read");
        assert!(answer.contains("is being rolled back"), "the answer came before the endpoint closed: {answer:?}");
        assert!(ended.elapsed() < crate::control::GRACE, "the idle connection did not hold the end up to the grace time");
        let mut rest = Vec::new();
        assert_eq!((&idle).read_to_end(&mut rest).expect("read"), 0, "the idle connection is closed without an answer");
    }

    #[test]
    fn counters_carry_their_job_and_operator_and_units() {
        let mut m = JobMetrics::default();
        m.node("logs").records_in.store(7, Ordering::Relaxed);
        m.node("parse").dead_letters.store(2, Ordering::Relaxed);
        m.node("parse").late_side.store(1, Ordering::Relaxed);
        m.checkpoints.completed.store(3, Ordering::Relaxed);
        m.node("parse").note_watermark(1, 1_735_689_600_500);
        m.node("parse").note_task_time(0, 2_500_000_000, 1_000_000_000, 500_000_000);
        m.checkpoints.last_duration_ms.store(1500, Ordering::Relaxed);
        m.node("parse").operator_ns.store(250_000_000, Ordering::Relaxed);
        m.node("parse").note_task_cpu(0, 1_500_000_000);
        m.node("parse").reloads[2].store(1, Ordering::Relaxed);
        m.node("parse").note_state(1, weir_core::status::StateSize { entries: 12, bytes: 3400 });
        let progress = |done, total, lag| weir_core::status::SourceProgress { done, total, lag, ..Default::default() };
        m.node("logs").note_source(0, progress(30, Some(100), Some(70)));
        m.node("logs").note_source(1, progress(20, Some(100), None));
        let text = encode("j", &m, true);
        for line in [
            "weir_records_in_total{job=\"j\",operator=\"logs\"} 7",
            "weir_dead_letters_total{job=\"j\",operator=\"parse\"} 2",
            "weir_late_records_total{job=\"j\",operator=\"parse\",outcome=\"side_output\"} 1",
            "weir_checkpoints_total{job=\"j\",outcome=\"completed\"} 3",
            "weir_checkpoint_last_duration_seconds{job=\"j\"} 1.5",
            "weir_job_running{job=\"j\"} 1.0",
            "weir_watermark_seconds{job=\"j\",operator=\"parse\",subtask=\"1\"} 1735689600.5",
            "weir_task_busy_seconds_total{job=\"j\",operator=\"parse\",subtask=\"0\"} 2.5",
            "weir_task_backpressured_seconds_total{job=\"j\",operator=\"parse\",subtask=\"0\"} 0.5",
            "weir_operator_time_seconds_total{job=\"j\",operator=\"parse\"} 0.25",
            "weir_task_cpu_seconds_total{job=\"j\",operator=\"parse\",subtask=\"0\"} 1.5",
            "weir_plugin_reloads_total{job=\"j\",operator=\"parse\",outcome=\"rolled_back\"} 1",
            "weir_state_entries{job=\"j\",operator=\"parse\",subtask=\"1\"} 12",
            "weir_state_size_bytes{job=\"j\",operator=\"parse\",subtask=\"1\"} 3400",
            "weir_source_lag_records{job=\"j\",operator=\"logs\",subtask=\"0\"} 70",
            "weir_source_progress_ratio{job=\"j\",operator=\"logs\"} 0.25",
            "# TYPE weir_records_in counter",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(encode("j", &m, false).contains("weir_job_running{job=\"j\"} 0.0"));
    }
}
