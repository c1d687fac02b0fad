//! Compiled plugins cached on disk: a second start of a job, or a reload of a version seen
//! before, loads machine code instead of compiling the component again (seconds for a large
//! one, e.g. a Python plugin with its interpreter).
//!
//! An entry is named by the component's hash and the engine's compatibility hash (wasmtime's
//! version and every setting that changes the code, such as the deadline's interruption
//! checks), so a stale entry is never even looked at. Its file holds a magic, the xxHash64 of
//! the code, and the code; an entry whose hash does not match (truncated, corrupt, written by
//! someone else) is compiled again and replaced, never loaded. The folder is the user's own
//! (mode 0700): `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir/compiled`, else
//! `~/.cache/weir/compiled`; `WEIR_CACHE_DIR=off` turns the cache off.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"WEIRCODE";

/// The cache folder, or `None` when it is turned off or no home is known.
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os("WEIR_CACHE_DIR") {
        Some(d) if d == "off" => None,
        Some(d) => Some(PathBuf::from(d)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(|d| PathBuf::from(d).join("weir/compiled"))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/weir/compiled"))),
    }
}

/// The entry of component `hash` compiled by `engine`.
fn entry(dir: &Path, engine: &Engine, hash: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{hash}-{:016x}.code", h.finish()))
}

fn checksum(code: &[u8]) -> [u8; 8] {
    twox_hash::XxHash64::oneshot(0, code).to_le_bytes()
}

/// The code in an entry's bytes, when they are whole.
fn verified(bytes: &[u8]) -> Option<&[u8]> {
    let (magic, rest) = bytes.split_at_checked(MAGIC.len())?;
    let (sum, code) = rest.split_at_checked(8)?;
    (magic == MAGIC && sum == checksum(code)).then_some(code)
}

/// The component `bytes` (of hash `hash`) compiled for `engine`: from the cache when it holds
/// a whole entry for them, else compiled and then stored (a cache that cannot be written only
/// costs the next start a compilation).
pub fn component(engine: &Engine, bytes: &[u8], hash: &str) -> wasmtime::Result<Component> {
    let Some(dir) = dir() else { return Component::new(engine, bytes) };
    let path = entry(&dir, engine, hash);
    if let Ok(stored) = std::fs::read(&path) {
        if let Some(code) = verified(&stored) {
            if let Ok(c) = deserialize(engine, code) {
                return Ok(c);
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Ok(code) = component.serialize() {
        let _ = store(&dir, &path, &code);
    }
    Ok(component)
}

/// Loads code this module wrote and verified.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `code` is what `Component::serialize` wrote into the user's own cache folder,
    // checked against its xxHash64 before this call, for an engine of the same compatibility
    // hash (in the entry's name); wasmtime also checks its header and version.
    unsafe { Component::deserialize(engine, code) }
}

/// Writes an entry: into a temporary file first, then renamed, so a reader never sees half.
fn store(dir: &Path, path: &Path, code: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(MAGIC)?;
    f.write_all(&checksum(code))?;
    f.write_all(code)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_entries_are_read() {
        let code = b"machine code".to_vec();
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&checksum(&code));
        entry.extend_from_slice(&code);
        assert_eq!(verified(&entry), Some(&code[..]));
        let mut flipped = entry.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        assert_eq!(verified(&flipped), None, "a changed byte");
        assert_eq!(verified(&entry[..entry.len() - 1]), None, "truncated");
        assert_eq!(verified(&entry[..5]), None, "shorter than the header");
        assert_eq!(verified(b"WEIRCOD_12345678machine code"), None, "another magic");
    }
}
