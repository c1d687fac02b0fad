//! The house keeps its shape: inside each crate of the host and the SDK, modules never
//! import each other in a circle (crates cannot), judged from every `crate::MODULE` a
//! module's source names, doc links included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::root;

/// Module name → the modules of the same crate it names. A module is a file of `src/`
/// (`mod.rs` and `lib.rs` aside) or a folder of them.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("src folder").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    for f in files {
        let rel = f.strip_prefix(src).expect("inside src");
        let first = rel.components().next().expect("a name").as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if first == "lib" || first == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("source");
        let names = graph.entry(first.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let name: String = text[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != first {
                names.insert(name);
            }
        }
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    graph.values_mut().for_each(|v| v.retain(|n| known.contains(n)));
    graph
}

/// A circle in `graph`, as the names along it, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut c = path[at..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_never_import_each_other_in_a_circle() {
    let crates = [
        "host",
        "host/connectors",
        "host/core",
        "host/job",
        "host/plugin",
        "host/runtime",
        "host/state",
        "host/window",
        "guest-sdk",
        "guest-sdk/macro",
        "wit/abi/batch",
        "wit/abi/json",
    ];
    for c in crates {
        let graph = module_graph(&root().join(c).join("src"));
        assert!(c != "host/runtime" || graph.len() >= 5, "{c}: the modules were not found");
        if let Some(path) = circle(&graph) {
            panic!("{c}: modules import each other in a circle: {}", path.join(" → "));
        }
    }
    // The check finds a circle where there is one.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["a".to_string()].into());
    assert_eq!(circle(&g), Some(vec!["a".to_string(), "b".into(), "a".into()]));
}
