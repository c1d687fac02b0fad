//! What the `double` map and the `even` filter do to a JSON integer, as plain Rust on value
//! bytes: the native side of the benchmarks' map+filter rows (`bench/benches/wasm_tax.rs`),
//! and, built for wasm32-wasip2 (`examples/map_filter_twin.rs`), the same code in Wasm without
//! the plugin boundary.

/// The `double` map: `x * factor`, written over the value; the plugin reads its factor from
/// its config, so callers pass one the compiler cannot see (`std::hint::black_box`).
pub fn double(value: &mut Vec<u8>, factor: i64) -> Result<(), String> {
    let x: i64 = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let y = x.checked_mul(factor).ok_or_else(|| format!("{x} * {factor} overflows"))?;
    value.clear();
    serde_json::to_writer(&mut *value, &y).map_err(|e| e.to_string())
}

/// The `even` filter.
pub fn even(value: &[u8]) -> Result<bool, String> {
    let x: i64 = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    Ok(x % 2 == 0)
}

/// The benchmarks' input: `n` JSON integers below 100,000.
pub fn sample_values(n: usize) -> Vec<Vec<u8>> {
    (0..n as i64).map(|i| (i * 7919 % 100_000).to_string().into_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_keeps_even_and_rejects_what_the_plugins_reject() {
        let mut v = b"21".to_vec();
        double(&mut v, 2).unwrap();
        assert_eq!(v, b"42");
        assert_eq!(even(&v), Ok(true));
        assert_eq!(even(b"7"), Ok(false));
        assert!(double(&mut b"\"x\"".to_vec(), 2).is_err());
        assert!(double(&mut i64::MAX.to_string().into_bytes(), 2).is_err());
        assert!(even(b"1.5").is_err());
    }
}
