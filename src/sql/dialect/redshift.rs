//! Redshift: work in progress (issue 4). Until every difference is written
//! here, `kpic compile --dialect redshift` uses DuckDB's spelling.

use super::Dialect;

pub struct Redshift;

impl Dialect for Redshift {
    fn name(&self) -> &'static str {
        "redshift"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::RedshiftSqlDialect {})
    }
}
