//! Kafka against a real broker (tansu, started by the test on loopback): conformance cases
//! produced by weir into a topic and read back by the log-analyzer and the window jobs give
//! Flink's rows; a broker nobody answers at gives a clear error in bounded time.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// Produces `case`'s lines as they are (malformed ones too) into `topic`, keyed by
/// `user_id`, with the shipped producer job.
pub fn produce(broker: &Broker, case: &Path, topic: &str) {
    let sets = [
        "source.logs.kind=file".to_string(),
        format!("source.logs.path={}", case.join("logs.jsonl").display()),
        "source.logs.format=text".into(),
        "source.logs.rate=1e9".into(),
        format!("sink.kafka.bootstrap={}", broker.addr),
        format!("sink.kafka.topic={topic}"),
        // One record a batch: tansu 0.6 answers a partition's latest offset with the base
        // offset of its last batch + 1, which would end a bounded read that many records
        // early (Kafka answers the last offset + 1, which a bounded source stops at).
        "sink.kafka.properties={ \"batch.num.messages\" = 1, \"linger.ms\" = 0 }".into(),
    ];
    run_job(&root().join("plugins/log-analyzer/produce.toml"), &sets);
}

/// The `--set`s that point a job's source `logs` at `topic`, read to its end.
pub fn from_topic(broker: &Broker, topic: &str) -> Vec<String> {
    vec![
        "source.logs.kind=kafka".to_string(),
        format!("source.logs.bootstrap={}", broker.addr),
        format!("source.logs.topic={topic}"),
        "source.logs.bounded=true".into(),
        "source.logs.start=earliest".into(),
    ]
}

#[test]
fn the_log_analyzer_over_a_three_partition_topic_gives_flinks_alerts() {
    plugins();
    let broker = Broker::start();
    for (name, case) in cases() {
        let topic = format!("logs-{name}");
        broker.create_topic(&topic, 3);
        produce(&broker, &case, &topic);
        let flink_alerts = sorted(read_jsonl(&case.join("flink-alerts.jsonl")));
        for p in [1, 3] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (alerts, dead) = (dir.path().join("alerts.jsonl"), dir.path().join("dead.jsonl"));
            let mut sets = from_topic(&broker, &topic);
            sets.extend([
                format!("source.logs.parallelism={p}"),
                "sink.alerts.kind=file".into(),
                format!("sink.alerts.path={}", alerts.display()),
                "sink.metrics.kind=discard".into(),
                "dead-letter.kind=file".into(),
                format!("dead-letter.path={}", dead.display()),
                "parallelism=2".into(),
            ]);
            let (_, _, m) = run_job(&root().join("plugins/log-analyzer/job.toml"), &sets);
            assert_eq!(
                m["nodes"]["logs"]["records_in"].as_u64(),
                Some(std::fs::read_to_string(case.join("logs.jsonl")).expect("logs").lines().count() as u64),
                "{name} p{p}: every line read once"
            );
            assert!(sorted(read_jsonl(&alerts)) == flink_alerts, "{name} source ×{p}: alerts differ from Flink's");
            let dl = read_jsonl(&dead);
            assert_eq!(dl.len() as u64, malformed(&case), "{name} p{p}");
            // Each names where it was read: topic, partition and offset.
            assert!(
                dl.iter().all(|d| d["source"] == "logs"
                    && d["topic"] == topic.as_str()
                    && d["partition"].as_u64().is_some_and(|p| p < 3)
                    && d["position"].is_u64()
                    && d["reason"].as_str().is_some_and(|r| !r.is_empty())),
                "{dl:?}"
            );
        }
    }
}

/// `topic = { pattern = ... }` reads every topic whose whole name matches when the job
/// starts, and no other: `pat-a` (empty) and `pat-b` (the case), not `pat-bb` (the case
/// again, which would double every alert). Dead letters name the topic they came from.
#[test]
fn a_topic_pattern_reads_the_topics_whose_names_match() {
    plugins();
    let broker = Broker::start();
    let (name, case) = cases().remove(0);
    broker.create_topic("pat-a", 1);
    for topic in ["pat-b", "pat-bb"] {
        broker.create_topic(topic, 3);
        produce(&broker, &case, topic);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (alerts, dead) = (dir.path().join("alerts.jsonl"), dir.path().join("dead.jsonl"));
    let mut sets = from_topic(&broker, "x");
    sets.extend([
        "source.logs.topic={ pattern = \"pat-[ab]\" }".to_string(),
        "sink.alerts.kind=file".into(),
        format!("sink.alerts.path={}", alerts.display()),
        "sink.metrics.kind=discard".into(),
        "dead-letter.kind=file".into(),
        format!("dead-letter.path={}", dead.display()),
    ]);
    let (_, _, m) = run_job(&root().join("plugins/log-analyzer/job.toml"), &sets);
    let lines = std::fs::read_to_string(case.join("logs.jsonl")).expect("logs").lines().count() as u64;
    assert_eq!(m["nodes"]["logs"]["records_in"].as_u64(), Some(lines), "{name}: the case once, from pat-b");
    assert!(sorted(read_jsonl(&alerts)) == sorted(read_jsonl(&case.join("flink-alerts.jsonl"))), "{name}: alerts differ from Flink's");
    let dl = read_jsonl(&dead);
    assert_eq!(dl.len() as u64, malformed(&case), "{name}");
    assert!(dl.iter().all(|d| d["topic"] == "pat-b"), "{dl:?}");

    let (_d, job) = job_file(&format!(
        "[source.in]\nkind = \"kafka\"\nbootstrap = \"{}\"\ntopic = {{ pattern = \"nothing-.*\" }}\n\n[sink.out]\nkind = \"discard\"\ninput = \"in\"\n",
        broker.addr
    ));
    fails_with(&["run", &job.display().to_string()], &["no topic on", "matches `nothing-.*`", "topic.pattern"]);
}

#[test]
fn window_jobs_over_a_one_partition_topic_give_flinks_rows() {
    plugins();
    let broker = Broker::start();
    let (name, case) = cases().remove(0);
    let topic = "logs-one";
    broker.create_topic(topic, 1);
    produce(&broker, &case, topic);
    for (job, kind) in [("tumble10s", "tumble10s"), ("session300s", "session300s")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.jsonl");
        let mut sets = from_topic(&broker, topic);
        sets.extend([format!("sink.out.path={}", out.display()), "parallelism=2".into()]);
        let (_, _, m) = run_job(&root().join(format!("tests/conformance/{job}.toml")), &sets);
        let want = sorted(read_jsonl(&case.join("flink-windows.jsonl")).into_iter().filter(|r| r["kind"] == kind));
        assert!(sorted(read_jsonl(&out)) == want, "{name} {job}: rows differ from Flink's");
        assert_eq!(dead_letters(&m), malformed(&case), "{name} {job}");
    }
}

#[test]
fn a_broker_nobody_answers_at_and_a_missing_topic_are_clear_errors_in_bounded_time() {
    let (_d, job) = job_file("[source.in]\nkind = \"kafka\"\nbootstrap = \"127.0.0.1:9\"\ntopic = \"t\"\nconnect-timeout = \"2s\"\n\n[sink.out]\nkind = \"discard\"\ninput = \"in\"\n");
    let args = vec!["run".to_string(), job.display().to_string()];
    let started = std::time::Instant::now();
    let out = weir_within(&args, &root(), Duration::from_secs(60)).expect("weir ended by itself");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no broker at 127.0.0.1:9 answered within 2s (`connect-timeout`)"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());

    let broker = Broker::start();
    let text = std::fs::read_to_string(&job).expect("job").replace("127.0.0.1:9", &broker.addr);
    std::fs::write(&job, text).expect("job written");
    let out = weir_within(&args, &root(), Duration::from_secs(60)).expect("weir ended by itself");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && err.contains("topic `t` does not exist on"), "{err}");
}

/// A broker that goes down mid-run and comes back (librdkafka's mock cluster, in this
/// process, on loopback) is reconnected to; every record arrives once.
#[test]
fn a_broker_that_goes_down_mid_run_is_reconnected_to_and_nothing_is_lost() {
    let n = 20_000;
    let mock = mock_topic(n);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.jsonl");
    let (_d, job) = job_file(&format!(
        "[source.in]\nkind = \"kafka\"\nbootstrap = \"{}\"\ntopic = \"logs\"\nbounded = true\nstart = \"earliest\"\nrate = 5000\n\n[sink.out]\nkind = \"file\"\ninput = \"in\"\npath = \"{}\"\n",
        mock.bootstrap_servers(),
        out.display()
    ));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", &job.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weir");
    // Down once records flow, for two seconds, then back.
    let started = std::time::Instant::now();
    while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no output in 60 s");
        assert!(child.try_wait().expect("try_wait").is_none(), "the job ended before the broker went down");
        std::thread::sleep(Duration::from_millis(20));
    }
    mock.broker_down(1).expect("down");
    std::thread::sleep(Duration::from_secs(2));
    mock.broker_up(1).expect("up");
    let waited = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(waited.elapsed() < Duration::from_secs(90), "the job did not finish after the broker came back");
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
    assert!(status.success(), "{err}");
    let mut seen: Vec<i64> = read_jsonl(&out).iter().map(|v| v["n"].as_i64().expect("n")).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..n).collect::<Vec<i64>>(), "every record once");
}

/// A mock cluster with topic `logs` (2 partitions) holding `{"n": i}` for i in 0..n.
fn mock_topic(n: i64) -> rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    use rdkafka::producer::{BaseRecord, Producer};
    let mock = rdkafka::mocking::MockCluster::new(3).expect("mock cluster");
    mock.create_topic("logs", 2, 1).expect("topic");
    let producer: rdkafka::producer::BaseProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).create().expect("producer");
    for i in 0..n {
        let value = format!("{{\"n\":{i}}}");
        loop {
            // Both partitions take records from first to last (the sticky partitioner could
            // leave one only the last batch, read after the last checkpoint of a bounded run).
            match producer.send(BaseRecord::<(), _>::to("logs").payload(&value).partition((i % 2) as i32)) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flushed");
    mock
}

/// After each completed checkpoint the source commits its offsets to the consumer group
/// (for lag tools); its own position stays in the checkpoints.
#[test]
fn offsets_of_completed_checkpoints_are_committed_to_the_group() {
    use rdkafka::consumer::Consumer;
    let n = 10_000;
    let mock = mock_topic(n);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_d, job) = job_file(&format!(
        "name = \"lag\"\n[source.in]\nkind = \"kafka\"\nbootstrap = \"{}\"\ntopic = \"logs\"\nbounded = true\nstart = \"earliest\"\nrate = 5000\n\n[sink.out]\nkind = \"discard\"\ninput = \"in\"\n\n[checkpoint]\ninterval = \"100ms\"\ndir = \"{}\"\n",
        mock.bootstrap_servers(),
        dir.path().join("ck").display()
    ));
    let out = weir(&["run", &job.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let consumer: rdkafka::consumer::BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()).set("group.id", "lag").create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition("logs", 0);
    tpl.add_partition("logs", 1);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    let offsets: Vec<i64> = committed.elements().iter().map(|e| e.offset().to_raw().unwrap_or(-1)).collect();
    assert!(offsets.iter().all(|o| *o > 0) && offsets.iter().sum::<i64>() <= n, "group `lag` (the job's name) has {offsets:?}");
}
