//! Typed keyed state over the host's byte state (serde JSON encoding).
//!
//! Every handle acts on the state of the current key. Handles are cheap names: create them
//! where you need them (`ValueState::<u64>::new("count")`).

use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Serialize};

use crate::{host, reads, Error, Result};

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    with_encoded(v, <[u8]>::to_vec)
}

thread_local! {
    /// The room [`with_encoded`] writes values in, kept from write to write.
    static ENCODED: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `v` encoded as [`encode`] encodes it, handed to `f` where it lies: a write copies what
/// it keeps, so no block is made and freed for each (in a plugin every allocation is a call
/// into its allocator).
fn with_encoded<T: Serialize + ?Sized, R>(v: &T, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    let mut room = ENCODED.take();
    room.clear();
    let written = serde_json::to_writer(&mut room, v);
    let out = written.map(|()| f(&room)).map_err(|e| Error::Other(format!("state: cannot serialize: {e}")));
    ENCODED.set(room);
    out
}

fn decode<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T> {
    // Most stored values are integers (times, counts) or booleans: read in one pass and
    // handed to `T` as serde_json hands them (`visit_u64` when not negative, `visit_i64` when
    // negative, `visit_bool`), without its reader. Anything else, or a `T` that refuses what
    // it is handed, is serde_json's to read.
    use serde::de::value::{BoolDeserializer, Error as Refused, I64Deserializer, U64Deserializer};
    let read = match bytes {
        b"true" | b"false" => Some(T::deserialize(BoolDeserializer::<Refused>::new(bytes == b"true"))),
        _ => crate::json::plain_i64(bytes).map(|n| match u64::try_from(n) {
            Ok(n) => T::deserialize(U64Deserializer::<Refused>::new(n)),
            Err(_) => T::deserialize(I64Deserializer::<Refused>::new(n)),
        }),
    };
    if let Some(Ok(v)) = read {
        return Ok(v);
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Other(format!("state `{name}`: stored value does not decode: {e}")))
}

/// The bytes of state values, for a [`crate::Migrate`] implementation: the encoding every
/// state type of this SDK reads and writes.
pub mod migrate {
    use serde::{de::DeserializeOwned, Serialize};

    /// A value as a state type stores it.
    pub fn encode<T: Serialize + ?Sized>(v: &T) -> crate::Result<Vec<u8>> {
        super::encode(v)
    }

    /// A stored value of state `name`, decoded.
    pub fn decode<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> crate::Result<T> {
        super::decode(name, bytes)
    }
}

/// One value per key (Flink's `ValueState<T>`).
#[derive(Debug, Clone)]
pub struct ValueState<T> {
    name: String,
    _t: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> ValueState<T> {
    /// The handle of value state `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ValueState { name: name.into(), _t: PhantomData }
    }
    /// The current key's value; `None` when it has none.
    pub fn get(&self) -> Result<Option<T>> {
        reads::value(&self.name, |b| b.map(|b| decode(&self.name, b)).transpose())
    }
    /// Sets the current key's value.
    pub fn set(&self, value: &T) -> Result<()> {
        with_encoded(value, |v| reads::value_set(&self.name, v))
    }
    /// Clears the current key's value.
    pub fn clear(&self) {
        reads::value_clear(&self.name)
    }
}

/// A list of values per key (Flink's `ListState<T>`).
#[derive(Debug, Clone)]
pub struct ListState<T> {
    name: String,
    _t: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> ListState<T> {
    /// The handle of list state `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ListState { name: name.into(), _t: PhantomData }
    }
    /// All elements in insertion order; empty when there are none.
    pub fn get(&self) -> Result<Vec<T>> {
        reads::list(&self.name, |items| items.iter().map(|b| decode(&self.name, b)).collect())
    }
    /// Appends one element.
    pub fn add(&self, value: &T) -> Result<()> {
        with_encoded(value, |v| reads::list_add(&self.name, v))
    }
    /// Replaces the whole list; an empty slice clears it.
    pub fn update(&self, values: &[T]) -> Result<()> {
        let encoded = values.iter().map(|v| encode(v)).collect::<Result<Vec<_>>>()?;
        reads::list_update(&self.name, &encoded);
        Ok(())
    }
    /// Clears the list.
    pub fn clear(&self) {
        reads::list_clear(&self.name)
    }
}

/// A map per key (Flink's `MapState<K, V>`). Entries iterate in the order of their encoded
/// keys.
#[derive(Debug, Clone)]
pub struct MapState<K, V> {
    name: String,
    _t: PhantomData<(K, V)>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> MapState<K, V> {
    /// The handle of map state `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MapState { name: name.into(), _t: PhantomData }
    }
    /// The value under `key`; `None` when absent.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        reads::flush();
        host::map_get(&self.name, &encode(key)?).map(|b| decode(&self.name, &b)).transpose()
    }
    /// Puts `value` under `key`.
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        reads::flush();
        host::map_put(&self.name, &encode(key)?, &encode(value)?);
        Ok(())
    }
    /// Removes `key`; a no-op when absent.
    pub fn remove(&self, key: &K) -> Result<()> {
        reads::flush();
        host::map_remove(&self.name, &encode(key)?);
        Ok(())
    }
    /// Whether `key` is present.
    pub fn contains(&self, key: &K) -> Result<bool> {
        reads::flush();
        Ok(host::map_contains(&self.name, &encode(key)?))
    }
    /// All entries.
    pub fn entries(&self) -> Result<Vec<(K, V)>> {
        reads::flush();
        host::map_entries(&self.name).iter().map(|(k, v)| Ok((decode(&self.name, k)?, decode(&self.name, v)?))).collect()
    }
    /// Clears the map.
    pub fn clear(&self) {
        reads::flush();
        host::map_clear(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::decode;
    use serde::de::DeserializeOwned;

    /// `decode` answers as serde_json does: the same value, or an error where it errs.
    fn agrees<T: DeserializeOwned + PartialEq + std::fmt::Debug>(text: &str) {
        let ours = decode::<T>("s", text.as_bytes()).ok();
        let serde = serde_json::from_str::<T>(text).ok();
        assert_eq!(ours, serde, "{text} as {}", std::any::type_name::<T>());
    }

    #[test]
    fn stored_numbers_and_booleans_decode_as_serde_json_decodes_them() {
        for text in [
            "0",
            "7",
            "-7",
            "1735689603",
            "255",
            "256",
            "-1",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "-9223372036854775808",
            "-0",
            "01",
            "1.5",
            "1e3",
            "true",
            "false",
            "null",
            "\"7\"",
            "[1]",
            "tru",
            "",
        ] {
            agrees::<i64>(text);
            agrees::<u64>(text);
            agrees::<u8>(text);
            agrees::<i32>(text);
            agrees::<f64>(text);
            agrees::<bool>(text);
            agrees::<Option<i64>>(text);
            agrees::<Option<bool>>(text);
            agrees::<String>(text);
            agrees::<Vec<i64>>(text);
            agrees::<serde_json::Value>(text);
        }
    }
}
