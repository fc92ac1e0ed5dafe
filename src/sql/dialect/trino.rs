//! Trino: work in progress (issue 4). Until every difference is written
//! here, `kpic compile --dialect trino` uses DuckDB's spelling.

use super::Dialect;

pub struct Trino;

impl Dialect for Trino {
    fn name(&self) -> &'static str {
        "trino"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::GenericDialect {})
    }
}
