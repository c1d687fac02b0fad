use weir_sdk::{Record, Result};

#[weir_sdk::process]
fn count(rec: Record) -> Result<()> {
    let _ = rec;
    Ok(())
}

fn main() {}
