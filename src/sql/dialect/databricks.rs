//! Databricks: work in progress (issue 4). Until every difference is written
//! here, `kpic compile --dialect databricks` uses DuckDB's spelling.

use super::Dialect;

pub struct Databricks;

impl Dialect for Databricks {
    fn name(&self) -> &'static str {
        "databricks"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::DatabricksDialect {})
    }
}
