//! Hostile job files, faults a job must notice, and the control endpoint, tried as a
//! careless operator and an attacker would: each ends in a clean `weir: error:` naming the
//! field and the fix, or in a run; never a panic, a hang or silently lost data.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::*;

const FLAGSHIP: &str = "plugins/log-analyzer/job.toml";
const TUMBLE: &str = "tests/conformance/tumble10s.toml";

/// `weir validate` and `weir run` of `job` with `sets` both fail within 60 s with every
/// needle on stderr (a cycle used to hang `run`).
fn refused(job: &str, sets: &[&str], needles: &[&str]) -> String {
    let mut last = String::new();
    for cmd in ["validate", "run"] {
        let mut args = vec![cmd.to_string(), job.to_string()];
        for s in sets {
            args.extend(["--set".to_string(), s.to_string()]);
        }
        let out = weir_within(&args, &root(), Duration::from_secs(60)).unwrap_or_else(|| panic!("weir {args:?} hung"));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "weir {args:?} should fail cleanly:\n{err}");
        assert!(err.starts_with("weir: error: "), "{err}");
        for n in needles {
            assert!(err.contains(n), "stderr of weir {args:?} lacks {n:?}:\n{err}");
        }
        last = err;
    }
    last
}

#[test]
fn parallelism_is_bounded_by_max_parallelism() {
    plugins();
    refused(FLAGSHIP, &["parallelism=9223372036854775808"], &["(--set parallelism=9223372036854775808)", "expected usize"]);
    refused(FLAGSHIP, &["parallelism=300"], &["parallelism: 300 is more than `max-parallelism` (128)"]);
    refused(FLAGSHIP, &["operator.detect.parallelism=65536"], &["operator.detect.parallelism", "65536 is more than `max-parallelism`"]);
    refused(FLAGSHIP, &["source.logs.parallelism=3000"], &["source.logs.parallelism"]);
    refused(FLAGSHIP, &["max-parallelism=100000"], &["max-parallelism", "between 1 and 32768"]);
    refused(FLAGSHIP, &["batch-size=18446744073709551615"], &["batch-size"]);
    // The same value written in the file names its line.
    let text = std::fs::read_to_string(root().join(TUMBLE))
        .expect("job")
        .replace("name = \"tumble10s\"", "name = \"tumble10s\"\nparallelism = 9223372036854775808");
    let (_d, job) = job_file(&text.replace("../../plugins/dist", &plugins().display().to_string()));
    let j = job.display().to_string();
    let err = refused(&j, &[], &["parallelism"]);
    assert!(err.contains(&format!("{j}:11: parallelism")), "{err}");
}

#[test]
fn empty_inputs_and_cycles_are_refused_naming_the_nodes() {
    plugins();
    refused(TUMBLE, &["operator.parse.input=[]"], &["operator.parse.input", "an empty list"]);
    refused(TUMBLE, &["sink.out.input=[]"], &["sink.out.input", "an empty list"]);
    refused(TUMBLE, &["operator.tumble10s.input=tumble10s"], &["cycle (tumble10s → tumble10s)"]);
    refused(TUMBLE, &["operator.parse.input=tumble10s"], &["cycle", "parse → tumble10s → parse"]);
    refused(TUMBLE, &["operator.parse.input=[\"logs\", \"tumble10s\"]"], &["cycle", "parse → tumble10s → parse"]);
    refused(TUMBLE, &["operator.parse.input=tumble10s.late"], &["cycle", "parse → tumble10s → parse"]);
    refused(FLAGSHIP, &["operator.parse.input=[\"logs\", \"actions60s\"]"], &["cycle", "actions60s", "parse"]);
}

#[test]
fn sliding_windows_with_too_many_windows_per_record_are_refused() {
    plugins();
    let sets = ["operator.tumble10s.window={ type = \"sliding\", size = \"10s\", slide = \"1ms\" }"];
    refused(TUMBLE, &sets, &["operator.tumble10s.window.slide", "10000 windows", "at most 1000"]);
    let ok = weir(&["validate", TUMBLE, "--set", "operator.tumble10s.window={ type = \"sliding\", size = \"10s\", slide = \"10ms\" }"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    refused(TUMBLE, &["operator.tumble10s.allowed-lateness=1000000y"], &["longer than", "100 years"]);
}

#[test]
fn errors_in_set_values_say_they_came_from_set() {
    plugins();
    let err = refused(FLAGSHIP, &["control=10.0.0.1:7070"], &["(--set control=10.0.0.1:7070): control:", "loopback"]);
    assert!(!err.contains("job.toml:"), "no line of the file holds it: {err}");
    let err = refused(FLAGSHIP, &["parallelism=abc"], &["(--set parallelism=abc)"]);
    assert!(!err.contains("job.toml:"), "{err}");
    // A value that is in the file still names its line.
    let err = refused(FLAGSHIP, &["operator.detect.parallelism=0"], &["(--set operator.detect.parallelism=0)", "at least 1"]);
    assert!(!err.contains("job.toml:"), "{err}");
    let j = root().join(FLAGSHIP).display().to_string();
    let text = std::fs::read_to_string(&j).expect("job").replace("parallelism = 2", "parallelism = 0");
    let (_d, job) = job_file(&text.replace("../dist", &plugins().display().to_string()));
    let j = job.display().to_string();
    refused(&j, &[], &[&format!("{j}:10: parallelism")]);
}

/// Mutants of one shipped job file: lines deleted or duplicated, tables duplicated, values of
/// another type, huge and negative numbers, negative and huge durations, cycles, garbage.
fn mutants(text: &str, rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<String> {
    const VALUES: [&str; 16] = [
        "9223372036854775807",
        "18446744073709551615",
        "-1",
        "0",
        "1e308",
        "\"-5s\"",
        "\"0ms\"",
        "\"1000000000y\"",
        "\"1ms\"",
        "[]",
        "{}",
        "true",
        "\"\"",
        "\"tumble10s\"",
        "[\"logs\", \"parse\"]",
        "\"x.y.z\"",
    ];
    let mut out = Vec::new();
    while out.len() < n {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for _ in 0..rng.random_range(1..=3) {
            let i = rng.random_range(0..lines.len());
            match rng.random_range(0..7) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                2 => {
                    // Duplicate a table with its body.
                    let starts: Vec<usize> = (0..lines.len()).filter(|&j| lines[j].starts_with('[')).collect();
                    if let Some(&s) = starts.get(rng.random_range(0..starts.len().max(1))) {
                        let e = (s + 1..lines.len()).find(|&j| lines[j].starts_with('[')).unwrap_or(lines.len());
                        let block: Vec<String> = lines[s..e].to_vec();
                        lines.extend(block);
                    }
                }
                3 | 4 => {
                    // Another value for a field.
                    if let Some((k, _)) = lines[i].split_once(" = ") {
                        lines[i] = format!("{k} = {}", VALUES[rng.random_range(0..VALUES.len())]);
                    }
                }
                5 => {
                    // A field of the table moved to the top level, or a known field set anew.
                    let field = ["parallelism", "input", "max-parallelism", "batch-size", "size", "gap", "slide", "count", "every"]
                        [rng.random_range(0..9)];
                    lines.insert(i, format!("{field} = {}", VALUES[rng.random_range(0..VALUES.len())]));
                }
                _ => {
                    let junk = ["[[", "= = =", "\"unterminated", "[operator.]", "key-by = [", "\u{0}", "[sink.x]\nkind = \"file\""];
                    lines.insert(i, junk[rng.random_range(0..junk.len())].to_string());
                }
            }
        }
        out.push(lines.join("\n") + "\n");
    }
    out
}

/// Every mutant of the shipped job files ends in a clean `weir: error:` or a valid job, in
/// `validate`; those that validate also run to their end or to a clean error (on a small
/// input). No panic (exit 101), no signal, no hang.
#[test]
fn job_file_mutants_end_in_a_clean_error_or_a_run() {
    let dist = plugins();
    let case = cases().remove(0).1;
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("logs.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(case.join("logs.jsonl")).expect("logs").lines().take(300).map(String::from).collect();
    std::fs::write(&small, lines.join("\n") + "\n").expect("small input");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let shipped =
        [FLAGSHIP, TUMBLE, "tests/conformance/session300s.toml", "tests/conformance/hop10s_5s.toml", "tests/conformance/actions60s.toml"];
    let (mut errors, mut valid, mut ran) = (0, 0, 0);
    for (fi, file) in shipped.iter().enumerate() {
        let text = std::fs::read_to_string(root().join(file)).expect("job file");
        // Plugins by absolute path, so the mutants can live in a temp folder.
        let text = text.replace("../../plugins/dist", &dist.display().to_string()).replace("../dist", &dist.display().to_string());
        for (mi, m) in mutants(&text, &mut rng, 50).into_iter().enumerate() {
            let job = dir.path().join(format!("m{fi}-{mi}.toml"));
            std::fs::write(&job, &m).expect("mutant");
            let j = job.display().to_string();
            let args = vec!["validate".to_string(), j.clone()];
            let out = weir_within(&args, dir.path(), Duration::from_secs(60)).unwrap_or_else(|| panic!("validate hung on {j}:\n{m}"));
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            match out.status.code() {
                Some(0) => valid += 1,
                Some(1) if err.starts_with("weir: error: ") && !err.contains("panicked") => {
                    errors += 1;
                    continue;
                }
                c => panic!("validate of {j} ended with {c:?}:\n{err}\n--- mutant:\n{m}"),
            }
            // A valid mutant runs on a small input, bounded.
            let mut args = vec!["run".to_string(), j.clone()];
            // Every mutant reads the small file (a generator's own fields are left out).
            for s in ["source.logs.kind=file".to_string(), format!("source.logs.path={}", small.display()), "source.logs.rate=1e9".into()] {
                args.extend(["--set".to_string(), s]);
            }
            let out = weir_within(&args, dir.path(), Duration::from_secs(90)).unwrap_or_else(|| panic!("run hung on {j}:\n{m}"));
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            match out.status.code() {
                Some(0) => ran += 1,
                Some(1) if err.contains("weir: error: ") && !err.contains("panicked") => errors += 1,
                c => panic!("run of {j} ended with {c:?}:\n{err}\n--- mutant:\n{m}"),
            }
        }
    }
    assert!(errors > 50 && valid > 10 && ran > 5, "{errors} errors, {valid} valid, {ran} ran: the mutants should try both paths");
}

/// A job writing to a closed pipe (`weir run ... | head -1`) stops with a clear message,
/// even on an unbounded source, instead of counting lines nobody reads as written.
#[test]
fn a_closed_stdout_stops_the_job_with_a_clear_message() {
    plugins();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", FLAGSHIP, "--set", "source.logs.count=1000000000000", "--set", "source.logs.rate=1e9"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weir");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
    assert!(first.contains("> {"), "{first}");
    // The reader goes away here (the pipe's end is dropped with the reader).
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the job went on writing into a closed pipe");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("weir: error:") && err.contains("closed by its reader (broken pipe) after"), "{err}");
}

/// A checkpoint folder that cannot be made is an error at start, before any record flows.
#[test]
fn an_unwritable_checkpoint_dir_fails_at_start() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a folder").expect("write");
    let out = dir.path().join("out.jsonl");
    let args: Vec<String> = [
        "run",
        FLAGSHIP,
        "--set",
        "source.logs.count=1000000000000",
        "--set",
        &format!("checkpoint.dir=file://{}/ck", blocker.display()),
        "--set",
        "checkpoint.interval=10s",
        "--set",
        "sink.metrics.kind=file",
        "--set",
        &format!("sink.metrics.path={}", out.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = weir_within(&args, &root(), Duration::from_secs(60)).expect("fails at start, not after the run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("checkpoint.dir") && err.contains("cannot create it"), "{err}");
    assert!(!out.exists() || std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) == 0, "nothing ran");
}

/// A job in `dir`: file `in.jsonl` → the `faulty` map → file `out.jsonl`; dead letters to
/// `dead.jsonl`; `top` before the tables. Returns the job file.
fn faulty_job(dir: &Path, top: &str) -> std::path::PathBuf {
    let text = format!(
        "{top}\n[source.in]\nkind = \"file\"\npath = \"{}\"\n\n[operator.faulty]\nkind = \"map\"\ninput = \"in\"\nplugin = \"{}\"\n\n[sink.out]\nkind = \"file\"\ninput = \"faulty\"\npath = \"{}\"\n\n[dead-letter]\nkind = \"file\"\npath = \"{}\"\n",
        dir.join("in.jsonl").display(),
        plugin("faulty").display(),
        dir.join("out.jsonl").display(),
        dir.join("dead.jsonl").display()
    );
    let job = dir.join("job.toml");
    std::fs::write(&job, text).expect("job");
    job
}

fn reasons(dir: &Path) -> Vec<(i64, String)> {
    read_jsonl(&dir.join("dead.jsonl"))
        .iter()
        .map(|d| (d["position"].as_i64().expect("position"), d["reason"].as_str().expect("reason").to_string()))
        .collect()
}

/// A trap's dead letter names its cause: the panic's message, the memory cap, the deadline.
#[test]
fn trap_reasons_name_the_cause() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let job = faulty_job(dir.path(), "plugin-deadline = \"2s\"");
    std::fs::write(dir.path().join("in.jsonl"), "{\"n\": 13}\n{\"n\": 512}\n{\"n\": 64}\n{\"n\": 1}\n{\"n\": 99}\n").expect("input");
    let (_, _, m) = run_job(&job, &[]);
    let r = reasons(dir.path());
    assert_eq!(dead_letters(&m), 4, "{r:?}");
    let at = |p: i64| r.iter().find(|(q, _)| *q == p).map(|(_, why)| why.clone()).unwrap_or_default();
    assert!(at(1).contains("plugin trapped: panicked at") && at(1).contains("unlucky 13"), "{}", at(1));
    assert!(!at(1).contains("wasm backtrace"), "{}", at(1));
    assert!(at(2).contains("memory limit of 512 MiB reached"), "{}", at(2));
    assert!(at(3).contains("memory limit of 512 MiB reached"), "the answer outgrew the cap: {}", at(3));
    // The batch trapped on the panic first: the looping record's retry has the full deadline.
    assert!(at(5).contains("deadline of 2s exceeded (`plugin-deadline`)"), "{}", at(5));
    assert_eq!(read_jsonl(&dir.path().join("out.jsonl")).len(), 1);
}

/// A plugin that loops on some records costs a full deadline once and a tenth of it for a
/// record retried alone; past `plugin-deadline-budget` overruns the job fails, naming the
/// operator and the setting, instead of spending a deadline on every such record.
#[test]
fn a_looping_plugin_spends_its_deadline_budget_and_fails_the_job() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let job = faulty_job(dir.path(), "plugin-deadline = \"1s\"\nbatch-size = 10");
    // A loop on every 5th record of 2,000: 400 full deadlines would be 400 s.
    let input: String = (0..2000).map(|i| format!("{{\"n\": {}}}\n", if i % 5 == 4 { 99 } else { i % 5 })).collect();
    std::fs::write(dir.path().join("in.jsonl"), input).expect("input");
    let out = weir_within(&["run".to_string(), job.display().to_string()], dir.path(), Duration::from_secs(120))
        .expect("the job fails within its budget, not after a deadline per record");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("operator `faulty` (subtask 0)") && err.contains("`plugin-deadline-budget` = 3"), "{err}");
    // The first batch's looping records were dead-lettered with the retry's share.
    let r = reasons(dir.path());
    assert!(r.iter().any(|(_, why)| why.contains("deadline of 100ms exceeded")), "{r:?}");
    // With a budget that covers every looping record, the job ends and loses nothing.
    std::fs::write(dir.path().join("in.jsonl"), "{\"n\": 99}\n{\"n\": 1}\n{\"n\": 99}\n{\"n\": 2}\n").expect("input");
    let (_, _, m) = run_job(&job, &["plugin-deadline-budget=10".into()]);
    assert_eq!(dead_letters(&m), 2);
    assert_eq!(read_jsonl(&dir.path().join("out.jsonl")).len(), 2);
    refused_set(&job, "plugin-deadline-budget=0", "plugin-deadline-budget");
}

fn refused_set(job: &Path, set: &str, needle: &str) {
    fails_with(&["validate", &job.display().to_string(), "--set", set], &[needle]);
}

/// A line longer than `max-line-bytes` goes to the dead letters with its first bytes and its
/// length, never whole; a line that is not UTF-8 keeps its bytes recoverable as base64.
#[test]
fn long_lines_and_invalid_utf8_reach_the_dead_letters_recoverably() {
    use base64::Engine as _;
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let job = faulty_job(dir.path(), "");
    let long = format!("{{\"n\": 1, \"pad\": \"{}\"}}", "x".repeat(5 << 20));
    let bad_utf8: &[u8] = b"{\"n\": \xff\xfe 2}";
    let mut input = Vec::new();
    for part in [b"{\"n\": 5}".as_slice(), long.as_bytes(), bad_utf8, b"{\"n\": 6}"] {
        input.extend_from_slice(part);
        input.push(b'\n');
    }
    std::fs::write(dir.path().join("in.jsonl"), &input).expect("input");
    let (_, _, m) = run_job(&job, &[]);
    assert_eq!(dead_letters(&m), 2);
    let dl = read_jsonl(&dir.path().join("dead.jsonl"));
    let long_dl = dl.iter().find(|d| d["position"] == 2).expect("the long line's dead letter");
    let why = long_dl["reason"].as_str().expect("reason");
    assert!(why.contains(&format!("line of {} bytes", long.len() + 1)) && why.contains("`max-line-bytes` (1048576)"), "{why}");
    assert_eq!(long_dl["value"].as_str().map(str::len), Some(256), "the first bytes only");
    let utf8_dl = dl.iter().find(|d| d["position"] == 3).expect("the non-UTF-8 line's dead letter");
    let raw = base64::engine::general_purpose::STANDARD.decode(utf8_dl["value_base64"].as_str().expect("value_base64")).expect("base64");
    assert_eq!(raw, bad_utf8);
    assert_eq!(read_jsonl(&dir.path().join("out.jsonl")).len(), 2, "the lines around them pass");
    // A bound of the job's choosing; lines at the bound still pass.
    let (_, _, m) = run_job(&job, &["source.in.max-line-bytes=8".into()]);
    assert_eq!(dead_letters(&m), 2, "only `{{\"n\": 5}}` and `{{\"n\": 6}}` are 8 bytes or shorter");
    assert!(reasons(dir.path()).iter().all(|(_, why)| why.contains("longer than `max-line-bytes` (8)")));
    refused_set(&job, "source.in.max-line-bytes=0", "source.in.max-line-bytes");
}

/// One request line to the endpoint; the answer line (empty when the connection closed).
fn ask(addr: &str, line: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let _ = s.write_all(line);
    let mut answer = String::new();
    let _ = BufReader::new(s).read_line(&mut answer);
    answer
}

/// The control endpoint serves only who holds the job's token, reads no more than a few
/// KB a request, serves a bounded number of connections, and never echoes a request.
#[test]
fn the_control_endpoint_wants_the_token_and_bounds_requests() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let control_dir = dir.path().join("control");
    // The job's temporary folder, where its checkpoints on demand go (it has no `[checkpoint]`).
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", FLAGSHIP, "--set", &format!("control={addr}"), "--set", "source.logs.count=1000000000000"])
        .args(["--set", "sink.alerts.kind=discard", "--set", "sink.metrics.kind=discard"])
        .env("WEIR_CONTROL_DIR", &control_dir)
        .env("TMPDIR", &tmp)
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for_listener(&addr, Duration::from_secs(60));
    let token_file = control_dir.join(format!("control-127.0.0.1-{}.token", addr.rsplit(':').next().expect("port")));
    let result = std::panic::catch_unwind(|| {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&token_file).expect("token file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the job's user may read the token");
        let token = std::fs::read_to_string(&token_file).expect("token");
        let target = dir.path().join("sp");
        let marker = "ECHO-MARKER-31337";
        // Without the token, with a wrong one, the old word protocol, garbage: refused.
        for line in [
            format!("savepoint {} stop {marker}\n", target.display()),
            format!("{{\"token\": \"{marker}\", \"command\": \"savepoint\", \"dir\": \"{}\", \"stop\": true}}\n", target.display()),
            format!("{{\"command\": \"savepoint\", \"dir\": \"{}\", \"stop\": true, \"x\": \"{marker}\"}}\n", target.display()),
            format!("\u{1b}[2J{marker}\u{0}\n"),
            format!("{{\"token\": \"{token}\", \"command\": \"{marker}\"}}\n"),
        ] {
            let a = ask(&addr, line.as_bytes());
            assert!(a.contains("\"ok\":false"), "{a}");
            assert!(!a.contains(marker), "a request is never echoed: {a}");
        }
        assert!(!target.exists(), "no savepoint was written");
        // 1 MB without a line end: refused at the cap, the connection closed.
        let a = ask(&addr, &vec![b'a'; 1 << 20]);
        assert!(a.contains("request too long"), "{a}");
        // Connections beyond the bound are turned away while the others stay open.
        let held: Vec<std::net::TcpStream> = (0..8).map(|_| std::net::TcpStream::connect(&addr).expect("connect")).collect();
        std::thread::sleep(Duration::from_millis(300));
        let a = ask(&addr, b"{}\n");
        assert!(a.contains("too many connections"), "{a}");
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        // `weir savepoint` with a token file that is not there says where it looked.
        let out = weir(&["savepoint", "--control", &addr, &target.display().to_string(), "--token-file", "/no/such/token"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the job's control token /no/such/token"));
        // With the token (found where the job wrote it), the savepoint is written and the job stops.
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["savepoint", "--control", &addr, &target.display().to_string(), "--stop"])
            .env("WEIR_CONTROL_DIR", &control_dir)
            .output()
            .expect("savepoint");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(target.join("_metadata").exists());
    });
    let status = {
        let started = Instant::now();
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(status.is_some_and(|s| s.success()), "the job stopped with its savepoint");
    assert!(!token_file.exists(), "the token file goes with the job");
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").map(|e| e.expect("entry").file_name()).collect();
    assert!(left.is_empty(), "the checkpoints on demand (and the plugins kept with them) go with the job: {left:?}");
}
