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
use weir_core::status::JobMetrics;

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
#[derive(Debug)]
pub struct Job {
    /// Its name.
    pub name: String,
    /// The graph, sources first.
    pub graph: Vec<GraphNode>,
    /// The counters, live.
    pub metrics: Arc<JobMetrics>,
    /// When the run started.
    pub started: std::time::Instant,
}

/// The dashboard page.
const DASHBOARD: &str = include_str!("web/dashboard.html");

/// Connections served at once (a scraper and a few dashboards); more are answered 503.
pub const MAX_CONNECTIONS: usize = 16;

/// A running endpoint; [`Endpoint::finish`] stops it.
#[derive(Debug)]
pub struct Endpoint {
    thread: std::thread::JoinHandle<()>,
    running: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// The address it listens on (the port the OS chose when the job asked for port 0).
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Marks the job ended (`weir_job_running` 0), keeps answering for `linger`, then stops.
    pub fn finish(self, linger: Duration) {
        self.running.store(false, Ordering::SeqCst);
        std::thread::sleep(linger);
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Starts serving `job` on `addr`.
pub fn serve(addr: SocketAddr, job: Job) -> anyhow::Result<Endpoint> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("metrics endpoint: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let (running, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
    let (r, s) = (running.clone(), stop.clone());
    let job = Arc::new(job);
    let serve = move |stream| {
        let (job, running) = (job.clone(), r.clone());
        async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let answer = respond(&req, &job, running.load(Ordering::SeqCst));
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        }
    };
    let refuse = |mut stream: tokio::net::TcpStream| async move {
        use tokio::io::AsyncWriteExt as _;
        let busy = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";
        let _ = stream.write_all(busy).await;
    };
    let thread = crate::listen::spawn("weir-http", listener, MAX_CONNECTIONS, s, serve, refuse)?;
    Ok(Endpoint { thread, running, stop, addr: local })
}

fn respond(req: &Request<hyper::body::Incoming>, job: &Job, running: bool) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    let text = "text/plain; charset=utf-8";
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, CONTENT_TYPE, encode(&job.name, &job.metrics, running)),
        (&Method::GET, "/api/job") => reply(StatusCode::OK, "application/json", api(job, running).to_string()),
        (&Method::GET, "/") => reply(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.to_string()),
        // Browsers ask; there is none.
        (&Method::GET, "/favicon.ico") => reply(StatusCode::NO_CONTENT, text, String::new()),
        (&Method::GET, _) => reply(StatusCode::NOT_FOUND, text, "not found: weir serves /, /api/job and /metrics\n".into()),
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, text, "only GET\n".into()),
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

/// The job's counters in the OpenMetrics text format (what Prometheus scrapes).
pub fn encode(job: &str, metrics: &JobMetrics, running: bool) -> String {
    let mut reg = Registry::default();
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut per_node = |name: &str, help: &str, read: &dyn Fn(&weir_core::status::NodeMetrics) -> u64| {
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
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    for (n, m) in &metrics.nodes {
        for (subtask, w) in m.watermarks().into_iter().enumerate().filter(|(_, w)| *w != i64::MIN && *w != i64::MAX) {
            let labels = SubtaskLabels { job: job.into(), operator: n.clone(), subtask: subtask.to_string() };
            watermark.get_or_create(&labels).set(w as f64 / 1000.0);
            lag.get_or_create(&labels).set(now_ms.saturating_sub(w) as f64 / 1000.0);
        }
    }
    // Where each task's thread spends its time (Flink's busy / idle / backpressured time),
    // by the node at the head of the task.
    for (i, (name, help)) in [
        ("weir_task_busy", "Time the subtask's task spent processing (counted by the node heading the task)"),
        ("weir_task_idle", "Time the subtask's task spent waiting for input"),
        ("weir_task_backpressured", "Time the subtask's task spent waiting for room in a full downstream channel"),
    ]
    .into_iter()
    .enumerate()
    {
        let family = Family::<SubtaskLabels, Counter<f64, AtomicU64>>::default();
        for (n, m) in &metrics.nodes {
            for (subtask, t) in m.task_time().into_iter().enumerate() {
                let labels = SubtaskLabels { job: job.into(), operator: n.clone(), subtask: subtask.to_string() };
                family.get_or_create(&labels).inc_by(t[i] as f64 / 1e9);
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
    use super::*;

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
            "# TYPE weir_records_in counter",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        assert!(encode("j", &m, false).contains("weir_job_running{job=\"j\"} 0.0"));
    }
}
