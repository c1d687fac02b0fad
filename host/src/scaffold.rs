//! `weir new NAME --lang rust|python|js|c`: a plugin folder that builds and runs as it is.
//!
//! Each has the operator (a keyed process function that counts the records of each key),
//! `build.sh` (the one command that makes `NAME.wasm`), `test.sh` (its unit tests on the
//! build machine, through the language's test harness), and `job.toml` (the built-in
//! generator through the operator to stdout). The Python, JavaScript and C SDKs and the WIT
//! contract are copied in (they are a few files, and the folder then builds wherever it is);
//! a Rust plugin depends on the SDK crate where this `weir` was built from.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// A plugin language `weir new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with the weir-sdk crate (cargo, wasm32-wasip2).
    Rust,
    /// Python with guest-sdk/python (componentize-py).
    Python,
    /// JavaScript with guest-sdk/js (componentize-js).
    Js,
    /// C with guest-sdk/c (clang, wasi-libc, wit-bindgen, wasm-tools).
    C,
}

impl Lang {
    /// The language's name as people write it.
    pub fn label(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
        }
    }
}

const WIT: &str = include_str!("../../wit/weir.wit");
const JOB: &str = include_str!("scaffold/job.toml");

/// (path in the new folder, template) per language; `{{module}}` in a path is the module name.
fn files(lang: Lang) -> Vec<(&'static str, &'static str)> {
    match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("scaffold/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("scaffold/rust/lib.rs")),
            ("build.sh", include_str!("scaffold/rust/build.sh")),
            ("test.sh", include_str!("scaffold/rust/test.sh")),
        ],
        Lang::Python => vec![
            ("{{module}}.py", include_str!("scaffold/python/op.py")),
            ("app.py", include_str!("scaffold/python/app.py")),
            ("test_{{module}}.py", include_str!("scaffold/python/test_op.py")),
            ("build.sh", include_str!("scaffold/python/build.sh")),
            ("test.sh", include_str!("scaffold/python/test.sh")),
            ("weir/__init__.py", include_str!("../../guest-sdk/python/weir/__init__.py")),
            ("weir/_host.py", include_str!("../../guest-sdk/python/weir/_host.py")),
            ("weir/_worlds.py", include_str!("../../guest-sdk/python/weir/_worlds.py")),
            ("weir/testing.py", include_str!("../../guest-sdk/python/weir/testing.py")),
            ("wit/weir.wit", WIT),
        ],
        Lang::Js => vec![
            ("{{module}}.js", include_str!("scaffold/js/op.js")),
            ("component.js", include_str!("scaffold/js/component.js")),
            ("{{module}}.test.js", include_str!("scaffold/js/op.test.js")),
            ("package.json", include_str!("scaffold/js/package.json")),
            ("build.sh", include_str!("scaffold/js/build.sh")),
            ("test.sh", include_str!("scaffold/js/test.sh")),
            ("weir.js", include_str!("../../guest-sdk/js/weir.js")),
            ("testing.js", include_str!("../../guest-sdk/js/testing.js")),
            ("wit/weir.wit", WIT),
        ],
        Lang::C => vec![
            ("{{module}}.c", include_str!("scaffold/c/op.c")),
            ("{{module}}_test.c", include_str!("scaffold/c/op_test.c")),
            ("build.sh", include_str!("scaffold/c/build.sh")),
            ("test.sh", include_str!("scaffold/c/test.sh")),
            ("weir/weir.h", include_str!("../../guest-sdk/c/weir.h")),
            ("weir/weir.c", include_str!("../../guest-sdk/c/weir.c")),
            ("weir/weir_wasm.c", include_str!("../../guest-sdk/c/weir_wasm.c")),
            ("weir/weir_testing.h", include_str!("../../guest-sdk/c/weir_testing.h")),
            ("weir/weir_testing.c", include_str!("../../guest-sdk/c/weir_testing.c")),
            ("weir/build.sh", include_str!("../../guest-sdk/c/build.sh")),
            ("wit/weir.wit", WIT),
        ],
    }
}

/// Writes the plugin `name` in `lang` into the new folder `dir` (default `./NAME`); `sdk` is
/// the Rust SDK crate's folder (default: where this binary was built from). Returns the folder.
pub fn create(name: &str, lang: Lang, dir: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        bail!("plugin name `{name}`: use lowercase letters, digits, `-` and `_`, starting with a letter (e.g. `login-alerts`)");
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{}: the folder exists and is not empty; choose another name or remove it", dir.display());
    }
    let module = name.replace('-', "_");
    let class: String = module.split('_').filter(|p| !p.is_empty()).map(|p| p[..1].to_ascii_uppercase() + &p[1..]).collect();
    let sdk = match sdk {
        Some(p) => p,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let sdk = std::fs::canonicalize(&sdk).unwrap_or(sdk);
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{module}}", &module)
            .replace("{{crate}}", &module)
            .replace("{{class}}", &class)
            .replace("{{lang}}", lang.label())
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    let mut all = files(lang);
    all.push(("job.toml", JOB));
    for (path, text) in all {
        let path = dir.join(fill(path));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create the folder", parent.display()))?;
        }
        std::fs::write(&path, fill(text)).with_context(|| format!("{}: cannot write it", path.display()))?;
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("{}: cannot make it executable", path.display()))?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fill_every_placeholder_and_bad_names_are_refused() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = create("login-alerts", lang, Some(tmp.path().join("p")), None).unwrap();
            for entry in walk(&dir) {
                let text = std::fs::read_to_string(&entry).unwrap();
                for p in ["{{name}}", "{{module}}", "{{crate}}", "{{class}}", "{{lang}}", "{{sdk}}"] {
                    assert!(!text.contains(p), "{} keeps {p}", entry.display());
                }
            }
            let again = create("login-alerts", lang, Some(dir.clone()), None).unwrap_err().to_string();
            assert!(again.contains("exists and is not empty"), "{again}");
        }
        let err = create("Bad Name", Lang::Python, None, None).unwrap_err().to_string();
        assert!(err.contains("plugin name `Bad Name`"), "{err}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
