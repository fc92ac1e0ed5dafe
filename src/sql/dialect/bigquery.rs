//! BigQuery: work in progress (issue 4). Until every difference is written
//! here, `kpic compile --dialect bigquery` uses DuckDB's spelling.

use super::Dialect;

pub struct BigQuery;

impl Dialect for BigQuery {
    fn name(&self) -> &'static str {
        "bigquery"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::BigQueryDialect {})
    }
}
