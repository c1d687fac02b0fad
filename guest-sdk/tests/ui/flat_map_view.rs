use weir_sdk::{Record, RecordView, Result};

#[weir_sdk::flat_map]
fn split(rec: RecordView) -> Result<Vec<Record>> {
    Ok(vec![rec.to_record()])
}

fn main() {}
