//! Records and their helpers: JSON payloads in and out, borrowed views, what a map made of
//! a record, error constructors.

use serde::{Deserialize, Serialize};

use crate::wit::weir::plugin::types::Header;
use crate::{Error, Record, Result};

/// A record borrowed from the batch the host sent: what the `*_view` methods of [`Map`],
/// [`Filter`] and [`KeySelector`] take, so a record is read where it lies instead of being
/// copied into a [`Record`] first.
///
/// [`Map`]: crate::Map
/// [`Filter`]: crate::Filter
/// [`KeySelector`]: crate::KeySelector
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// The key, when the record has one.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub value: &'a [u8],
    /// Event time in epoch ms, when the record has one.
    pub timestamp: Option<i64>,
    headers: Headers<'a>,
    /// Where the members named with [`read_fields`](crate::read_fields) lie in `value`: two
    /// offsets per member, `(0, 0)` for one the host did not find (empty: none asked for).
    fields: &'a [u32],
    /// How many members the value has, as the host counted them (0: not counted).
    members: u32,
}

/// The headers of a view: as they came in a batch, or those of an owned [`Record`].
#[derive(Debug, Clone, Copy)]
enum Headers<'a> {
    Batch(&'a [Header]),
    Owned(&'a [(String, Vec<u8>)]),
}

impl<'a> RecordView<'a> {
    /// A view of record parts from a batch; `headers` are this record's own.
    pub(crate) fn of_batch(r: weir_batch::RecordRef<'a>, headers: &'a [Header]) -> RecordView<'a> {
        RecordView { key: r.key, value: r.value, timestamp: r.timestamp, headers: Headers::Batch(headers), fields: &[], members: 0 }
    }

    /// This view with what the host found of the members named with
    /// [`read_fields`](crate::read_fields): two offsets into the value per member, as
    /// `field-spans` gives them for one record, and how many members the value has
    /// (`member-counts`), as [`json::members`](crate::json::members) finds and counts them.
    /// The SDK lends the records of each call so; a test can build one alike.
    pub fn with_fields(self, spans: &'a [u32], members: u32) -> RecordView<'a> {
        RecordView { fields: spans, members, ..self }
    }

    /// The value text of member `i` of those named with [`read_fields`](crate::read_fields)
    /// (`"ann"`, `42`, `{...}` as written), where the host found it, in a value it checked
    /// to be valid JSON; `None` where it did not (absent, repeated, or a value it does not
    /// read whole: read the value yourself, as with [`RecordView::json`], whose error then
    /// says what is wrong).
    #[inline(always)]
    pub fn field(&self, i: usize) -> Option<&'a [u8]> {
        match (self.fields.get(2 * i), self.fields.get(2 * i + 1)) {
            (Some(&start), Some(&end)) if end > 0 => self.value.get(start as usize..end as usize),
            _ => None,
        }
    }

    /// Member `i` (see [`RecordView::field`]) when it is a string without escapes: its text,
    /// borrowed from the value.
    #[inline]
    pub fn field_str(&self, i: usize) -> Option<&'a str> {
        self.field(i).and_then(crate::json::plain_str)
    }

    /// Member `i` (see [`RecordView::field`]) when it is an integer that fits an `i64` (as
    /// serde_json reads one).
    #[inline]
    pub fn field_i64(&self, i: usize) -> Option<i64> {
        self.field(i).and_then(crate::json::plain_i64)
    }

    /// Whether the value is a JSON object whose members are those named with
    /// [`read_fields`](crate::read_fields) that the host found, each once, and no other: as
    /// many members as found spans (`member-counts`). A plugin that checks a record's shape
    /// then reads none of it but its fields. False where the host did not count them.
    #[inline]
    pub fn has_only_fields(&self) -> bool {
        self.members > 0 && self.members as usize == self.fields.chunks_exact(2).filter(|s| s[1] != 0).count()
    }

    /// Parses the value as JSON; a parse failure is [`Error::InvalidInput`]. `T` may borrow
    /// from the value (`&'a str`, `Cow<'a, str>` with `#[serde(borrow)]`): no copy of its
    /// strings.
    pub fn json<T: Deserialize<'a>>(&self) -> Result<T> {
        serde_json::from_slice(self.value).map_err(|e| Error::InvalidInput(format!("value is not the expected JSON: {e}")))
    }

    /// The value as UTF-8 text; invalid UTF-8 is [`Error::InvalidInput`].
    pub fn text(&self) -> Result<&'a str> {
        std::str::from_utf8(self.value).map_err(|e| Error::InvalidInput(format!("value is not UTF-8: {e}")))
    }

    /// The headers, in order (names may repeat).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let (batch, owned) = match self.headers {
            Headers::Batch(h) => (h, &[][..]),
            Headers::Owned(h) => (&[][..], h),
        };
        batch.iter().map(|h| (h.name.as_str(), h.value.as_slice())).chain(owned.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// An owned copy. Inside a plugin the value is built in a buffer that an earlier record
    /// handed back, so copying record after record allocates no value per record.
    #[inline]
    pub fn to_record(&self) -> Record {
        let mut value = crate::rt::spare_buffer();
        value.extend_from_slice(self.value);
        Record {
            key: self.key.map(<[u8]>::to_vec),
            value,
            timestamp: self.timestamp,
            headers: match self.headers {
                Headers::Batch([]) | Headers::Owned([]) => Vec::new(),
                _ => self.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
            },
        }
    }
}

/// What a map made of a record it was lent ([`Map::map_view`](crate::Map::map_view)).
#[derive(Debug, Clone)]
pub enum Mapped {
    /// The record goes on as it came: key, value, event time and headers. Nothing crosses
    /// back to the host, which keeps its own copy: the cheapest answer.
    Unchanged,
    /// The record goes on with this value; key, event time and headers as they came.
    Value(Vec<u8>),
    /// This record replaces it.
    Record(Record),
    /// The record goes on with its value and headers as they came, and with this key and
    /// event time (`None` keeps the event time it came with). Only the key and event time
    /// cross back: the answer of a map that reads fields out of a record for the host (the
    /// key a later `key-by = { record-key = ... }` keys by, the event time a `watermark` on
    /// the operator reads). See [`Mapped::value_as_is`].
    ValueAsIs {
        /// The record's key from now on (`None`: no key).
        key: Option<Vec<u8>>,
        /// Its event time in epoch milliseconds (`None`: the one it came with).
        timestamp: Option<i64>,
    },
}

impl Mapped {
    /// [`Mapped::Value`] holding `value` as JSON, written into a reused buffer.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Mapped> {
        let mut buf = crate::rt::spare_buffer();
        serde_json::to_writer(&mut buf, value).map_err(|e| Error::Other(format!("serialize: {e}")))?;
        Ok(Mapped::Value(buf))
    }

    /// [`Mapped::ValueAsIs`] with a copy of `key` in a reused buffer (no allocation per
    /// record).
    #[inline]
    pub fn value_as_is(key: Option<&[u8]>, timestamp: Option<i64>) -> Mapped {
        let key = key.map(|k| {
            let mut buf = crate::rt::spare_buffer();
            buf.extend_from_slice(k);
            buf
        });
        Mapped::ValueAsIs { key, timestamp }
    }

    /// The record this answer makes of `rec` (the record the view was of).
    pub fn apply(self, rec: Record) -> Record {
        match self {
            Mapped::Unchanged => rec,
            Mapped::Value(value) => Record { value, ..rec },
            Mapped::Record(r) => r,
            Mapped::ValueAsIs { key, timestamp } => Record { key, timestamp: timestamp.or(rec.timestamp), ..rec },
        }
    }
}

impl Record {
    /// A record with a JSON value and nothing else.
    pub fn from_json<T: Serialize + ?Sized>(value: &T) -> Result<Record> {
        Ok(Record {
            key: None,
            value: serde_json::to_vec(value).map_err(|e| Error::Other(format!("serialize: {e}")))?,
            timestamp: None,
            headers: Vec::new(),
        })
    }

    /// A record with these raw value bytes.
    pub fn from_bytes(value: impl Into<Vec<u8>>) -> Record {
        Record { key: None, value: value.into(), timestamp: None, headers: Vec::new() }
    }

    /// A borrowed view of this record.
    pub fn view(&self) -> RecordView<'_> {
        RecordView {
            key: self.key.as_deref(),
            value: &self.value,
            timestamp: self.timestamp,
            headers: Headers::Owned(&self.headers),
            fields: &[],
            members: 0,
        }
    }

    /// Parses the value as JSON; a parse failure is [`Error::InvalidInput`]. `T` may borrow
    /// from the value, as with [`RecordView::json`].
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T> {
        self.view().json()
    }

    /// The value as UTF-8 text; invalid UTF-8 is [`Error::InvalidInput`].
    pub fn text(&self) -> Result<&str> {
        self.view().text()
    }

    /// This record with its value replaced by `value` as JSON (key, time, headers kept).
    /// The JSON is written into the old value's buffer.
    pub fn with_json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Record> {
        self.value.clear();
        serde_json::to_writer(&mut self.value, value).map_err(|e| Error::Other(format!("serialize: {e}")))?;
        Ok(self)
    }

    /// This record with event time `timestamp` (epoch ms).
    pub fn with_timestamp(mut self, timestamp: i64) -> Record {
        self.timestamp = Some(timestamp);
        self
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.view().header(name)
    }
}

impl Error {
    /// [`Error::InvalidInput`] with a message.
    pub fn invalid_input(msg: impl Into<String>) -> Error {
        Error::InvalidInput(msg.into())
    }
    /// [`Error::InvalidConfig`] with a message.
    pub fn invalid_config(msg: impl Into<String>) -> Error {
        Error::InvalidConfig(msg.into())
    }
    /// [`Error::Other`] with a message.
    pub fn other(msg: impl Into<String>) -> Error {
        Error::Other(msg.into())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::InvalidInput(e.to_string())
    }
}
