//! The seed programs of Flink's tutorial, keyed state at parallelism 1 and 4, key selectors,
//! and records crossing the plugin boundary unchanged.

use std::collections::BTreeMap;

use crate::support::*;

fn collection_job(values: &str, kind: &str, plugin_name: &str) -> String {
    format!(
        "[source.numbers]\nkind = \"collection\"\nvalues = {values}\n\n[operator.op]\nkind = \"{kind}\"\ninput = \"numbers\"\nplugin = \"{}\"\n\n[sink.out]\nkind = \"print\"\ninput = \"op\"\n",
        plugin(plugin_name).display()
    )
}

fn printed_values(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn map_doubles_the_collection() {
    let (_d, job) = job_file(&collection_job("[1, 2, 3, 4, 5]", "map", "double"));
    let (out, _, m) = run_job(&job, &[]);
    assert_eq!(printed_values(&out), ["2", "4", "6", "8", "10"]);
    assert_eq!(dead_letters(&m), 0);
}

#[test]
fn map_config_reaches_init() {
    let text = collection_job("[1, 2]", "map", "double").replace("input = \"numbers\"", "input = \"numbers\"\nconfig = { factor = 10 }");
    let (_d, job) = job_file(&text);
    let (out, _, _) = run_job(&job, &[]);
    assert_eq!(printed_values(&out), ["10", "20"]);
}

#[test]
fn filter_keeps_even_numbers() {
    let (_d, job) = job_file(&collection_job("[1, 2, 3, 4, 5, 6]", "filter", "even"));
    let (out, _, _) = run_job(&job, &[]);
    assert_eq!(printed_values(&out), ["2", "4", "6"]);
}

#[test]
fn flat_map_splits_sentences_into_words() {
    let (_d, job) = job_file(&collection_job("[\"to be or\", \"not to be\"]", "flat-map", "words"));
    let (out, _, _) = run_job(&job, &[]);
    assert_eq!(printed_values(&out), ["\"to\"", "\"be\"", "\"or\"", "\"not\"", "\"to\"", "\"be\""]);
}

/// What Flink's KeyedProcessFunction with the same three states emits, computed here
/// independently: per key in arrival order.
fn expected_keyed_rows(input: &[(String, String)]) -> Vec<serde_json::Value> {
    let mut count: BTreeMap<&str, u64> = BTreeMap::new();
    let mut items: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut per_item: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    input
        .iter()
        .map(|(u, i)| {
            *count.entry(u).or_default() += 1;
            items.entry(u).or_default().push(i);
            *per_item.entry(u).or_default().entry(i).or_default() += 1;
            serde_json::json!({"user_id": u, "count": count[u.as_str()], "items": items[u.as_str()], "item_counts": per_item[u.as_str()]})
        })
        .collect()
}

#[test]
fn keyed_value_list_and_map_state_match_flink_at_parallelism_1_and_4() {
    let input: Vec<(String, String)> =
        (0..400).map(|i| (format!("user{}", (i * 7) % 23), ["book", "pen", "cup"][i % 3].to_string())).collect();
    let values: Vec<serde_json::Value> = input.iter().map(|(u, i)| serde_json::json!({"user_id": u, "item": i})).collect();
    let toml_values = format!(
        "[{}]",
        values.iter().map(|v| format!("{{ user_id = {}, item = {} }}", v["user_id"], v["item"])).collect::<Vec<_>>().join(", ")
    );
    let text = format!(
        "[source.events]\nkind = \"collection\"\nvalues = {toml_values}\n\n[operator.state]\nkind = \"process\"\ninput = \"events\"\nkey-by = \"user_id\"\nplugin = \"{}\"\n\n[sink.out]\nkind = \"print\"\ninput = \"state\"\n",
        plugin("keyed_state").display()
    );
    let (_d, job) = job_file(&text);
    let want = sorted(expected_keyed_rows(&input));
    for p in ["1", "4"] {
        let (out, _, m) = run_job(&job, &[format!("parallelism={p}")]);
        let got: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(sorted(got), want, "parallelism {p}");
        assert_eq!(dead_letters(&m), 0);
    }
}

#[test]
fn key_selector_plugin_partitions_by_derived_key() {
    let text = format!(
        "[source.mails]\nkind = \"collection\"\nvalues = [{{ email = \"a@X.org\", item = \"1\" }}, {{ email = \"b@x.ORG\", item = \"2\" }}, {{ email = \"c@y.net\", item = \"3\" }}, {{ nomail = 1 }}]\n\n[operator.state]\nkind = \"process\"\ninput = \"mails\"\nkey-by = {{ plugin = \"{}\" }}\nplugin = \"{}\"\n\n[sink.out]\nkind = \"print\"\ninput = \"state\"\n\n[dead-letter]\nkind = \"discard\"\n",
        plugin("domain_key").display(),
        plugin("keyed_state").display()
    );
    let (_d, job) = job_file(&text);
    let (out, _, m) = run_job(&job, &["parallelism=3".into()]);
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let max_x = rows.iter().filter(|r| r["user_id"] == "x.org").map(|r| r["count"].as_u64().unwrap_or(0)).max();
    assert_eq!(max_x, Some(2), "both x.org mails share one key: {rows:?}");
    assert!(rows.iter().any(|r| r["user_id"] == "y.net" && r["count"] == 1));
    assert_eq!(dead_letters(&m), 1, "the record without `email` is dead-lettered");
}

/// Records cross the plugin boundary and come back byte for byte: the `identity` map over
/// text lines (log lines, malformed ones, non-ASCII, a 100 KB line, empty lines), at batch
/// sizes that put the lines in one, several and many calls; copied back (`identity`) and
/// kept by the host when the plugin answers them unchanged (`passthrough`).
#[test]
fn identity_map_returns_every_line_byte_for_byte() {
    let case = &cases()[0].1;
    let logs = std::fs::read_to_string(case.join("logs.jsonl")).expect("logs");
    let mut lines: Vec<String> = logs.lines().take(2000).map(String::from).collect();
    lines.extend(["".into(), "grüße, 世界 \u{1F980}".into(), "x".repeat(100_000), "{\"a\": [1, 2, {\"b\": null}]}".into(), "".into()]);
    let input = lines.join("\n") + "\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let (inp, out) = (dir.path().join("in.txt"), dir.path().join("out.txt"));
    std::fs::write(&inp, &input).expect("write input");
    for name in ["identity", "passthrough"] {
        let job = format!(
            "[source.lines]\nkind = \"file\"\nformat = \"text\"\npath = \"{}\"\n\n[operator.same]\nkind = \"map\"\ninput = \"lines\"\nplugin = \"{}\"\n\n[sink.out]\nkind = \"file\"\ninput = \"same\"\npath = \"{}\"\n",
            inp.display(),
            plugin(name).display(),
            out.display()
        );
        let (_d, job) = job_file(&job);
        for batch in [1, 7, 1024] {
            let (_, _, m) = run_job(&job, &[format!("batch-size={batch}")]);
            assert_eq!(dead_letters(&m), 0, "{name}, batch {batch}");
            let got = std::fs::read_to_string(&out).expect("output");
            assert!(got == input, "{name}, batch {batch}: the output differs from the input ({} vs {} bytes)", got.len(), input.len());
        }
    }
}
