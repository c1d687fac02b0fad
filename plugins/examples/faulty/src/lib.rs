//! A misbehaving map for dead-letter tests: `{"n": -1}` is rejected with a reason, `{"n": 13}`
//! traps (panics), `{"n": 99}` never returns (a loop the call deadline must stop), `{"n": 512}`
//! allocates past the memory cap, `{"n": 64}` answers with a value too large for it,
//! anything else passes. With config `{"fail_init": true}` init fails.

use weir_sdk::{Config, Error, Map, Record, Result};

/// The fixture.
pub struct Faulty;

#[weir_sdk::map]
impl Map for Faulty {
    fn open(config: &Config) -> Result<Self> {
        if config.field_or("fail_init", false)? {
            return Err(Error::invalid_config("fail_init is set"));
        }
        if config.field_or("trap_init", false)? {
            panic!("trap in init, as configured");
        }
        Ok(Faulty)
    }

    fn map(&mut self, rec: Record) -> Result<Record> {
        let v: serde_json::Value = rec.json()?;
        match v.get("n").and_then(|n| n.as_i64()) {
            Some(n) if n < 0 => Err(Error::invalid_input(format!("n = {n} is negative"))),
            Some(13) => panic!("unlucky 13"),
            Some(99) => {
                let mut spins = 0u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            Some(512) => {
                // 1 GiB at once, past the 512 MiB a plugin instance may grow to.
                let hog = std::hint::black_box(vec![1u8; 1 << 30]);
                Ok(Record::from_bytes(&hog[..8]))
            }
            Some(64) => {
                // An answer that outgrows the memory cap as it is built.
                let mut out = Vec::new();
                for _ in 0..(1 << 20) {
                    out.extend_from_slice(&[b' '; 1024]);
                }
                Ok(Record::from_bytes(out))
            }
            _ => Ok(rec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_negative() {
        let out = weir_sdk::testing::run_map::<Faulty>(serde_json::json!({}), vec![Record::from_bytes(r#"{"n":-1}"#)]).unwrap();
        assert!(matches!(&out[0], Err(Error::InvalidInput(m)) if m.contains("negative")));
    }
}
