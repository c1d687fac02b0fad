//! Window shapes: each one an [`Assigner`] with its own fields, found by its `type` in
//! [`SHAPES`]. A new shape is a struct that implements [`Assigner`], and one line there.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use weir_core::config::{checked, positive_duration, Check, FieldError};

/// The most windows one record may fall into (sliding windows: `size / slide`). Each is a
/// state update per record; Flink sets no bound, and 10,000 made 2,000 lines run for minutes.
pub const MAX_WINDOWS_PER_RECORD: u64 = 1000;

/// The shapes a job file's `window = { type = "..." }` may name.
pub const SHAPES: &[WindowShape] = &[
    WindowShape { name: "tumbling", configure: typed::<Tumbling> },
    WindowShape { name: "sliding", configure: typed::<Sliding> },
    WindowShape { name: "session", configure: typed::<Session> },
    WindowShape { name: "count", configure: typed::<Count> },
];

/// A window shape: its `type` and how its fields become an assigner.
#[derive(Debug)]
pub struct WindowShape {
    /// `type = "NAME"`.
    pub name: &'static str,
    /// Reads and checks the shape's fields (the `window` table without `type` and `time`).
    pub configure: fn(toml::Table) -> Result<Arc<dyn Assigner>, FieldError>,
}

/// The shape named `name`.
pub fn shape(name: &str) -> Option<&'static WindowShape> {
    SHAPES.iter().find(|s| s.name == name)
}

fn typed<A: Assigner + DeserializeOwned + 'static>(t: toml::Table) -> Result<Arc<dyn Assigner>, FieldError> {
    Ok(Arc::new(checked::<A>(t)?))
}

/// Count windows fire on element counts, not on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counting {
    /// Elements per window (the last ones of the key).
    pub count: u64,
    /// Fire every this many elements.
    pub every: u64,
}

/// Which windows a record falls into.
pub trait Assigner: Check + std::fmt::Debug + Send + Sync {
    /// Adds the windows `[start, end)` (ms) a record at `ts` falls into to `into`. A merging
    /// shape gives the record's own window, which then merges with the key's overlapping ones.
    fn assign(&self, ts: i64, into: &mut Vec<(i64, i64)>);
    /// Whether overlapping windows of a key merge into one (sessions).
    fn merging(&self) -> bool {
        false
    }
    /// Count windows: fired by element counts (then [`Assigner::assign`] is not used).
    fn counting(&self) -> Option<Counting> {
        None
    }
    /// Where every record from the latest window start a record falls into up to this many
    /// ms after it falls into the same windows (tumbling windows, and sliding ones whose
    /// size is a multiple of the slide): a caller may then keep the windows it was given.
    fn period(&self) -> Option<i64> {
        None
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// `[k*size, (k+1)*size)`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tumbling {
    /// Length.
    #[serde(deserialize_with = "positive_duration")]
    pub size: Duration,
}

impl Check for Tumbling {}

impl Assigner for Tumbling {
    fn assign(&self, ts: i64, into: &mut Vec<(i64, i64)>) {
        let size = ms(self.size);
        let start = ts - ts.rem_euclid(size);
        into.push((start, start + size));
    }

    fn period(&self) -> Option<i64> {
        Some(ms(self.size))
    }
}

/// Windows of `size` starting every `slide`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sliding {
    /// Length.
    #[serde(deserialize_with = "positive_duration")]
    pub size: Duration,
    /// Time between window starts.
    #[serde(deserialize_with = "positive_duration")]
    pub slide: Duration,
}

impl Check for Sliding {
    fn check(&self) -> Result<(), FieldError> {
        let (size, slide) = (ms(self.size) as u64, ms(self.slide) as u64);
        if slide > size {
            return Err(FieldError::new("slide", "a slide longer than the size skips records; use a slide ≤ size"));
        }
        let per_record = size.div_ceil(slide);
        if per_record > MAX_WINDOWS_PER_RECORD {
            return Err(FieldError::new(
                "slide",
                format!(
                    "each record would fall into {per_record} windows (size / slide); at most {MAX_WINDOWS_PER_RECORD}: use a longer slide"
                ),
            ));
        }
        Ok(())
    }
}

impl Assigner for Sliding {
    fn assign(&self, ts: i64, into: &mut Vec<(i64, i64)>) {
        let (size, slide) = (ms(self.size), ms(self.slide));
        let mut start = ts - ts.rem_euclid(slide);
        while start > ts - size {
            into.push((start, start + size));
            start -= slide;
        }
    }

    fn period(&self) -> Option<i64> {
        let (size, slide) = (ms(self.size), ms(self.slide));
        (size % slide == 0).then_some(slide)
    }
}

/// Sessions closed by a gap of inactivity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The inactivity that closes a session.
    #[serde(deserialize_with = "positive_duration")]
    pub gap: Duration,
}

impl Check for Session {}

impl Assigner for Session {
    fn assign(&self, ts: i64, into: &mut Vec<(i64, i64)>) {
        into.push((ts, ts + ms(self.gap)));
    }

    fn merging(&self) -> bool {
        true
    }
}

/// Every `every` elements of a key, over its last `count` elements.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Count {
    /// Elements per window.
    pub count: u64,
    /// Fire every this many elements (a sliding count window); default `count`.
    #[serde(default)]
    pub every: Option<u64>,
}

impl Check for Count {
    fn check(&self) -> Result<(), FieldError> {
        if self.count == 0 {
            return Err(FieldError::new("count", "must be at least 1"));
        }
        if self.every == Some(0) {
            return Err(FieldError::new("every", "must be at least 1"));
        }
        Ok(())
    }
}

impl Assigner for Count {
    fn assign(&self, _ts: i64, _into: &mut Vec<(i64, i64)>) {}

    fn counting(&self) -> Option<Counting> {
        Some(Counting { count: self.count, every: self.every.unwrap_or(self.count) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(text: &str) -> Result<Arc<dyn Assigner>, FieldError> {
        let mut t: toml::Table = text.parse().expect("a table");
        let name = t.remove("type").and_then(|v| v.as_str().map(str::to_string)).expect("a type");
        (shape(&name).expect("a shape").configure)(t)
    }

    #[test]
    fn shapes_assign_flinks_windows() {
        let mut w = Vec::new();
        configure("type = 'tumbling'\nsize = '10ms'").expect("valid").assign(-3, &mut w);
        assert_eq!(w, [(-10, 0)]);
        w.clear();
        configure("type = 'sliding'\nsize = '10ms'\nslide = '5ms'").expect("valid").assign(12, &mut w);
        assert_eq!(w, [(10, 20), (5, 15)]);
        let session = configure("type = 'session'\ngap = '3ms'").expect("valid");
        w.clear();
        session.assign(7, &mut w);
        assert_eq!((w, session.merging()), (vec![(7, 10)], true));
        let count = configure("type = 'count'\ncount = 3").expect("valid");
        assert_eq!(count.counting(), Some(Counting { count: 3, every: 3 }));
    }

    #[test]
    fn records_within_a_period_of_the_latest_start_fall_into_the_same_windows() {
        let assigned = |a: &Arc<dyn Assigner>, ts: i64| {
            let mut w = Vec::new();
            a.assign(ts, &mut w);
            w
        };
        for text in [
            "type = 'tumbling'\nsize = '10ms'",
            "type = 'sliding'\nsize = '12ms'\nslide = '4ms'",
            "type = 'sliding'\nsize = '4ms'\nslide = '4ms'",
        ] {
            let a = configure(text).expect("valid");
            let period = a.period().expect("a period");
            for ts in -40..40 {
                let windows = assigned(&a, ts);
                let latest = windows[0].0;
                assert!(latest <= ts && ts < latest + period, "{text}: {ts}");
                for other in latest..latest + period {
                    assert_eq!(assigned(&a, other), windows, "{text}: {ts} and {other}");
                }
            }
        }
        // Where the size is no multiple of the slide, the number of windows changes between
        // two starts: no period.
        let uneven = configure("type = 'sliding'\nsize = '10ms'\nslide = '3ms'").expect("valid");
        assert_eq!(uneven.period(), None);
        assert_ne!(assigned(&uneven, 3).len(), assigned(&uneven, 5).len());
        assert_eq!(configure("type = 'session'\ngap = '3ms'").expect("valid").period(), None);
    }

    #[test]
    fn shapes_refuse_what_cannot_run() {
        let field = |t: &str| configure(t).unwrap_err().field;
        assert_eq!(field("type = 'sliding'\nsize = '10s'\nslide = '1ms'"), "slide");
        assert_eq!(field("type = 'sliding'\nsize = '1s'\nslide = '2s'"), "slide");
        assert_eq!(field("type = 'tumbling'\nsize = '0s'"), "size");
        assert_eq!(field("type = 'tumbling'\nsize = '1s'\ngap = '1s'"), "gap");
        assert_eq!(field("type = 'count'\ncount = 0"), "count");
        assert_eq!(configure("type = 'session'").unwrap_err().message, "missing field `gap`");
    }
}
