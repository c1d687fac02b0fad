use weir_sdk::{Config, Filter, Record, Result};

pub struct Even;

#[weir_sdk::map]
impl Filter for Even {
    fn open(_: &Config) -> Result<Self> {
        Ok(Even)
    }
    fn filter(&mut self, _: &Record) -> Result<bool> {
        Ok(true)
    }
}

fn main() {}
