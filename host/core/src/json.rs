//! Reading a few fields out of JSON records without building a tree.
//!
//! Event time, key-by fields and aggregate fields name a handful of (dotted) paths in each
//! record. [`extract`] walks the record once, validating all of it as a full parse would,
//! and hands back the raw text of just the wanted values: no `Value` tree, no allocation for
//! the fields it skips.
//!
//! The walk is a hand-written scanner over the text (the `weir-json` crate, which plugins
//! get as `weir_sdk::json`), which accepts a subset of what
//! serde_json accepts: documents nested at most [`MAX_DEPTH`] deep whose object keys have no
//! escapes (every record of the log-analyzer and the conformance inputs). Anything else,
//! including every malformed record, is walked again by serde_json, which has the last word
//! on what is valid and words the error: a third faster than serde_json on the log-analyzer's
//! lines (`bench/examples/scan_loop.rs`, BENCHMARKS.md; `fast_path_agrees_with_serde_json`
//! checks that the two agree).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
pub use weir_json::MAX_DEPTH;
use weir_json::{GiveUp, Layout, Scanner};

/// A dotted path, split: `a.b` is `["a", "b"]`.
pub type Path = Vec<String>;

/// The values [`extract`] found, one slot per path; up to four live on the stack, so reading a
/// record's event time and keys allocates nothing.
pub type Found<'a> = smallvec::SmallVec<[Option<Raw<'a>>; 4]>;

/// The raw text of one JSON value inside a validated document, as it appears there. Kept as
/// bytes: the walk that finds a value has checked its UTF-8 already, and most readers (keys,
/// spans, integers) want the bytes, so none pays for a second check it does not need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a [u8]);

impl<'a> Raw<'a> {
    /// The value's text. Every `Raw` is made from text the scanner or serde_json read, which
    /// is UTF-8, so the empty string this would give otherwise never occurs.
    pub fn get(self) -> &'a str {
        std::str::from_utf8(self.0).unwrap_or_default()
    }

    /// The value's text as bytes.
    pub fn bytes(self) -> &'a [u8] {
        self.0
    }
}

/// Finds the values at `paths` in `json`, one slot per path (`None` when absent), after
/// checking that `json` is one valid JSON document.
pub fn extract<'a>(json: &'a [u8], paths: &[Path], out: &mut Found<'a>) -> Result<(), serde_json::Error> {
    extract_noting_repeats(json, paths, out).map(drop)
}

/// What [`extract_noting_repeats`] noted of a document besides its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noted {
    /// Which paths lead to a member that occurs more than once: bit `i` for path `i` (paths
    /// past the 64th are not told). Every bit is set where the scanner gave up and
    /// serde_json read the text, which does not tell.
    pub repeated: u64,
    /// How many members the document has at the top, when it is an object the scanner read
    /// (repeats and members not asked for included); 0 otherwise.
    pub members: u32,
}

/// [`extract`], also noting which paths lead to a member that occurs more than once, for a
/// caller that takes a member only where it is unambiguous, and how many members the
/// document has (see [`Noted`]).
pub fn extract_noting_repeats<'a>(json: &'a [u8], paths: &[Path], out: &mut Found<'a>) -> Result<Noted, serde_json::Error> {
    extract_in(None, json, paths, out)
}

/// The layout of the last document [`extract_in`] walked whole (`weir_json::Layout`), and
/// which of the paths each of its members answers, by place. A walk that keeps one for the
/// documents of one stream (the lines of one source, mostly alike) walks only their values.
/// Serves walks for top-level paths only (up to 64), of documents that are objects.
#[derive(Debug, Default)]
pub struct Shape {
    layout: Layout,
    /// For each place, the `wanted` entries it answers whole (bit `j` for entry `j`).
    places: Vec<u64>,
}

/// [`extract_noting_repeats`], checking the document against the layout in `shape` first
/// and learning its layout when it has another.
pub fn extract_in<'a>(shape: Option<&mut Shape>, json: &'a [u8], paths: &[Path], out: &mut Found<'a>) -> Result<Noted, serde_json::Error> {
    out.clear();
    out.resize(paths.len(), None);
    let mut wanted: [(usize, &[String]); 8] = [(0, &[]); 8];
    let many: Vec<(usize, &[String])>;
    let wanted = if paths.len() <= wanted.len() {
        for (i, p) in paths.iter().enumerate() {
            wanted[i] = (i, p.as_slice());
        }
        &wanted[..paths.len()]
    } else {
        many = paths.iter().enumerate().map(|(i, p)| (i, p.as_slice())).collect();
        &many
    };
    // The scanner checks UTF-8 inside strings, where it can occur.
    let mut noted = Noted { repeated: 0, members: 0 };
    // Nested paths, and documents that are not objects, are walked as they always were.
    let flat = paths.len() <= 64 && paths.iter().all(|p| p.len() == 1);
    let object = json.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'{');
    if let Some(shape) = shape.filter(|_| flat && object) {
        if shaped(shape, json, wanted, out, &mut noted).is_ok() {
            return Ok(noted);
        }
        out.iter_mut().for_each(|o| *o = None);
        noted = Noted { repeated: 0, members: 0 };
    }
    if document(json, wanted, out, &mut noted).is_ok() {
        return Ok(noted);
    }
    out.iter_mut().for_each(|o| *o = None);
    // Checking UTF-8 once up front lets serde_json skip the check per string; invalid UTF-8
    // takes its byte path, which reports the error as serde_json always does.
    match std::str::from_utf8(json) {
        Ok(text) => extract_with_serde(text, wanted, out),
        Err(_) => {
            let mut de = serde_json::Deserializer::from_slice(json);
            de.deserialize_any(Find { wanted, out })?;
            de.end()
        }
    }
    .map(|()| Noted { repeated: u64::MAX, members: 0 })
}

/// Where path `i`'s value, as [`extract_noting_repeats`] found it in `text`, lies there:
/// its start and end, or `(0, 0)` where it was not found once (`field-spans`, which
/// `weir_json::members` answers alike).
pub fn span(text: &[u8], found: &[Option<Raw<'_>>], repeated: u64, i: usize) -> (u32, u32) {
    let once = i < 64 && repeated & (1 << i) == 0;
    match found[i] {
        Some(raw) if once => {
            let start = raw.0.as_ptr() as usize - text.as_ptr() as usize;
            (start as u32, (start + raw.0.len()) as u32)
        }
        _ => (0, 0),
    }
}

/// [`extract`] by serde_json alone: the reference the scanner answers for.
fn extract_with_serde<'a>(text: &'a str, wanted: &[(usize, &[String])], out: &mut [Option<Raw<'a>>]) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(Find { wanted, out })?;
    de.end()
}

/// The whole text: one value and whitespace around it; the members `wanted` asks for of an
/// object at the top noted in `out`.
fn document<'a>(text: &'a [u8], wanted: &[(usize, &[String])], out: &mut [Option<Raw<'a>>], noted: &mut Noted) -> Result<(), GiveUp> {
    let mut s = Scanner::new(text);
    s.skip_ws();
    match s.peek()? {
        b'{' => object(&mut s, 1, wanted, out, &mut noted.repeated, Some(&mut noted.members))?,
        _ => s.value(0)?,
    }
    s.end()
}

/// A document that is one object, walked in the layout `shape` learned when its bytes around
/// the values are the same, else walked whole (learning its layout): the members `wanted`
/// asks for noted in `out`, as [`document`] notes them (`wanted` has top-level paths only,
/// at most 64). Gives up where [`document`] may read the text otherwise, leaving it to that.
fn shaped<'a>(
    shape: &mut Shape,
    text: &'a [u8],
    wanted: &[(usize, &[String])],
    out: &mut [Option<Raw<'a>>],
    noted: &mut Noted,
) -> Result<(), GiveUp> {
    if shape.layout.is_learned() {
        let places = &shape.places;
        let within = Scanner::new(text).document_object_as(&shape.layout, |s, key, place| {
            member(s, 1, key, (places[place], false, false), wanted, out, &mut noted.repeated)
        });
        if within.is_ok() {
            noted.members = places.len() as u32;
            return Ok(());
        }
        out.iter_mut().for_each(|o| *o = None);
        *noted = Noted { repeated: 0, members: 0 };
    }
    shape.places.clear();
    let places = &mut shape.places;
    Scanner::new(text).document_object_learning(&mut shape.layout, |s, key, _| {
        noted.members += 1;
        let wants = wants(wanted, key);
        places.push(wants.0);
        member(s, 1, key, wants, wanted, out, &mut noted.repeated)
    })
}

/// Which entries of `wanted` a member `key` answers: bit `j` for `wanted[j]` asking for it
/// whole (`whole`), whether one goes through it to a nested path (`nested`), and whether an
/// entry past the 64th asks for it (`far`, compared again when the value is taken).
#[inline]
fn wants(wanted: &[(usize, &[String])], key: &[u8]) -> (u64, bool, bool) {
    // Most members are not wanted, or wanted whole: one pass over `wanted` tells (the length
    // and first byte first, so that few keys reach a full compare).
    let (mut whole, mut nested, mut far) = (0u64, false, false);
    for (j, &(_, p)) in wanted.iter().enumerate() {
        if let [f, rest @ ..] = p {
            let f = f.as_bytes();
            if f.len() == key.len() && f.first() == key.first() && f == key {
                match (rest.is_empty(), j < 64) {
                    (true, true) => whole |= 1 << j,
                    (true, false) => far = true,
                    (false, _) => nested = true,
                }
            }
        }
    }
    (whole, nested, far)
}

/// An object, noting the members `wanted` asks for in `out` (the last of repeated keys wins,
/// as with serde_json, and noted in `repeated`) and walking into the ones that nested paths
/// go through.
fn object<'a>(
    s: &mut Scanner<'a>,
    depth: u32,
    wanted: &[(usize, &[String])],
    out: &mut [Option<Raw<'a>>],
    repeated: &mut u64,
    mut members: Option<&mut u32>,
) -> Result<(), GiveUp> {
    s.object(depth, |s, key| {
        if let Some(n) = members.as_deref_mut() {
            *n += 1;
        }
        member(s, depth, key, wants(wanted, key), wanted, out, repeated)
    })
}

/// The value of member `key` of an object at `depth` (the scanner at its start), which
/// `wanted` wants as [`wants`] said: walked, noted in `out` where wanted whole, walked into
/// where a nested path goes through it. Always inlined: called out of line (as a whole
/// program build chose to), it cost the source's walk a fifth more.
#[inline(always)]
fn member<'a>(
    s: &mut Scanner<'a>,
    depth: u32,
    key: &[u8],
    (whole, nested, far): (u64, bool, bool),
    wanted: &[(usize, &[String])],
    out: &mut [Option<Raw<'a>>],
    repeated: &mut u64,
) -> Result<(), GiveUp> {
    if whole == 0 && !far && !nested {
        return s.value(depth);
    }
    let start = s.at();
    match nested && s.peek()? == b'{' {
        true => {
            let mut deeper: [(usize, &[String]); 4] = [(0, &[]); 4];
            let mut n = 0;
            for &(i, p) in wanted {
                match p {
                    [f, rest @ ..] if f.as_bytes() == key && !rest.is_empty() => {
                        *deeper.get_mut(n).ok_or(GiveUp)? = (i, rest);
                        n += 1;
                    }
                    _ => {}
                }
            }
            object(s, depth + 1, &deeper[..n], out, repeated, None)?
        }
        false => s.value(depth)?,
    }
    if whole != 0 || far {
        // A value the scanner walked is UTF-8 (see `Raw`).
        let raw = Raw(&s.text()[start..s.at()]);
        for (j, &(i, p)) in wanted.iter().enumerate() {
            let wants = match j < 64 {
                true => whole & (1 << j) != 0,
                false => matches!(p, [f] if f.as_bytes() == key),
            };
            if wants {
                if out[i].is_some() {
                    *repeated |= 1u64.checked_shl(i as u32).unwrap_or(0);
                }
                out[i] = Some(raw);
            }
        }
    }
    Ok(())
}

/// The value at `path` in a raw JSON value (nested paths walk into objects).
fn descend<'a>(raw: &'a RawValue, rest: &[(usize, &[String])], out: &mut [Option<Raw<'a>>]) {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    // Already validated as part of the whole document.
    let _ = de.deserialize_any(Find { wanted: rest, out });
}

struct Find<'w, 'p, 'o, 'a> {
    wanted: &'w [(usize, &'p [String])],
    out: &'o mut [Option<Raw<'a>>],
}

impl<'de: 'a, 'a> Visitor<'de> for Find<'_, '_, '_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let name = key.as_str();
            if !self.wanted.iter().any(|(_, p)| p.first().is_some_and(|f| f == name)) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            let mut deeper = Vec::new();
            for &(i, p) in self.wanted {
                match p {
                    [f] if f == name => self.out[i] = Some(Raw(raw.get().as_bytes())),
                    [f, rest @ ..] if f == name && !rest.is_empty() => deeper.push((i, rest)),
                    _ => {}
                }
            }
            if !deeper.is_empty() {
                descend(raw, &deeper, self.out);
            }
        }
        Ok(())
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Find<'_, '_, '_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key: borrowed unless it had escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// The items of an array ([`array_items`]): up to four live on the stack.
pub type Items<'a> = smallvec::SmallVec<[Raw<'a>; 4]>;

/// The items of a JSON array, each as its raw text; `None` when `text` is not one. Walked
/// by the scanner (keys of several fields, `["user38","view"]`, are read so once a window
/// row, with no allocation); serde_json decides what the scanner gives up on.
pub fn array_items(text: &[u8]) -> Option<Items<'_>> {
    if let Some(items) = plain_string_items(text) {
        return Some(items);
    }
    if let Ok(items) = scan_array(text) {
        return Some(items);
    }
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(text).ok()?;
    Some(items.into_iter().map(|v| Raw(v.get().as_bytes())).collect())
}

/// Whether `b` stands for itself inside a JSON string: printable ASCII but `"` and `\`.
pub fn is_plain_string_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// The items of an array of strings as the host writes a key of several fields
/// (`["user38","login_success"]`: no spaces, printable ASCII without escapes), each split
/// at its quotes in one pass: a window writes such a key's texts into every row. `None` for
/// anything else, which the scanner reads.
fn plain_string_items(text: &[u8]) -> Option<Items<'_>> {
    let mut rest = text.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let mut items = Items::new();
    loop {
        let body = rest.strip_prefix(b"\"")?;
        let end = body.iter().position(|&b| !is_plain_string_byte(b))?;
        if body[end] != b'"' {
            return None;
        }
        let (item, after) = rest.split_at(end + 2);
        items.push(Raw(item));
        rest = match after {
            [] => return Some(items),
            [b',', more @ ..] => more,
            _ => return None,
        };
    }
}

fn scan_array(text: &[u8]) -> Result<Items<'_>, GiveUp> {
    let mut s = Scanner::new(text);
    let mut items = Items::new();
    s.skip_ws();
    s.expect(b'[')?;
    s.skip_ws();
    if s.peek()? == b']' {
        s.expect(b']')?;
        return s.end().map(|_| items);
    }
    loop {
        let start = s.at();
        s.value(1)?;
        // A value the scanner walked is UTF-8 (see `Raw`).
        items.push(Raw(&text[start..s.at()]));
        s.skip_ws();
        match s.peek()? {
            b',' => {
                s.expect(b',')?;
                s.skip_ws();
            }
            _ => {
                s.expect(b']')?;
                return s.end().map(|_| items);
            }
        }
    }
}

/// A raw value that is JSON `null` counts as absent (as in key-by and aggregates).
pub fn non_null(raw: Option<Raw<'_>>) -> Option<Raw<'_>> {
    raw.filter(|r| r.0 != b"null")
}

/// A raw JSON string's contents (UTF-8) without copying when it has no escapes.
pub fn raw_str(raw: Raw<'_>) -> Option<std::borrow::Cow<'_, [u8]>> {
    let inner = raw.0.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        serde_json::from_slice::<String>(raw.0).ok().map(|s| std::borrow::Cow::Owned(s.into_bytes()))
    } else {
        Some(std::borrow::Cow::Borrowed(inner))
    }
}

/// A raw JSON integer (not a float, not a boolean), as serde_json's `as_i64` reads it.
pub fn raw_i64(raw: Raw<'_>) -> Option<i64> {
    // An integer literal in range, and not `-0` (which serde_json reads as the float -0.0).
    weir_json::plain_i64(raw.0)
}

/// Appends the value as serde_json would print it: plain strings and integers as they are,
/// anything else through a parse (so `1.50` reads `1.5` and objects lose their spaces).
/// `out` is a buffer in memory (a `Vec` or a [`crate::record::Key`]), which cannot fail.
pub fn write_normalized(raw: Raw<'_>, out: &mut impl std::io::Write) {
    let _ = match is_written_as_is(raw) {
        true => out.write_all(raw.0),
        false => serde_json::to_writer(out, &value(raw)).map_err(Into::into),
    };
}

/// Whether [`write_normalized`] writes the value as it is: a string without escapes, or an
/// integer serde_json reads as an `i64`.
#[inline]
pub fn is_written_as_is(raw: Raw<'_>) -> bool {
    let b = raw.0;
    (b.first() == Some(&b'"') && !b.contains(&b'\\')) || raw_i64(raw).is_some()
}

/// [`write_normalized`] into a new string.
pub fn normalized(raw: Raw<'_>) -> String {
    let mut out = Vec::with_capacity(raw.0.len());
    write_normalized(raw, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The parsed value (for slow paths and messages).
pub fn value(raw: Raw<'_>) -> serde_json::Value {
    serde_json::from_slice(raw.0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(ps: &[&str]) -> Vec<Path> {
        ps.iter().map(|p| p.split('.').map(str::to_string).collect()).collect()
    }

    fn get(json: &str, ps: &[&str]) -> Result<Vec<Option<String>>, String> {
        let ps = paths(ps);
        let mut out = Found::new();
        extract(json.as_bytes(), &ps, &mut out).map_err(|e| e.to_string())?;
        Ok(out.into_iter().map(|r| r.map(|r| r.get().to_string())).collect())
    }

    #[test]
    fn finds_top_level_and_nested_fields() {
        let j = r#"{"a": 1, "b": {"c": "x", "d": [1, 2]}, "e\u0041": true, "f": null}"#;
        assert_eq!(
            get(j, &["a", "b.c", "b.d", "b", "eA", "f", "zz", "a.q"]).unwrap(),
            vec![
                Some("1".into()),
                Some(r#""x""#.into()),
                Some("[1, 2]".into()),
                Some(r#"{"c": "x", "d": [1, 2]}"#.into()),
                Some("true".into()),
                Some("null".into()),
                None,
                None
            ]
        );
    }

    #[test]
    fn repeated_members_are_told_where_the_scanner_reads_and_all_are_where_it_gives_up() {
        let paths: Vec<Path> = ["a", "b", "c.d"].iter().map(|p| p.split('.').map(str::to_string).collect()).collect();
        let repeats = |text: &str| extract_noting_repeats(text.as_bytes(), &paths, &mut Found::new()).unwrap().repeated;
        assert_eq!(repeats(r#"{"a": 1, "b": 2, "c": {"d": 3}}"#), 0);
        assert_eq!(repeats(r#"{"a": 1, "b": 2, "a": 3}"#), 0b001);
        assert_eq!(repeats(r#"{"c": {"d": 1, "d": 2}, "b": [], "b": {}}"#), 0b110);
        // An escaped key: serde_json reads it, and does not tell.
        assert_eq!(repeats(r#"{"\u0061": 1}"#), u64::MAX);
    }

    #[test]
    fn validates_the_whole_document_like_a_full_parse() {
        for bad in ["", "{", r#"{"a": 1,}"#, r#"{"a": 1} x"#, r#"{"a": [1,}"#, "nul"] {
            let full = serde_json::from_str::<serde_json::Value>(bad).unwrap_err().to_string();
            assert_eq!(get(bad, &["a"]).unwrap_err(), full, "{bad}");
        }
        assert_eq!(get("[1, {\"a\": 2}]", &["a"]).unwrap(), vec![None]);
        assert_eq!(get("7", &["a"]).unwrap(), vec![None]);
    }

    #[test]
    fn reads_strings_and_integers() {
        let j = r#"{"s": "pl\"ain", "t": "plain", "i": -0, "f": 1.5, "b": true, "big": 99999999999999999999}"#;
        let ps = paths(&["s", "t", "i", "f", "b", "big"]);
        let mut out = Found::new();
        extract(j.as_bytes(), &ps, &mut out).unwrap();
        let v: Vec<Raw> = out.into_iter().map(Option::unwrap).collect();
        assert_eq!(raw_str(v[0]).unwrap(), &b"pl\"ain"[..]);
        assert!(matches!(raw_str(v[1]).unwrap(), std::borrow::Cow::Borrowed(b"plain")));
        assert_eq!(raw_str(v[2]), None);
        assert_eq!(raw_i64(v[2]), None);
        assert_eq!(raw_i64(v[3]), None);
        assert_eq!(raw_i64(v[4]), None);
        assert_eq!(raw_i64(v[5]), None);
        let norm: Vec<String> = v.iter().map(|r| normalized(*r)).collect();
        assert_eq!(norm, [r#""pl\"ain""#, r#""plain""#, "-0.0", "1.5", "true", "1e+20"]);
        let mut out = Found::new();
        extract(br#"{"o": {"a": 1.50, "b": [1, 2]}}"#, &paths(&["o"]), &mut out).unwrap();
        assert_eq!(normalized(out[0].unwrap()), r#"{"a":1.5,"b":[1,2]}"#);
        // Integers as serde_json reads them as i64, from the bytes.
        let j = br#"{"a": 7, "b": -12, "c": 1735689603, "d": 9223372036854775807, "e": -9223372036854775808, "f": 0}"#;
        extract(j, &paths(&["a", "b", "c", "d", "e", "f"]), &mut out).unwrap();
        let ints: Vec<Option<i64>> = out.iter().map(|r| raw_i64(r.unwrap())).collect();
        assert_eq!(ints, [Some(7), Some(-12), Some(1735689603), Some(i64::MAX), Some(i64::MIN), Some(0)]);
        assert_eq!(
            out.iter().map(|r| r.unwrap().get()).collect::<Vec<_>>(),
            ["7", "-12", "1735689603", "9223372036854775807", "-9223372036854775808", "0"]
        );
    }

    /// What the scanner alone makes of `text`: `None` when it gives up.
    fn scanned<'a>(text: &'a [u8], wanted: &[(usize, &[String])]) -> Option<Vec<Option<Raw<'a>>>> {
        let mut out = vec![None; wanted.len()];
        document(text, wanted, &mut out, &mut Noted { repeated: 0, members: 0 }).ok().map(|_| out)
    }

    /// What serde_json alone makes of `text`.
    fn reference<'a>(text: &'a [u8], wanted: &[(usize, &[String])]) -> Result<Vec<Option<Raw<'a>>>, String> {
        let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        let mut out = vec![None; wanted.len()];
        extract_with_serde(text, wanted, &mut out).map(|_| out).map_err(|e| e.to_string())
    }

    #[test]
    fn array_items_are_read_as_serde_json_reads_them() {
        for text in [
            r#"["user38","view"]"#,
            r#" [ 1 , {"a": [2]}, "x\"y", null ] "#,
            "[]",
            " [ ] ",
            r#"["a",]"#,
            "[1] 2",
            "{}",
            "[",
            r#"["\ud800"]"#,
            r#"["user38","login_success"]"#,
            r#"["a,b","c"]"#,
            r#"["a"]"#,
            r#"[""]"#,
            r#"["",""]"#,
            r#"["a","b""#,
            r#"["a""b"]"#,
            r#"["a",1]"#,
            r#"["a" ,"b"]"#,
            r#"["a",]"#,
            r#"[,"a"]"#,
            "[\"\u{e9}\",\"x\"]",
            "[\"a\tb\"]",
            "[\"a\u{7f}\"]",
            r#"["a\nb","c"]"#,
            r#"[""#,
            r#""]"#,
        ] {
            let serde: Option<Vec<String>> =
                serde_json::from_str::<Vec<&RawValue>>(text).ok().map(|v| v.iter().map(|r| r.get().to_string()).collect());
            let ours: Option<Vec<String>> = array_items(text.as_bytes()).map(|v| v.iter().map(|r| r.get().to_string()).collect());
            assert_eq!(ours, serde, "{text}");
        }
    }

    /// Documents the walks are checked on, and (see [`edits`]) varied from.
    const SEEDS: [&str; 7] = [
        r#"{"user_id": "user38", "session_id": "session_2542", "action": "view", "timestamp": 1735689603, "ip_address": "10.0.0.2", "user_agent": "Mozilla/5.0 (Test Browser)", "metadata": {}}"#,
        r#"{"o": {"a": [1, -2.5e+3, 0.25, true, false, null], "b": {"c": "x\"\\\/\b\f\n\r\t\u00e9"}}, "a": "héllo ✓", "timestamp": -0}"#,
        r#" [ {"a": 1} , "s" , 12E-2 , [ [ ] ] , { } ] "#,
        r#"{"a":1,"a":2,"o":{"a":3},"o":{"b":4},"timestamp":0}"#,
        r#"{"o": 5, "user_id": "a long value that spans several eight-byte chunks of the walk"}"#,
        r#""just a string""#,
        "{\"timestamp\":\r\n\t7}",
    ];

    /// `n` random edits of `seeds` (one to three bytes inserted, removed or changed each),
    /// always the same ones.
    fn edits(seeds: &[&str], n: usize) -> impl Iterator<Item = Vec<u8>> {
        let mut edits = weir_json::testing::Edits::new(7, b"{}[]\",:\\/ \t\n\r0123456789-+.eEtrufalsnbu\x01\x1f\x7f\xc3\xa9");
        let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_bytes().to_vec()).collect();
        (0..n).map(move |_| {
            let seed = &seeds[edits.below(seeds.len())];
            edits.edit(seed, 3)
        })
    }

    /// The spans a source's walk reads ahead for a process plugin ([`span`]) are those its
    /// host would find itself (`weir_json::members`, what the SDK's test host finds too), on
    /// the seeds and their random edits: a document the walk reads gives the same spans,
    /// one it refuses none.
    #[test]
    fn spans_read_ahead_are_the_members_the_plugins_host_finds() {
        let names = ["timestamp", "user_id", "o", "a"];
        let ps = paths(&names);
        let (mut read, mut refused) = (0, 0);
        for text in SEEDS.iter().map(|s| s.as_bytes().to_vec()).chain(edits(&SEEDS, 50_000)) {
            let mut members = [0; 8];
            let found_here = weir_json::members(&text, &names, &mut members).map(|count| (members, count));
            let mut found = Found::new();
            match extract_noting_repeats(&text, &ps, &mut found) {
                Ok(noted) => {
                    read += 1;
                    let spans: [u32; 8] = std::array::from_fn(|j| <[u32; 2]>::from(span(&text, &found, noted.repeated, j / 2))[j % 2]);
                    // The same spans, and as many members counted (none where only serde_json
                    // read it, and the host's walk gave up).
                    assert_eq!((spans, noted.members), found_here.unwrap_or(([0; 8], 0)), "{}", String::from_utf8_lossy(&text));
                }
                Err(_) => {
                    refused += 1;
                    assert!(found_here.is_err(), "{}", String::from_utf8_lossy(&text));
                }
            }
        }
        assert!(read > 5_000 && refused > 20_000, "read {read}, refused {refused}");
    }

    #[test]
    fn a_shape_reads_what_a_walk_without_one_reads() {
        // Flat paths, and a nested one (a layout serves flat paths only).
        for names in [&["timestamp", "user_id", "a"][..], &["timestamp", "o.a", "o"]] {
            let ps = paths(names);
            let mut shape = Shape::default();
            let (mut within, mut n) = (0, 0);
            // Edits of one seed at a time, the seed itself between them (learned where its
            // layout was lost), as a source's lines come mostly alike.
            for (seed, text) in SEEDS.iter().flat_map(|seed| edits(&[seed], 10_000).map(move |text| (seed, text))) {
                for (edited, text) in [(false, seed.as_bytes().to_vec()), (true, text)] {
                    within += usize::from(edited && Scanner::new(&text).document_object_as(&shape.layout, |s, _, _| s.value(1)).is_ok());
                    let (mut found, mut found_alone) = (Found::new(), Found::new());
                    let read = extract_in(Some(&mut shape), &text, &ps, &mut found).map_err(|e| e.to_string());
                    let alone = extract_noting_repeats(&text, &ps, &mut found_alone).map_err(|e| e.to_string());
                    assert_eq!((read, found), (alone, found_alone), "{names:?} {}", String::from_utf8_lossy(&text));
                    n += 1;
                }
            }
            // Nested paths are walked as they were: no layout is learned for them.
            match names.iter().any(|n| n.contains('.')) {
                true => assert_eq!(within, 0, "{names:?}"),
                false => assert!(within > 1_000, "{names:?}: {within} of {n} edits in a learned layout"),
            }
        }
    }

    #[test]
    fn fast_path_agrees_with_serde_json() {
        let ps = paths(&["timestamp", "user_id", "o.a", "o", "a"]);
        let wanted: Vec<(usize, &[String])> = ps.iter().enumerate().map(|(i, p)| (i, p.as_slice())).collect();
        for seed in SEEDS.map(str::as_bytes) {
            let fast = scanned(seed, &wanted).unwrap_or_else(|| panic!("the scanner reads {}", String::from_utf8_lossy(seed)));
            assert_eq!(Ok(fast), reference(seed, &wanted), "{}", String::from_utf8_lossy(seed));
        }
        // Random edits of the seeds: whatever the scanner accepts, serde_json accepts with the
        // same values; what it refuses goes to serde_json anyway.
        let (mut accepted, mut refused) = (0, 0);
        for text in edits(&SEEDS, 100_000) {
            let want = reference(&text, &wanted);
            match scanned(&text, &wanted) {
                Some(fast) => {
                    accepted += 1;
                    assert_eq!(Ok(fast), want, "{}", String::from_utf8_lossy(&text));
                }
                None => refused += want.is_err() as usize,
            }
        }
        // Both sides of the check were exercised.
        assert!(accepted > 5_000 && refused > 20_000, "accepted {accepted}, refused {refused}");
    }

    #[test]
    fn deep_and_escaped_documents_take_serde_jsons_path() {
        let ps = paths(&["a"]);
        let wanted = [(0, ps[0].as_slice())];
        let deep = |n: usize| format!("{{\"a\": {}1{}}}", "[".repeat(n), "]".repeat(n));
        let ok = deep(MAX_DEPTH as usize - 1);
        assert!(scanned(ok.as_bytes(), &wanted).is_some());
        for n in [MAX_DEPTH as usize, 127, 200] {
            let text = deep(n);
            assert!(scanned(text.as_bytes(), &wanted).is_none());
            let mut out = Found::new();
            assert_eq!(
                extract(text.as_bytes(), &ps, &mut out).map_err(|e| e.to_string()),
                reference(text.as_bytes(), &wanted).map(drop),
                "{n}"
            );
        }
        assert!(scanned(br#"{"\u0061": 1}"#, &wanted).is_none());
        assert_eq!(get(r#"{"\u0061": 1}"#, &["a"]).unwrap(), vec![Some("1".into())]);
    }
}
