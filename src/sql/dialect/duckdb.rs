//! DuckDB: the embedded engine. The trait's defaults are DuckDB SQL, so
//! nothing is overridden.

use super::Dialect;

pub struct DuckDb;

impl Dialect for DuckDb {
    fn name(&self) -> &'static str {
        "duckdb"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }
}
