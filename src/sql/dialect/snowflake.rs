//! Snowflake: work in progress (issue 4). Until every difference is written
//! here, `kpic compile --dialect snowflake` uses DuckDB's spelling.

use super::Dialect;

pub struct Snowflake;

impl Dialect for Snowflake {
    fn name(&self) -> &'static str {
        "snowflake"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::SnowflakeDialect {})
    }
}
