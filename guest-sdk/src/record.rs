//! Record and error helpers: JSON payloads in and out, error constructors.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Record, Result};

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

    /// Parses the value as JSON; a parse failure is [`Error::InvalidInput`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.value).map_err(|e| Error::InvalidInput(format!("value is not the expected JSON: {e}")))
    }

    /// The value as UTF-8 text; invalid UTF-8 is [`Error::InvalidInput`].
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.value).map_err(|e| Error::InvalidInput(format!("value is not UTF-8: {e}")))
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
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
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
