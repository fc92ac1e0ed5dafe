//! SQL dialects: every difference between engines lives here, as methods
//! of the [`Dialect`] trait that build AST (sqlparser's printer does not
//! translate, so each difference must be built into the tree). The default
//! methods produce DuckDB SQL; a dialect overrides only what differs.
//!
//! No `match dialect` anywhere else: callers ask the trait.

mod duckdb;

use chrono::NaiveDate;
use sqlparser::ast::{DataType, DateTimeField, Expr, Interval, Query, TableFactor};

use super::build::*;
use crate::model::Grain;

pub use duckdb::DuckDb;

/// Names accepted by `--dialect`.
pub const DIALECTS: &[&str] = &[
    "duckdb",
    "postgres",
    "snowflake",
    "bigquery",
    "databricks",
    "redshift",
    "trino",
    "clickhouse",
];

/// The dialect named `name`, or `None` when kpic cannot compile for it yet.
pub fn dialect_named(name: &str) -> Option<Box<dyn Dialect>> {
    match name {
        "duckdb" => Some(Box::new(DuckDb)),
        _ => None,
    }
}

fn grain_unit(grain: Grain) -> (&'static str, DateTimeField, i64) {
    match grain {
        Grain::Day => ("day", DateTimeField::Day, 1),
        Grain::Week => ("week", DateTimeField::Day, 7),
        Grain::Month => ("month", DateTimeField::Month, 1),
        Grain::Quarter => ("quarter", DateTimeField::Month, 3),
        Grain::Year => ("year", DateTimeField::Year, 1),
    }
}

pub trait Dialect {
    fn name(&self) -> &'static str;

    /// `DATE '2026-01-31'`
    fn date_literal(&self, d: NaiveDate) -> Expr {
        cast(string(&d.format("%Y-%m-%d").to_string()), DataType::Date)
    }

    /// Converts a time value (DATE, TIMESTAMP or text) to a DATE.
    fn to_date(&self, e: Expr) -> Expr {
        cast(e, DataType::Date)
    }

    fn current_date(&self) -> Expr {
        keyword_function("current_date")
    }

    fn current_timestamp(&self) -> Expr {
        keyword_function("current_timestamp")
    }

    /// Start of the period containing the DATE `e`, as a DATE. DuckDB's
    /// weeks are ISO weeks (Monday start):
    /// `CAST(date_trunc('week', d) AS DATE)`.
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let (unit, _, _) = grain_unit(grain);
        cast(func("date_trunc", vec![string(unit), e]), DataType::Date)
    }

    /// `e + n periods` as a DATE; month arithmetic clips to month end
    /// (`DATE '2024-02-29' - INTERVAL 1 YEAR` = 2023-02-28).
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (_, field, step) = grain_unit(grain);
        let amount = n * step;
        let interval = Expr::Interval(Interval {
            value: Box::new(int(amount.abs())),
            leading_field: Some(field),
            leading_precision: None,
            last_field: None,
            fractional_seconds_precision: None,
        });
        let moved = if amount < 0 {
            sub(e, interval)
        } else {
            add(e, interval)
        };
        cast(moved, DataType::Date)
    }

    /// The DATE `e` plus an integer number of days.
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        cast(add(e, cast(days, DataType::Integer(None))), DataType::Date)
    }

    /// Whole days from DATE `a` to DATE `b`: `date_diff('day', a, b)`.
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        func("date_diff", vec![string("day"), a, b])
    }

    fn iso_year(&self, e: Expr) -> Expr {
        func("isoyear", vec![e])
    }

    fn iso_week(&self, e: Expr) -> Expr {
        func("week", vec![e])
    }

    /// The period label of SPEC §3.3 (`2026-W05`, `2026-Q1`, …).
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let text = |e: Expr| cast(e, varchar());
        match grain {
            Grain::Day => func("strftime", vec![e, string("%Y-%m-%d")]),
            Grain::Month => func("strftime", vec![e, string("%Y-%m")]),
            Grain::Week => func(
                "concat",
                vec![
                    text(self.iso_year(e.clone())),
                    string("-W"),
                    func("lpad", vec![text(self.iso_week(e)), int(2), string("0")]),
                ],
            ),
            Grain::Quarter => func(
                "concat",
                vec![
                    text(func("year", vec![e.clone()])),
                    string("-Q"),
                    text(func("quarter", vec![e])),
                ],
            ),
            Grain::Year => text(func("year", vec![e])),
        }
    }

    /// Reads a local file: `read_csv('path')`, `read_parquet`, `read_json_auto`.
    fn file_relation(&self, path: &str, alias: &str) -> TableFactor {
        let lower = path.to_ascii_lowercase();
        let reader = if lower.ends_with(".parquet") {
            "read_parquet"
        } else if lower.ends_with(".json")
            || lower.ends_with(".ndjson")
            || lower.ends_with(".jsonl")
        {
            "read_json_auto"
        } else {
            "read_csv_auto"
        };
        table_function(reader, vec![string(path)], alias)
    }

    /// One DATE column `column` with every period start from `start` to
    /// `end` (both DATEs, inclusive): DuckDB unnests `generate_series`.
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (_, field, step) = grain_unit(grain);
        let interval = Expr::Interval(Interval {
            value: Box::new(int(step)),
            leading_field: Some(field),
            leading_precision: None,
            last_field: None,
            fractional_seconds_precision: None,
        });
        let series = func("generate_series", vec![start, end, interval]);
        select_query(select(
            vec![item(
                cast(func("unnest", vec![series]), DataType::Date),
                column,
            )],
            vec![],
        ))
    }

    /// Numbers are computed as DOUBLE.
    fn double_type(&self) -> DataType {
        double()
    }

    /// Equality that holds for two NULLs (joining NULL breakdown members):
    /// `a IS NOT DISTINCT FROM b`.
    fn null_safe_eq(&self, a: Expr, b: Expr) -> Expr {
        Expr::IsNotDistinctFrom(Box::new(a), Box::new(b))
    }

    /// A breakdown member as text: `CAST(e AS VARCHAR)`.
    fn member_text(&self, e: Expr) -> Expr {
        cast(e, varchar())
    }

    /// 1 when `cond` holds, else 0: `CAST(cond AS INTEGER)`.
    fn flag(&self, cond: Expr) -> Expr {
        cast(cond, DataType::Integer(None))
    }

    /// How to ask for a common table expression to be computed once and
    /// kept (`WITH x AS MATERIALIZED (…)`), where the engine takes the hint.
    /// DuckDB and PostgreSQL do; elsewhere `None` (plain `WITH x AS (…)`).
    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        Some(sqlparser::ast::CteAsMaterialized::Materialized)
    }

    /// Natural logarithm (driver attribution): `ln(e)`.
    fn ln(&self, e: Expr) -> Expr {
        func("ln", vec![e])
    }
}
