use weir_sdk::{Record, Result};

#[weir_sdk::map]
fn double(a: Record, b: Record) -> Result<Record> {
    let _ = b;
    Ok(a)
}

fn main() {}
