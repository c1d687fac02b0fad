//! Capability grants: a plugin reads what its operator was granted (a directory, an
//! environment variable, the wall clock) and nothing else; a denied access is an error for
//! that record, which goes to the dead letters with the reason, and the job goes on.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The same input through two `lookup` operators: `granted` may read `geo/`, see
/// `WEIR_TEST_GRANTED` and the wall clock; `bare` is granted nothing.
fn grants_job(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("geo")).expect("geo");
    std::fs::write(dir.join("geo/eu.txt"), "Europe\n").expect("geo file");
    std::fs::create_dir_all(dir.join("secret")).expect("secret");
    std::fs::write(dir.join("secret/key.txt"), "hunter2\n").expect("secret file");
    let input = [
        r#"{"id": 1, "file": "geo/eu.txt"}"#,
        r#"{"id": 2, "file": "secret/key.txt"}"#,
        r#"{"id": 3, "file": "../secret/key.txt"}"#,
        r#"{"id": 4, "env": "WEIR_TEST_GRANTED"}"#,
        r#"{"id": 5, "env": "WEIR_TEST_DENIED"}"#,
        r#"{"id": 6, "clock": true}"#,
    ];
    std::fs::write(dir.join("in.jsonl"), input.join("\n") + "\n").expect("input");
    let lookup = plugin("lookup");
    let text = format!(
        r#"
[source.in]
kind = "file"
path = "{d}/in.jsonl"

[operator.granted]
kind = "map"
input = "in"
plugin = "{lookup}"
grants = {{ read = ["geo"], env = ["WEIR_TEST_GRANTED"], clock = true }}

[operator.bare]
kind = "map"
input = "in"
plugin = "{lookup}"

[sink.granted-out]
kind = "file"
input = "granted"
path = "{d}/granted.jsonl"

[sink.bare-out]
kind = "file"
input = "bare"
path = "{d}/bare.jsonl"

[dead-letter]
kind = "file"
path = "{d}/dead.jsonl"
"#,
        lookup = lookup.display(),
        d = dir.display()
    );
    let job = dir.join("job.toml");
    std::fs::write(&job, text).expect("job");
    job
}

/// Rows of `file` by their `id`.
fn by_id(file: &Path) -> std::collections::BTreeMap<u64, serde_json::Value> {
    read_jsonl(file).into_iter().map(|r| (r["id"].as_u64().expect("id"), r)).collect()
}

#[test]
fn a_plugin_reaches_what_it_was_granted_and_nothing_else() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let job = grants_job(dir.path());
    // Both variables are in weir's environment; only one is granted.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", &job.display().to_string()])
        .current_dir(dir.path())
        .env("WEIR_TEST_GRANTED", "yes")
        .env("WEIR_TEST_DENIED", "no")
        .output()
        .expect("run weir");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let granted = by_id(&dir.path().join("granted.jsonl"));
    assert_eq!(granted[&1]["content"], "Europe", "{granted:?}");
    assert_eq!(granted[&4]["value"], "yes", "{granted:?}");
    let now = granted[&6]["now"].as_u64().expect("now");
    assert!(now > 1_700_000_000_000, "the granted wall clock runs: {now}");
    assert_eq!(granted.keys().copied().collect::<Vec<_>>(), [1, 4, 6], "{granted:?}");

    let bare = by_id(&dir.path().join("bare.jsonl"));
    assert_eq!(bare[&6]["now"], 0, "without the grant the wall clock reads the epoch: {bare:?}");
    assert_eq!(bare.keys().copied().collect::<Vec<_>>(), [6], "{bare:?}");

    // Every denied access is a dead letter naming the operator, the record and the reason.
    let dead: Vec<(String, u64, String)> = read_jsonl(&dir.path().join("dead.jsonl"))
        .iter()
        .map(|d| {
            let rec: serde_json::Value = serde_json::from_str(d["value"].as_str().expect("value")).expect("record JSON");
            (
                d["operator"].as_str().expect("operator").to_string(),
                rec["id"].as_u64().expect("id"),
                d["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    let reason = |op: &str, id: u64| {
        dead.iter()
            .find(|(o, i, _)| o == op && *i == id)
            .map(|(_, _, r)| r.clone())
            .unwrap_or_else(|| panic!("no dead letter {op} {id}: {dead:?}"))
    };
    for id in [2, 3] {
        assert!(reason("granted", id).contains("cannot read"), "{}", reason("granted", id));
        assert!(reason("bare", id).contains("cannot read"), "{}", reason("bare", id));
    }
    assert!(reason("bare", 1).contains("cannot read `geo/eu.txt`"), "{}", reason("bare", 1));
    assert!(reason("granted", 5).contains("environment variable `WEIR_TEST_DENIED`"), "{}", reason("granted", 5));
    assert!(reason("bare", 4).contains("environment variable `WEIR_TEST_GRANTED`"), "{}", reason("bare", 4));
    assert_eq!(dead.len(), 2 + 1 + 5, "{dead:?}");
    // The secret's text reached no output.
    for f in ["granted.jsonl", "bare.jsonl", "dead.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join(f)).expect("output");
        assert!(!text.contains("hunter2"), "{f}: {text}");
    }
}

#[test]
fn a_grant_of_a_missing_directory_or_to_no_plugin_is_a_job_file_error() {
    plugins();
    let dir = tempfile::tempdir().expect("tempdir");
    let job = grants_job(dir.path());
    let text = std::fs::read_to_string(&job).expect("job");
    std::fs::write(&job, text.replace(r#"read = ["geo"]"#, r#"read = ["geo", "maps"]"#)).expect("job");
    let j = job.display().to_string();
    fails_with(&["validate", &j], &[&format!("{j}:10: operator.granted.grants.read[1]"), "`maps`", "not a directory"]);

    let (_d, job) = job_file(
        "[source.in]\nkind = \"file\"\npath = \"in.jsonl\"\nevent-time = { field = \"t\" }\n\n[operator.w]\nkind = \"window\"\ninput = \"in\"\nkey-by = \"k\"\nwindow = { type = \"tumbling\", size = \"1s\" }\ngrants = { clock = true }\n\n[sink.out]\nkind = \"print\"\ninput = \"w\"\n",
    );
    fails_with(&["validate", &job.display().to_string()], &["operator.w.grants", "built-in aggregates"]);

    let (_d, job) = job_file(&format!(
        "[source.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\n[operator.m]\nkind = \"map\"\ninput = \"in\"\nplugin = \"{}\"\ngrants = {{ write = [\"/tmp\"] }}\n\n[sink.out]\nkind = \"print\"\ninput = \"m\"\n",
        plugin("lookup").display()
    ));
    let j = job.display().to_string();
    fails_with(&["validate", &j], &[&format!("{j}:9"), "unknown field `write`", "`read`, `env`, `clock`"]);
}
