//! A validating walk over JSON text by hand, for code that wants a few fields of a record in
//! place: no tree, no allocation, no copy of the fields it skips.
//!
//! The [`Scanner`] accepts a subset of what serde_json accepts: the strict RFC 8259 grammar
//! as serde_json reads it (whitespace is space, tab, CR and LF; no leading zeros; control
//! characters refused in strings; escapes checked; UTF-8 checked where it can occur, inside
//! strings, so the text needs no pass of its own), nested at most [`MAX_DEPTH`] deep. Where
//! it stops with [`GiveUp`] the text is invalid, or outside that subset, or its caller wants
//! something it does not do (an object key with escapes, say): the caller then asks a full
//! parser, which has the last word and words the error. The host reads event times and keys
//! with it; plugins can check their records with it (`weir_sdk::json`).
//!
//! ```
//! use weir_json::Scanner;
//! let mut user = None;
//! let s = Scanner::new(br#"{"user": "ann", "n": [1, 2]}"#);
//! s.document_object(|s, key| {
//!     let start = s.at();
//!     s.value(1)?;
//!     if key == b"user" {
//!         user = Some(&s.text()[start..s.at()]);
//!     }
//!     Ok(())
//! })
//! .unwrap();
//! assert_eq!(user, Some(&br#""ann""#[..]));
//! ```
//!
//! A check of a record's shape, leaving what the scanner gives up on to a full parser:
//!
//! ```
//! use weir_json::{GiveUp, Scanner};
//!
//! /// Whether the line is an object whose `user` is a string without escapes.
//! fn plain_user(line: &[u8]) -> bool {
//!     let mut user = false;
//!     let walk = Scanner::new(line).document_object(|s, key| match key {
//!         b"user" if s.peek()? == b'"' => {
//!             user = !s.string()?;
//!             Ok(())
//!         }
//!         b"user" => Err(GiveUp),
//!         _ => s.value(1),
//!     });
//!     walk.is_ok() && user
//! }
//! assert!(plain_user(br#"{"n": [1, {}], "user": "ann"}"#));
//! assert!(!plain_user(br#"{"user": "a\u006e"}"#));
//! assert!(!plain_user(br#"{"user": 7}"#));
//! assert!(!plain_user(br#"{"user": "ann""#));
//! ```

/// Deepest nesting of arrays and objects the scanner follows (serde_json's limit is 128).
pub const MAX_DEPTH: u32 = 64;

/// The scanner stopped: the text is not valid JSON, or is outside what it reads, or the
/// caller refused it; a full parser decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUp;

/// A position in JSON text (see the crate docs). Whatever it walked past without giving up
/// is valid UTF-8.
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a [u8]) -> Self {
        Scanner { text, at: 0 }
    }

    /// The whole text.
    #[inline]
    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    /// The byte offset the scanner is at.
    #[inline]
    pub fn at(&self) -> usize {
        self.at
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text
    }

    /// The next byte, not consumed.
    #[inline]
    pub fn peek(&self) -> Result<u8, GiveUp> {
        self.bytes().get(self.at).copied().ok_or(GiveUp)
    }

    /// Skips whitespace.
    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// Consumes `c`, or gives up.
    #[inline]
    pub fn expect(&mut self, c: u8) -> Result<(), GiveUp> {
        match self.peek()? == c {
            true => {
                self.at += 1;
                Ok(())
            }
            false => Err(GiveUp),
        }
    }

    /// Trailing whitespace, then the end of the text.
    #[inline]
    pub fn end(mut self) -> Result<(), GiveUp> {
        self.skip_ws();
        match self.at == self.text.len() {
            true => Ok(()),
            false => Err(GiveUp),
        }
    }

    /// A whole text that is one object: calls `member` for each key (see
    /// [`Scanner::object`]), then checks that only whitespace follows.
    pub fn document_object(mut self, member: impl FnMut(&mut Self, &'a [u8]) -> Result<(), GiveUp>) -> Result<(), GiveUp> {
        self.skip_ws();
        self.object(1, member)?;
        self.end()
    }

    /// Any value, at nesting `depth` (whitespace before it already skipped).
    ///
    /// Walked by a function of its own on a copy of the scanner: one whose address goes to
    /// a call that is not inlined lives in memory, and then every step of the walk that
    /// called it (inlined around it) loads and stores its offset there; in a compiled
    /// plugin's linear memory that cost the log-analyzer's parser a third of its time.
    #[inline(always)]
    pub fn value(&mut self, depth: u32) -> Result<(), GiveUp> {
        // A string (most values are), and an empty object or array, are walked here.
        if self.text.get(self.at) == Some(&b'"') {
            return self.string().map(drop);
        }
        if let Some(b"{}" | b"[]") = self.text.get(self.at..self.at + 2) {
            if depth >= MAX_DEPTH {
                return Err(GiveUp);
            }
            self.at += 2;
            return Ok(());
        }
        self.at = Scanner::value_at(self.text, self.at, depth)?;
        Ok(())
    }

    /// [`Scanner::value`] from `at`: where it ends.
    fn value_at(text: &'a [u8], at: usize, depth: u32) -> Result<usize, GiveUp> {
        let mut s = Scanner { text, at };
        s.any_value(depth)?;
        Ok(s.at)
    }

    #[inline]
    fn any_value(&mut self, depth: u32) -> Result<(), GiveUp> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth + 1, |s, _| s.value(depth + 1)),
            b'[' => self.array(depth + 1),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number().map(drop),
        }
    }

    #[inline]
    fn literal(&mut self, word: &str) -> Result<(), GiveUp> {
        match self.bytes()[self.at..].starts_with(word.as_bytes()) {
            true => {
                self.at += word.len();
                Ok(())
            }
            false => Err(GiveUp),
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.bytes().get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    /// A number, `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; says whether it is
    /// an integer literal (no fraction, no exponent). On a copy, as [`Scanner::value`].
    #[inline(always)]
    pub fn number(&mut self) -> Result<bool, GiveUp> {
        let (integer, at) = Scanner::number_at(self.text, self.at)?;
        self.at = at;
        Ok(integer)
    }

    /// [`Scanner::number`] from `at`: whether it is an integer literal, and where it ends.
    fn number_at(text: &'a [u8], at: usize) -> Result<(bool, usize), GiveUp> {
        let mut s = Scanner { text, at };
        s.any_number().map(|integer| (integer, s.at))
    }

    #[inline]
    fn any_number(&mut self) -> Result<bool, GiveUp> {
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => _ = self.digits(),
            _ => return Err(GiveUp),
        }
        let mut integer = true;
        if self.bytes().get(self.at) == Some(&b'.') {
            self.at += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(GiveUp);
            }
        }
        if let Some(b'e' | b'E') = self.bytes().get(self.at) {
            self.at += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.bytes().get(self.at) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(GiveUp);
            }
        }
        Ok(integer)
    }

    /// A number that serde_json reads as an `i64`: an integer literal (no fraction, no
    /// exponent) in range, and not `-0` (which it reads as a float). Gives up on any other
    /// number, and on what is not one.
    #[inline(always)]
    pub fn integer(&mut self) -> Result<i64, GiveUp> {
        // Mostly a few positive digits (epoch seconds): read and checked in one pass, in
        // range by their count.
        let b = self.text;
        if let Some(&lead @ b'1'..=b'9') = b.get(self.at) {
            let (mut n, mut at) = (i64::from(lead - b'0'), self.at + 1);
            while let Some(d) = b.get(at).map(|d| d.wrapping_sub(b'0')).filter(|d| *d <= 9) {
                n = n.wrapping_mul(10).wrapping_add(i64::from(d));
                at += 1;
            }
            if at - self.at <= 18 && !matches!(b.get(at), Some(b'.' | b'e' | b'E')) {
                self.at = at;
                return Ok(n);
            }
        }
        let start = self.at;
        if !self.number()? {
            return Err(GiveUp);
        }
        let (minus, digits) = match &self.text[start..self.at] {
            [b'-', rest @ ..] => (true, rest),
            all => (false, all),
        };
        if minus && digits == b"0" {
            return Err(GiveUp);
        }
        // Summed below zero, so that i64::MIN fits. Up to 18 digits always fit: plain
        // arithmetic (a checked multiply is a call of its own in Wasm).
        let digit = |d: &u8| i64::from(d - b'0');
        let n = match digits.len() <= 18 {
            true => digits.iter().fold(0i64, |n, d| n * 10 - digit(d)),
            false => digits.iter().try_fold(0i64, |n, d| n.checked_mul(10)?.checked_sub(digit(d))).ok_or(GiveUp)?,
        };
        match minus {
            true => Ok(n),
            false => n.checked_neg().ok_or(GiveUp),
        }
    }

    /// A string, from its opening quote (the next byte) to past its closing one; says whether
    /// it had escapes. Eight bytes at a time while none of them is a quote, a backslash, a
    /// control character or past ASCII (a character checked as UTF-8 on its own). A `\u`
    /// escape is checked for four hex digits, not for surrogate pairs: serde_json checks
    /// those only when it decodes the string.
    ///
    /// Always inlined: a document is mostly strings, and each call that is left costs a
    /// function's entry (in Wasm with the call deadline on, an epoch check too); BENCHMARKS.md
    /// has what it saved.
    #[inline(always)]
    pub fn string(&mut self) -> Result<bool, GiveUp> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let b = self.bytes();
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            while let Some(chunk) = b.get(self.at..self.at + 8) {
                let w = u64::from_le_bytes(chunk.try_into().map_err(|_| GiveUp)?);
                let (quote, slash) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
                // High bit of each byte that is zero in `quote` or `slash`, below 0x20, or
                // has its own high bit set.
                let hit =
                    ((quote.wrapping_sub(ONES) & !quote) | (slash.wrapping_sub(ONES) & !slash) | (w.wrapping_sub(ONES * 0x20) & !w) | w)
                        & HIGH;
                if hit != 0 {
                    let i = hit.trailing_zeros() / 8;
                    self.at += i as usize;
                    // Mostly the closing quote, read from the word rather than again from
                    // the text (the next step would wait for that load).
                    if (w >> (i * 8)) as u8 == b'"' {
                        self.at += 1;
                        return Ok(escaped);
                    }
                    break;
                }
                self.at += 8;
            }
            let c = self.peek()?;
            self.at += 1;
            match c {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' if b.get(self.at + 1..self.at + 5).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => self.at += 5,
                        _ => return Err(GiveUp),
                    }
                }
                0..0x20 => return Err(GiveUp),
                0x80.. => {
                    // A lead byte says how long its character is; std checks the rest.
                    let len = match c {
                        0xc2..=0xdf => 2,
                        0xe0..=0xef => 3,
                        0xf0..=0xf4 => 4,
                        _ => return Err(GiveUp),
                    };
                    let char = b.get(self.at - 1..self.at - 1 + len).ok_or(GiveUp)?;
                    std::str::from_utf8(char).map_err(|_| GiveUp)?;
                    self.at += len - 1;
                }
                _ => {}
            }
        }
    }

    /// Steps into an array or object at nesting `depth`; says whether it is empty (and then
    /// already closed by `close`).
    #[inline]
    fn open(&mut self, depth: u32, close: u8) -> Result<bool, GiveUp> {
        if depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        self.at += 1;
        self.skip_ws();
        let empty = self.peek()? == close;
        if empty {
            self.at += 1;
        }
        Ok(empty)
    }

    /// After an element or member: a comma (false: more follow) or `close` (true: done).
    #[inline]
    fn next_or_close(&mut self, close: u8) -> Result<bool, GiveUp> {
        self.skip_ws();
        let c = self.peek()?;
        self.at += 1;
        match c {
            b',' => {
                self.skip_ws();
                Ok(false)
            }
            _ if c == close => Ok(true),
            _ => Err(GiveUp),
        }
    }

    /// An array at nesting `depth` (the next byte is its `[`).
    #[inline]
    pub fn array(&mut self, depth: u32) -> Result<(), GiveUp> {
        if self.peek()? != b'[' {
            return Err(GiveUp);
        }
        if self.open(depth, b']')? {
            return Ok(());
        }
        loop {
            self.value(depth)?;
            if self.next_or_close(b']')? {
                return Ok(());
            }
        }
    }

    /// An object at nesting `depth` (the next byte is its `{`). For each member, `member` is
    /// called with the key (which has no escapes: a key with escapes gives up) and the
    /// scanner at the member's value, which it must walk (with [`Scanner::value`], or a step
    /// of its own for a value it reads further, at nesting `depth`).
    pub fn object(&mut self, depth: u32, mut member: impl FnMut(&mut Self, &'a [u8]) -> Result<(), GiveUp>) -> Result<(), GiveUp> {
        if self.peek()? != b'{' {
            return Err(GiveUp);
        }
        if self.open(depth, b'}')? {
            return Ok(());
        }
        loop {
            let start = self.at + 1;
            if self.string()? {
                // A key with escapes would have to be decoded to compare it.
                return Err(GiveUp);
            }
            let key = &self.text[start..self.at - 1];
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            member(self, key)?;
            if self.next_or_close(b'}')? {
                return Ok(());
            }
        }
    }
}

/// The layout of a document that is one object, learned from a text the scanner walked whole
/// ([`Scanner::document_object_learning`]): the bytes outside its members' values, byte for
/// byte (the braces, the keys, the colons, commas and whitespace), and where each key lies in
/// them. Lines from one producer mostly share theirs, so the next text can be checked against
/// it ([`Scanner::document_object_as`]): a gap that is the same bytes needs no walk, and
/// only the values are walked. Speculation on the structure of the records seen before, as
/// in Mison (Li et al., VLDB 2017); a text with another layout is walked as any other.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The gaps one after another: before the first value (`{"user_id": `), between values
    /// (`, "action": `), and after the last one (`}`).
    gaps: Vec<u8>,
    /// For each member, where its gap (before its value) ends in `gaps`, and where its key
    /// starts in that gap and how long it is.
    members: Vec<Gap>,
    /// Whether a whole text was learned.
    learned: bool,
}

#[derive(Debug, Clone, Copy)]
struct Gap {
    end: u32,
    key_at: u32,
    key_len: u32,
}

impl Layout {
    /// Most members and gap bytes a layout keeps: a text with more is walked without one.
    const MAX_MEMBERS: usize = 64;
    const MAX_GAPS: usize = 4096;

    /// Whether a text was learned.
    pub fn is_learned(&self) -> bool {
        self.learned
    }

    fn forget(&mut self) {
        self.gaps.clear();
        self.members.clear();
        self.learned = false;
    }

    /// Notes the gap `text[from..value]` before a value whose key starts at `key_at`.
    fn note(&mut self, gap: &[u8], key_at: usize, key_len: usize) {
        self.gaps.extend_from_slice(gap);
        self.members.push(Gap { end: self.gaps.len() as u32, key_at: key_at as u32, key_len: key_len as u32 });
    }
}

/// Whether `text` starts with `gap` (see [`equal`]).
#[inline(always)]
fn starts_with(text: &[u8], gap: &[u8]) -> bool {
    text.get(..gap.len()).is_some_and(|text| equal(text, gap))
}

/// Whether `a` and `b` are the same bytes: for 4 to 32 bytes (a gap between values, a key, a
/// word a plugin looks for) two or four loads of each, and no call (a compiled plugin's
/// `memcmp` is a byte loop behind a call; the host's is a call into libc, which a hash
/// table's probe for a key of a few words made dearer than the probe).
#[inline(always)]
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |b: &[u8], at: usize| b.get(at..at + 8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
    let half = |b: &[u8], at: usize| b.get(at..at + 4).map(|w| u32::from_le_bytes(w.try_into().unwrap_or([0; 4])));
    match n {
        0..4 => a.iter().zip(b).all(|(x, y)| x == y),
        4..8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => {
            word(a, 0) == word(b, 0) && word(a, 8) == word(b, 8) && word(a, n - 16) == word(b, n - 16) && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

impl<'a> Scanner<'a> {
    /// [`Scanner::document_object`], learning the text's layout into `layout` when the
    /// walk reads it whole (and forgetting the one it had when not). `member` is also given
    /// each member's place (0, 1, …), which [`Scanner::document_object_as`] gives alike: a
    /// caller can keep what it made of a key by its place.
    pub fn document_object_learning(
        self,
        layout: &mut Layout,
        mut member: impl FnMut(&mut Self, &'a [u8], usize) -> Result<(), GiveUp>,
    ) -> Result<(), GiveUp> {
        let text = self.text;
        layout.forget();
        let mut last = 0;
        let walk = self.document_object(|s, key| {
            // The key is a part of the text: its offset is where it lies.
            let key_at = key.as_ptr() as usize - text.as_ptr() as usize;
            let place = layout.members.len();
            layout.note(&text[last..s.at()], key_at - last, key.len());
            member(s, key, place)?;
            last = s.at();
            Ok(())
        });
        if walk.is_ok() && layout.members.len() <= Layout::MAX_MEMBERS && layout.gaps.len() + text.len() - last <= Layout::MAX_GAPS {
            layout.gaps.extend_from_slice(&text[last..]);
            layout.learned = true;
        } else {
            layout.forget();
        }
        walk
    }

    /// The whole text as one object with the `layout` learned: each gap the same bytes (so the
    /// same keys in the same order, spaced alike), each value walked by `member` as
    /// [`Scanner::object`] has it walked (with the key and its place), and the same bytes
    /// after the last. Gives up when the text has another layout (or none was learned), or
    /// where `member` does; the caller then walks the text with
    /// [`Scanner::document_object_learning`], which decides.
    #[inline]
    pub fn document_object_as(
        mut self,
        layout: &Layout,
        mut member: impl FnMut(&mut Self, &'a [u8], usize) -> Result<(), GiveUp>,
    ) -> Result<(), GiveUp> {
        if !layout.learned {
            return Err(GiveUp);
        }
        let text = self.text;
        let mut start = 0;
        for (place, m) in layout.members.iter().enumerate() {
            let gap = &layout.gaps[start..m.end as usize];
            start = m.end as usize;
            if !text.get(self.at..).is_some_and(|rest| starts_with(rest, gap)) {
                return Err(GiveUp);
            }
            let key = self.at + m.key_at as usize;
            let key = text.get(key..key + m.key_len as usize).ok_or(GiveUp)?;
            self.at += gap.len();
            member(&mut self, key, place)?;
        }
        match text.get(self.at..) {
            Some(rest) if equal(rest, &layout.gaps[start..]) => Ok(()),
            _ => Err(GiveUp),
        }
    }
}

/// Where the top-level members `names` of a text that is one JSON object lie: for name `i`,
/// the start and end (byte offsets into `text`) of its value's text in `out[2i]` and
/// `out[2i + 1]`, or both 0 when the object has no such member, or has it more than once
/// (which of them counts, or whether that is an error, is for a full parser to say). A value
/// is never empty, so `(0, 0)` is no span; `out` holds two entries per name. Gives up,
/// leaving `out` all 0, on a text that is not one object the scanner reads whole, or longer
/// than `u32` offsets reach. What the host finds for a plugin's `read-fields`
/// (`weir_sdk::read_fields`), and what the SDK's test host finds alike. Gives how many
/// members the object has (`member-counts`), repeats and others included.
pub fn members<N: AsRef<[u8]>>(text: &[u8], names: &[N], out: &mut [u32]) -> Result<u32, GiveUp> {
    out.fill(0);
    let mut count = 0u32;
    // Names seen twice, by index (past 64 names, a repeat gives up on the whole text).
    let mut repeated = 0u64;
    let walk = match u32::try_from(text.len()) {
        Ok(_) => Scanner::new(text).document_object(|s, key| {
            count += 1;
            let start = s.at();
            s.value(1)?;
            match names.iter().position(|n| n.as_ref() == key) {
                Some(i) if out[2 * i + 1] != 0 => {
                    repeated |= 1u64.checked_shl(i as u32).ok_or(GiveUp)?;
                    Ok(())
                }
                Some(i) => {
                    (out[2 * i], out[2 * i + 1]) = (start as u32, s.at() as u32);
                    Ok(())
                }
                None => Ok(()),
            }
        }),
        Err(_) => Err(GiveUp),
    };
    if walk.is_err() {
        out.fill(0);
    }
    for (i, span) in out.chunks_exact_mut(2).enumerate().take(64) {
        if repeated & (1 << i) != 0 {
            span.fill(0);
        }
    }
    walk.map(|()| count)
}

/// The text of a JSON string value without escapes (`"ann"` gives `ann`), or `None` for any
/// other value: for a value found in a text already walked (see [`members`]), whose strings
/// are valid UTF-8.
pub fn plain_str(value: &[u8]) -> Option<&str> {
    match value {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => std::str::from_utf8(inner).ok(),
        _ => None,
    }
}

/// The `i64` a JSON value is when serde_json reads it as one ([`Scanner::integer`]), or
/// `None`.
#[inline]
pub fn plain_i64(value: &[u8]) -> Option<i64> {
    // Most are a few positive digits (epoch seconds): read at once, in range by their count
    // (18 digits at most), eight digits a word, the rest in one pass that reads and checks
    // each digit (two passes cost a Wasm plugin twice the loop, each iteration with its
    // deadline check). Unlike `Scanner::integer`, which must find where the number ends,
    // this knows it: the loop has no exit of its own, which measured 2 % of the keyed
    // threads' instructions.
    if let [b'1'..=b'9', ..] = value {
        if value.len() <= 18 {
            let (mut n, mut digits, mut rest) = (0u64, true, value);
            while let Some((word, tail)) = rest.split_first_chunk::<8>() {
                let (eight, ok) = eight_digits(u64::from_le_bytes(*word));
                digits &= ok;
                n = n.wrapping_mul(100_000_000).wrapping_add(eight);
                rest = tail;
            }
            for &d in rest {
                let x = d.wrapping_sub(b'0');
                digits &= x <= 9;
                n = n.wrapping_mul(10).wrapping_add(u64::from(x));
            }
            if digits {
                return Some(n as i64);
            }
        }
    }
    scanned_i64(value)
}

/// [`plain_i64`] of anything but a few positive digits: by [`Scanner::integer`], out of
/// line, so that the common case inlines where it is read.
#[inline(never)]
fn scanned_i64(value: &[u8]) -> Option<i64> {
    let mut s = Scanner::new(value);
    let n = s.integer().ok()?;
    s.end().ok().map(|()| n)
}

/// The number eight ASCII bytes (loaded little-endian: the first is the most significant)
/// write, and whether each is a digit (when not, the number is meaningless). SWAR, as
/// simdjson reads eight digits: a byte is a digit when it minus `'0'` is below 10, which
/// adding 0x76 tells by its top bit; then pairs, fours and the halves are joined.
#[inline(always)]
fn eight_digits(word: u64) -> (u64, bool) {
    const LOW: u64 = 0x3030_3030_3030_3030;
    let x = word.wrapping_sub(LOW);
    // Only the lowest byte that is not a digit matters: below it nothing borrows or carries.
    let ok = (x | x.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080 == 0;
    let x = (x.wrapping_mul(10).wrapping_add(x >> 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x.wrapping_mul(100).wrapping_add(x >> 16)) & 0x0000_ffff_0000_ffff;
    let x = (x.wrapping_mul(10_000).wrapping_add(x >> 32)) & 0xffff_ffff;
    (x, ok)
}

/// Random edits of texts, for tests that hold a walk against a reference on texts near
/// valid ones: bytes inserted, removed or changed, drawn from a small alphabet by a xorshift
/// generator (always the same edits for one seed, and no dependency).
pub mod testing {
    /// The generator and the bytes it inserts.
    #[derive(Debug, Clone)]
    pub struct Edits {
        x: u64,
        alphabet: &'static [u8],
    }

    impl Edits {
        /// Edits drawn from `seed` (not 0), inserting and writing bytes of `alphabet`.
        pub fn new(seed: u64, alphabet: &'static [u8]) -> Edits {
            Edits { x: seed.max(1), alphabet }
        }

        /// A number below `n` (not 0).
        pub fn below(&mut self, n: usize) -> usize {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            (self.x % n as u64) as usize
        }

        /// `text` with 1 to `most` edits.
        pub fn edit(&mut self, text: &[u8], most: usize) -> Vec<u8> {
            let mut text = text.to_vec();
            for _ in 0..1 + self.below(most) {
                let at = self.below(text.len() + 1);
                let c = self.alphabet[self.below(self.alphabet.len())];
                match self.below(3) {
                    0 => text.insert(at, c),
                    1 if at < text.len() => _ = text.remove(at),
                    _ if at < text.len() => text[at] = c,
                    _ => {}
                }
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(text: &str) -> bool {
        valid_bytes(text.as_bytes())
    }

    fn valid_bytes(text: &[u8]) -> bool {
        let mut s = Scanner::new(text);
        s.skip_ws();
        s.value(0).is_ok() && s.end().is_ok()
    }

    #[test]
    fn walks_the_grammar_strictly() {
        for ok in ["1", "-0", "0.5e+3", r#""a\"\u00e9""#, "[]", "{}", " [1, {\"a\": [true, false, null]}] ", "\t\r\n{\"a\":{}}"] {
            assert!(valid(ok), "{ok}");
        }
        for bad in [
            "",
            "01",
            "1.",
            "-",
            "1e",
            "+1",
            "[1,]",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "\"\x01\"",
            r#""\x""#,
            r#""\u12g4""#,
            "tru",
            "[1] 2",
            "{a:1}",
        ] {
            assert!(!valid(bad), "{bad}");
        }
    }

    #[test]
    fn integers_are_what_serde_json_reads_as_i64() {
        for text in [
            "0",
            "-0",
            "7",
            "-12",
            "1735689603",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.0",
            "1e3",
            "01",
            "-",
            "x",
            "99999999999999999999",
        ] {
            let serde = serde_json::from_str::<i64>(text).ok();
            let mut s = Scanner::new(text.as_bytes());
            let ours = s.integer().ok().filter(|_| s.end().is_ok());
            assert_eq!(ours, serde, "{text}");
        }
    }

    #[test]
    fn reports_integers_escapes_and_depth() {
        assert_eq!(Scanner::new(b"12").number(), Ok(true));
        assert_eq!(Scanner::new(b"1.0").number(), Ok(false));
        assert_eq!(Scanner::new(b"1e3").number(), Ok(false));
        assert_eq!(Scanner::new(br#""plain""#).string(), Ok(false));
        assert_eq!(Scanner::new(br#""t\tab""#).string(), Ok(true));
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(valid(&deep(MAX_DEPTH as usize)));
        assert!(!valid(&deep(MAX_DEPTH as usize + 1)));
        let mut keys = Vec::new();
        let escaped_key = Scanner::new(br#"{"a": 1, "\u0062": 2}"#).document_object(|s, k| {
            keys.push(k);
            s.value(1)
        });
        assert_eq!((escaped_key, keys), (Err(GiveUp), vec![&b"a"[..]]));
    }

    #[test]
    fn members_are_found_once_in_one_whole_object_or_not_at_all() {
        fn spans(text: &str) -> (Option<u32>, [&str; 3]) {
            let mut out = [9; 6];
            let count = members(text.as_bytes(), &["user", "n", "ts"], &mut out).ok();
            let at = |i: usize| &text[out[2 * i] as usize..out[2 * i + 1] as usize];
            (count, [at(0), at(1), at(2)])
        }
        // Found, and every member counted.
        assert_eq!(
            spans(r#" {"n": [1, {"ts": 2}], "x": "y", "user": "a\u0062", "ts": -3} "#),
            (Some(4), [r#""a\u0062""#, "[1, {\"ts\": 2}]", "-3"])
        );
        // Absent members have no span; nested ones are not top-level members.
        assert_eq!(spans(r#"{"user": "a"}"#), (Some(1), [r#""a""#, "", ""]));
        assert_eq!(spans(" {} "), (Some(0), ["", "", ""]));
        // A repeated member has no span (and counts twice); the others keep theirs.
        assert_eq!(spans(r#"{"ts": 1, "user": "a", "n": 2, "user": "b"}"#), (Some(4), ["", "2", "1"]));
        for gives_up in [r#"{"user": "a", }"#, r#"["user"]"#, r#"{"user": "a"} 1"#, r#"{"\u0075ser": "a"}"#, ""] {
            assert_eq!(spans(gives_up), (None, ["", "", ""]), "{gives_up}");
        }
        assert_eq!(plain_str(br#""ann""#), Some("ann"));
        assert_eq!(plain_str(br#""""#), Some(""));
        for not_plain in [&br#""a\"b""#[..], br#""a"#, b"7", b"\"", b"null"] {
            assert_eq!(plain_str(not_plain), None, "{not_plain:?}");
        }
        for text in [
            "-42",
            "0",
            "7",
            "1735689603",
            "999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "01",
            "1.5",
            "1e3",
            "\"1\"",
            "1 2",
            "12x",
            "1:3",
            "1/3",
            "123456789012345678",
            "1234567890123456789",
            "12345678901234567/",
            "99999999999999999\u{ff}",
            "",
        ] {
            assert_eq!(plain_i64(text.as_bytes()), serde_json::from_str::<i64>(text).ok(), "{text}");
        }
        // Every length to 20, each byte of a number in turn changed to one that is not a
        // digit (in the eight-digit words and in the rest), or to another digit.
        let digits = b"98765432101234567890";
        for len in 1..=digits.len() {
            for at in 0..len {
                for b in [b'/', b':', b'0', b'5', b'\x7f', b'\xb0', b'\xc3', b'-', b'.', b'e'] {
                    let mut text = digits[..len].to_vec();
                    text[at] = b;
                    let want = std::str::from_utf8(&text).ok().and_then(|t| serde_json::from_str::<i64>(t).ok());
                    assert_eq!(plain_i64(&text), want, "{:?}", String::from_utf8_lossy(&text));
                }
            }
        }
    }

    #[test]
    fn equal_is_slice_equality_at_every_length() {
        let a: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..a.len() {
            assert!(equal(&a[..n], &a[..n]));
            assert!(!equal(&a[..n], &a[..n + 1]), "lengths differ");
            // A byte changed anywhere is seen.
            for at in 0..n {
                let mut b = a[..n].to_vec();
                b[at] ^= 0x20;
                assert!(!equal(&a[..n], &b), "{n} {at}");
            }
        }
    }

    #[test]
    fn a_text_walked_in_a_learned_layout_is_walked_as_a_whole_walk_walks_it() {
        type Calls<'a> = Vec<(&'a [u8], usize, usize, usize)>;
        // The members a walk saw: key, place, and where the value lies.
        fn seen<'a>(
            walk: impl FnOnce(&mut dyn FnMut(&mut Scanner<'a>, &'a [u8], usize) -> Result<(), GiveUp>) -> Result<(), GiveUp>,
        ) -> Option<Calls<'a>> {
            let mut calls = Vec::new();
            let walked = walk(&mut |s, key, place| {
                let start = s.at();
                s.value(1)?;
                calls.push((key, place, start, s.at()));
                Ok(())
            });
            walked.ok().map(|()| calls)
        }
        fn whole(text: &[u8]) -> Option<Calls<'_>> {
            let mut place = 0;
            seen(|m| {
                Scanner::new(text).document_object(|s, key| {
                    place += 1;
                    m(s, key, place - 1)
                })
            })
        }
        fn learning<'a>(layout: &mut Layout, text: &'a [u8]) -> Option<Calls<'a>> {
            seen(|m| Scanner::new(text).document_object_learning(layout, m))
        }
        fn within<'a>(layout: &Layout, text: &'a [u8]) -> Option<Calls<'a>> {
            seen(|m| Scanner::new(text).document_object_as(layout, m))
        }
        // Gaps shorter than 8 bytes, of 8 to 16, and longer; whitespace around; nesting.
        let seeds: [&[u8]; 5] = [
            br#"{"user_id": "user38", "session_id": "session_2542", "action": "view", "timestamp": 1735689603, "metadata": {}}"#,
            br#" {"a":1,"bb":[true,null],"a_much_longer_key_than_sixteen":"x\"y", "c" : {"d": -2.5e3}}  "#,
            br#"{}"#,
            br#"{"k":"v"}"#,
            b"{\t\"\xc3\xa9\": \"\xe2\x9c\x93\",\n\"n\": 0}",
        ];
        let mut layout = Layout::default();
        assert!(within(&layout, seeds[0]).is_none(), "nothing learned yet");
        let mut edits = testing::Edits::new(0x2545_f491_4f6c_dd1d, b"{}[]\",:\\ \t0123456789-.eEtrufalsnxyk_\x01\xc3\xa9");
        let (mut same, mut other) = (0, 0);
        let mut seed = seeds[0];
        for i in 0..100_000 {
            // Now and then another seed, learned, edited until the next.
            if i == 0 || edits.below(8) == 0 {
                seed = seeds[edits.below(seeds.len())];
                assert_eq!(learning(&mut layout, seed), whole(seed));
                assert!(layout.is_learned(), "{}", String::from_utf8_lossy(seed));
                assert_eq!(within(&layout, seed), whole(seed), "{}", String::from_utf8_lossy(seed));
            }
            let text = edits.edit(seed, 2);
            // In the layout, the walk is the whole walk's; out of it, it gives up.
            match within(&layout, &text) {
                Some(calls) => {
                    assert_eq!(Some(calls), whole(&text), "{}", String::from_utf8_lossy(&text));
                    same += 1;
                }
                None => other += 1,
            }
        }
        assert!(same > 8_000 && other > 20_000, "walked in the layout {same}, not {other}");
        // Learning forgets on a text it cannot walk.
        assert_eq!(learning(&mut layout, b"{\"a\": }"), None);
        assert!(!layout.is_learned());
    }

    #[test]
    fn checks_utf8_inside_strings_and_refuses_it_outside() {
        // Random strings of bytes that make, break and cut UTF-8 sequences, short and past
        // the eight-byte steps: the walk agrees with std on every one.
        let bytes = [b'a', 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90];
        let mut x: u32 = 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut valid_seen = 0;
        for _ in 0..200_000 {
            let body: Vec<u8> = (0..next() % 7).map(|_| bytes[(next() % 16) as usize]).collect();
            for pad in ["", "0123456789"] {
                let mut text = format!("\"{pad}").into_bytes();
                text.extend_from_slice(&body);
                text.push(b'"');
                let want = std::str::from_utf8(&text).is_ok();
                valid_seen += usize::from(want);
                assert_eq!(valid_bytes(&text), want, "{text:?}");
            }
        }
        assert!(valid_seen > 10_000, "{valid_seen}");
        assert!(valid("\"h\u{e9}llo \u{2713} \u{1f600}\""));
        assert!(!valid_bytes(b"[1, \xc3\xa9]"));
    }
}
