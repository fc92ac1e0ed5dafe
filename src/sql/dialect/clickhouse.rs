//! ClickHouse: work in progress (issue 4). Until every difference is written
//! here, `kpic compile --dialect clickhouse` uses DuckDB's spelling.

use super::Dialect;

pub struct ClickHouse;

impl Dialect for ClickHouse {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::ClickHouseDialect {})
    }
}
