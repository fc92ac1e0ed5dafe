//! PostgreSQL (12 and later; tested on a real server by the engine tests).
//!
//! What differs from DuckDB, each verified on the server:
//! - `date_trunc` takes a timestamp and returns one: the date is cast to
//!   `TIMESTAMP` first (a bare DATE would resolve to the `timestamptz`
//!   overload, which depends on the session time zone) and the result back
//!   to `DATE`. Weeks start on Monday (ISO), as in DuckDB.
//! - Intervals are written `INTERVAL '1 month'`; `date + interval` is a
//!   timestamp, cast back to `DATE`; month arithmetic clips to month end
//!   (`DATE '2024-01-31' + INTERVAL '1 month'` = 2024-02-29).
//! - Day differences are `b - a` (DATE minus DATE is an integer).
//! - ISO year and week: `EXTRACT(ISOYEAR …)`, `EXTRACT(WEEK …)`; labels come
//!   from `to_char` (`IYYY-"W"IW`, `YYYY-"Q"Q`).
//! - Date spines: `generate_series(timestamp, timestamp, interval)` in the
//!   SELECT list.
//! - `DOUBLE` is spelled `DOUBLE PRECISION`.
//! - Quantiles are ordered-set aggregates: `quantile_cont(x, p)` →
//!   `percentile_cont(p) WITHIN GROUP (ORDER BY x)`, `median(x)` → the same
//!   at 0.5 (exact). `approx_count_distinct(x)` → `count(DISTINCT x)`:
//!   Postgres has no approximate distinct count, so the exact one is used.
//! - `build.sql` builds every output as `<table>__kpic_new`, then drops the
//!   old table and renames the new one, all in one transaction: DDL is
//!   transactional, so readers see the old tables or the new ones. Shared
//!   steps are `TEMPORARY` tables, dropped first if an earlier build in the
//!   same session left them.

use chrono::NaiveDate;
use sqlparser::ast::{DataType, DateTimeField, Expr, Function, Query, Statement};

use super::{Dialect, Refusal, grain_unit, skeleton, staged_replace};
use crate::model::Grain;
use crate::sql::build::*;

pub struct Postgres;

/// `INTERVAL '<n> <unit>'`
pub(super) fn interval_text(amount: i64, unit: &str) -> Expr {
    Expr::Interval(sqlparser::ast::Interval {
        value: Box::new(string(&format!("{amount} {unit}"))),
        leading_field: None,
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    })
}

/// The interval unit of one step of a grain (`week` is 7 days).
pub(super) fn step_unit(grain: Grain) -> (&'static str, i64) {
    let (_, field, step) = grain_unit(grain);
    let unit = match field {
        DateTimeField::Day => "day",
        DateTimeField::Month => "month",
        _ => "year",
    };
    (unit, step)
}

fn timestamp() -> DataType {
    DataType::Timestamp(None, sqlparser::ast::TimezoneInfo::None)
}

/// `percentile_cont(p) WITHIN GROUP (ORDER BY x)`
pub(super) fn percentile_within_group(x: Expr, p: Expr) -> Expr {
    let mut f = function("percentile_cont", vec![p]);
    f.within_group = vec![sqlparser::ast::OrderByExpr {
        expr: x,
        options: sqlparser::ast::OrderByOptions {
            sort: None,
            nulls_first: None,
        },
        with_fill: None,
    }];
    Expr::Function(f)
}

impl Dialect for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::PostgreSqlDialect {})
    }

    fn date_literal(&self, d: NaiveDate) -> Expr {
        cast(string(&d.format("%Y-%m-%d").to_string()), DataType::Date)
    }

    /// `CAST(date_trunc('month', CAST(d AS TIMESTAMP)) AS DATE)`
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let (unit, _, _) = grain_unit(grain);
        cast(
            func("date_trunc", vec![string(unit), cast(e, timestamp())]),
            DataType::Date,
        )
    }

    /// `CAST(d + INTERVAL '3 month' AS DATE)`
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (unit, step) = step_unit(grain);
        let amount = n * step;
        let interval = interval_text(amount.abs(), unit);
        let moved = if amount < 0 {
            sub(e, interval)
        } else {
            add(e, interval)
        };
        cast(moved, DataType::Date)
    }

    /// `(b - a)`
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        paren(sub(b, a))
    }

    fn iso_year(&self, e: Expr) -> Expr {
        cast(extract(DateTimeField::Isoyear, e), DataType::Integer(None))
    }

    fn iso_week(&self, e: Expr) -> Expr {
        cast(
            extract(DateTimeField::Week(None), e),
            DataType::Integer(None),
        )
    }

    /// `to_char(d, 'YYYY-MM')`, `to_char(d, 'IYYY-"W"IW')`, …
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let format = match grain {
            Grain::Day => "YYYY-MM-DD",
            Grain::Week => "IYYY-\"W\"IW",
            Grain::Month => "YYYY-MM",
            Grain::Quarter => "YYYY-\"Q\"Q",
            Grain::Year => "YYYY",
        };
        func("to_char", vec![e, string(format)])
    }

    /// `SELECT CAST(generate_series(CAST(a AS TIMESTAMP), CAST(b AS
    /// TIMESTAMP), INTERVAL '1 month') AS DATE) AS column`
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (unit, step) = step_unit(grain);
        let series = func(
            "generate_series",
            vec![
                cast(start, timestamp()),
                cast(end, timestamp()),
                interval_text(step, unit),
            ],
        );
        select_query(select(
            vec![item(cast(series, DataType::Date), column)],
            vec![],
        ))
    }

    fn data_type(&self, t: DataType) -> DataType {
        match t {
            DataType::Double(_) => DataType::DoublePrecision,
            other => other,
        }
    }

    fn aggregate(&self, name: &str, call: &Function) -> Result<Option<Expr>, Refusal> {
        use super::translate::{arguments, is_distinct};
        let args = || {
            arguments(call).ok_or_else(|| Refusal {
                message: format!("`{name}` with these arguments cannot be translated"),
                help: "write it as `quantile_cont(column, fraction)`".into(),
            })
        };
        Ok(match name {
            "quantile_cont" | "quantile" | "percentile" | "percentile_cont" => {
                let (x, rest) = args()?;
                let Some(p) = rest.first() else {
                    return Err(Refusal {
                        message: format!("`{name}` needs a fraction"),
                        help: format!("write `{name}(column, 0.9)`"),
                    });
                };
                Some(keep_filter(call, percentile_within_group(x, p.clone())))
            }
            "median" => {
                let (x, _) = args()?;
                Some(keep_filter(call, percentile_within_group(x, num(0.5))))
            }
            "approx_count_distinct" if !is_distinct(call) => {
                let (x, _) = args()?;
                let mut f = function("count", vec![x]);
                if let sqlparser::ast::FunctionArguments::List(l) = &mut f.args {
                    l.duplicate_treatment = Some(sqlparser::ast::DuplicateTreatment::Distinct);
                }
                Some(keep_filter(call, Expr::Function(f)))
            }
            "mean" => {
                let mut f = call.clone();
                f.name = object("avg");
                Some(Expr::Function(f))
            }
            _ => None,
        })
    }

    fn build_prologue(&self) -> Vec<Statement> {
        vec![skeleton(self, "BEGIN", &[], None)]
    }

    fn temp_table(&self, name: &str, query: Query) -> Option<Statement> {
        Some(skeleton(
            self,
            "CREATE TEMPORARY TABLE kpic_t AS SELECT 1",
            &[("kpic_t", name)],
            Some(query),
        ))
    }

    /// `DROP TABLE IF EXISTS pg_temp.x`: a temporary table lives until the
    /// session ends (`ON COMMIT DROP` would end it at commit, but sqlglot
    /// cannot parse it); `pg_temp` never names a permanent table.
    fn drop_temp_table(&self, name: &str) -> Option<Statement> {
        Some(skeleton(
            self,
            "DROP TABLE IF EXISTS pg_temp.kpic_t",
            &[("kpic_t", name)],
            None,
        ))
    }

    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        build_then_rename(self, tables)
    }

    fn drop_view(&self, name: &str) -> Option<Statement> {
        Some(drop_view_before_rename(self, name))
    }
}

/// `DROP VIEW IF EXISTS kpi_scorecard` before [`build_then_rename`]'s swap:
/// a view binds to the tables it reads, and `DROP TABLE` refuses a table a
/// view reads; inside build.sql's transaction no reader sees it missing.
pub(super) fn drop_view_before_rename(d: &dyn Dialect, name: &str) -> Statement {
    skeleton(d, "DROP VIEW IF EXISTS kpic_t", &[("kpic_t", name)], None)
}

/// Every output built as `<table>__kpic_new` first, then each old table
/// dropped and the new one renamed, for engines with transactional DDL
/// (Postgres, Redshift): inside build.sql's transaction the swap is
/// atomic, and a failure in any build leaves every old table in place.
pub(super) fn build_then_rename(d: &dyn Dialect, tables: Vec<(String, Query)>) -> Vec<Statement> {
    staged_replace(
        d,
        tables,
        &[
            "DROP TABLE IF EXISTS kpic_t_new",
            "CREATE TABLE kpic_t_new AS SELECT 1",
        ],
        &[
            "DROP TABLE IF EXISTS kpic_t",
            "ALTER TABLE kpic_t_new RENAME TO kpic_t",
        ],
        &[],
    )
}

/// `replacement` with the FILTER clause of `call` (quantile rewrites keep
/// a metric's filter).
pub(super) fn keep_filter(call: &Function, replacement: Expr) -> Expr {
    match (replacement, &call.filter) {
        (Expr::Function(mut f), Some(cond)) => {
            f.filter = Some(cond.clone());
            Expr::Function(f)
        }
        (e, _) => e,
    }
}
