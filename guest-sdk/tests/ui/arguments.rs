use weir_sdk::{Record, Result};

#[weir_sdk::filter(strict)]
fn even(rec: &Record) -> Result<bool> {
    let _ = rec;
    Ok(true)
}

fn main() {}
