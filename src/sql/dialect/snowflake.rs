//! Snowflake (checked against Snowflake's SQL reference; no server here, so
//! the tests re-parse the output with sqlparser's and sqlglot's Snowflake
//! dialects).
//!
//! What differs from DuckDB:
//! - Weeks: `DATE_TRUNC('week', d)` follows the `WEEK_START` session
//!   parameter, so the ISO Monday is computed:
//!   `DATEADD(day, 1 - DAYOFWEEKISO(d), d)` (`DAYOFWEEKISO`, `WEEKISO` and
//!   `YEAROFWEEKISO` are not controlled by `WEEK_START` or
//!   `WEEK_OF_YEAR_POLICY`). Months, quarters, years: `DATE_TRUNC('month',
//!   d)`, which returns the input's type (a DATE for a DATE).
//! - Date arithmetic: `DATEADD(month, 3, d)` returns a DATE for a DATE and
//!   a part of a day or larger; when the result month has fewer days than
//!   the original day, the result is that month's last day (2024-01-31 + 1
//!   month = 2024-02-29), as in DuckDB. Day differences: `DATEDIFF(day, a,
//!   b)` is `b - a` (the second argument is subtracted from the third).
//! - ISO year and week: `YEAROFWEEKISO(d)`, `WEEKISO(d)`. Labels:
//!   `TO_CHAR(d, 'YYYY-MM-DD')` and `TO_CHAR(d, 'YYYY-MM')` (an explicit
//!   format, so `DATE_OUTPUT_FORMAT` does not matter); Snowflake's format
//!   elements have no ISO week or quarter, so those labels are built with
//!   `CONCAT`.
//! - Date spines: no `generate_series`. The bounds are computed once in a
//!   one-row derived table and a `LATERAL FLATTEN` of
//!   `ARRAY_GENERATE_RANGE(0, DATEDIFF(month, lo, hi) + 1, step)` gives
//!   the offsets (a recursive CTE would stop at `MAX_RECURSIONS`, 100 by
//!   default; `GENERATOR` needs a constant row count). NULL bounds give a
//!   NULL array, which FLATTEN turns into no rows, as `generate_series`
//!   does.
//! - Date literals: `TO_DATE('2026-01-31', 'YYYY-MM-DD')`: an explicit
//!   format, independent of `DATE_INPUT_FORMAT`. Time values become dates
//!   with `CAST(x AS DATE)` (text through `DATE_INPUT_FORMAT`, `AUTO` by
//!   default); `CURRENT_DATE` and `CURRENT_TIMESTAMP` are in the session's
//!   `TIMEZONE`.
//! - Identifiers: unquoted names are stored and resolved in upper case,
//!   quoted ones keep their case. kpic quotes a plain lower-case name only
//!   because it is a keyword (`"plan"`, `"status"`), and the source tables'
//!   unquoted columns are stored as `PLAN`, `STATUS`: such names are
//!   written `"PLAN"`, which is what the unquoted name means, so every kpic
//!   column comes out in upper case, quoted or not. A quoted name that
//!   could not be written unquoted (upper case, spaces, non-ASCII) keeps
//!   its case.
//! - String literals: a backslash starts an escape sequence inside `'…'`,
//!   so backslashes and quotes are written `\\` and `\'` (newlines `\n`).
//! - Aggregates: no `FILTER` (the pass moves the condition into a `CASE`).
//!   `quantile_cont(x, p)` → `PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x)`,
//!   `median(x)` → `MEDIAN(x)`, both exact. Over fixed-point numbers
//!   (integer columns are NUMBER) these return fixed-point results of a
//!   limited scale (the reference shows `AVG` of 1, 2, 2 = 1.666667 and
//!   `MEDIAN`/`PERCENTILE_CONT` with 3 decimals), so these and `AVG`,
//!   `STDDEV*` get their argument cast to `DOUBLE` and compute in floating
//!   point, as DuckDB does. `approx_count_distinct` is Snowflake's own
//!   HyperLogLog `APPROX_COUNT_DISTINCT` (approximate, like DuckDB's, but
//!   the two estimates differ). `mean` → `AVG`.
//! - `NULLIF`, `IS NOT DISTINCT FROM`, `GROUPING SETS` with `GROUPING()`,
//!   `UNION DISTINCT`, `CAST(boolean AS INTEGER)` (1/0), `LN` and `DOUBLE`
//!   are Snowflake's too; there is no `AS MATERIALIZED` hint. Every
//!   division kpic writes has DOUBLE operands (values are cast when
//!   aggregated, day counts before dividing), so Snowflake's fixed-point
//!   division scale never applies.
//! - Not translated: `LEAST`/`GREATEST` return NULL when any argument is
//!   NULL (DuckDB skips NULLs). kpic's own calls never see a NULL; in a
//!   derived metric's `expr` they differ (no hook re-spells scalar
//!   functions).
//! - `build.sql`: DDL commits implicitly, so there is no transaction.
//!   Shared steps are `CREATE OR REPLACE TEMPORARY TABLE`s. Every output is
//!   first built as `<table>__kpic_new` (a failure there leaves every old
//!   table in place); then each target is replaced by a copy of it,
//!   `CREATE OR REPLACE TABLE t COPY GRANTS AS SELECT * FROM t__kpic_new`
//!   (atomic per table, and privileges granted on `t` stay — unlike
//!   `ALTER TABLE … SWAP WITH`, which would move them to the staged table),
//!   and the staged tables are dropped. The five replacements are not one
//!   transaction: between two of them a reader can see a new table beside
//!   an old one.

use chrono::NaiveDate;
use sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgOperator, FunctionArguments,
    Ident, Query, Statement, TableFactor,
};

use super::postgres::{percentile_within_group, step_unit};
use super::{Dialect, Refusal, backslash_escaped, skeleton, staged_replace};
use crate::model::Grain;
use crate::sql::build::*;

pub struct Snowflake;

/// A date part written as a keyword (`DATEADD(month, …)`).
fn part(name: &str) -> Expr {
    Expr::Identifier(Ident::new(name))
}

/// `DATEADD(unit, n, e)`
fn dateadd(unit: &str, n: Expr, e: Expr) -> Expr {
    func("dateadd", vec![part(unit), n, e])
}

/// `CAST(e AS t)` unless `e` is that cast already.
pub(super) fn as_type(e: Expr, t: DataType) -> Expr {
    match e {
        Expr::Cast { ref data_type, .. } if *data_type == t => e,
        other => cast(other, t),
    }
}

/// The aggregate call `call` renamed to `name` with its first argument
/// cast to `t` (`avg(x)` → `avg(CAST(x AS DOUBLE))`); DISTINCT and the
/// other arguments are kept.
pub(super) fn with_typed_argument(call: &Function, name: &str, t: DataType) -> Expr {
    let mut f = call.clone();
    f.name = sqlparser::ast::ObjectName::from(vec![Ident::new(name)]);
    if let FunctionArguments::List(list) = &mut f.args
        && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) = list.args.first_mut()
    {
        *x = as_type(x.clone(), t);
    }
    Expr::Function(f)
}

/// The first argument and the fraction of a quantile call, or why not.
pub(super) fn quantile_arguments(name: &str, call: &Function) -> Result<(Expr, Expr), Refusal> {
    use super::translate::arguments;
    let usage = || Refusal {
        message: format!("`{name}` with these arguments cannot be translated"),
        help: "write it as `quantile_cont(column, 0.9)`".into(),
    };
    if !call.within_group.is_empty() {
        return Err(usage());
    }
    let (x, rest) = arguments(call).ok_or_else(usage)?;
    match (name, rest.first()) {
        ("median", _) => Ok((x, num(0.5))),
        (_, Some(p)) => Ok((x, p.clone())),
        (_, None) => Err(Refusal {
            message: format!("`{name}` needs a fraction"),
            help: format!("write `{name}(column, 0.9)`"),
        }),
    }
}

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

    /// `TO_DATE('2026-01-31', 'YYYY-MM-DD')`
    fn date_literal(&self, d: NaiveDate) -> Expr {
        func(
            "to_date",
            vec![
                string(&d.format("%Y-%m-%d").to_string()),
                string("YYYY-MM-DD"),
            ],
        )
    }

    /// `DATEADD(day, 1 - DAYOFWEEKISO(d), d)` for weeks,
    /// `DATE_TRUNC('month', d)` otherwise.
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let unit = match grain {
            Grain::Week => {
                let weekday = func("dayofweekiso", vec![e.clone()]);
                return dateadd("day", sub(int(1), weekday), e);
            }
            Grain::Day => "day",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        };
        func("date_trunc", vec![string(unit), e])
    }

    /// `DATEADD(month, -3, d)`
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (unit, step) = step_unit(grain);
        let amount = n * step;
        let amount = if amount < 0 {
            neg(int(-amount))
        } else {
            int(amount)
        };
        dateadd(unit, amount, e)
    }

    /// `DATEADD(day, n, d)`
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        dateadd("day", days, e)
    }

    /// `DATEDIFF(day, a, b)` (= b − a)
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        func("datediff", vec![part("day"), a, b])
    }

    /// `YEAROFWEEKISO(d)`
    fn iso_year(&self, e: Expr) -> Expr {
        func("yearofweekiso", vec![e])
    }

    /// `WEEKISO(d)`
    fn iso_week(&self, e: Expr) -> Expr {
        func("weekiso", vec![e])
    }

    /// `TO_CHAR(d, 'YYYY-MM')`; weeks `CONCAT(CAST(YEAROFWEEKISO(d) AS
    /// VARCHAR), '-W', LPAD(CAST(WEEKISO(d) AS VARCHAR), 2, '0'))`,
    /// quarters `CONCAT(TO_CHAR(d, 'YYYY'), '-Q', CAST(QUARTER(d) AS
    /// VARCHAR))`.
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let text = |e: Expr| cast(e, varchar());
        let to_char = |e: Expr, format: &str| func("to_char", vec![e, string(format)]);
        match grain {
            Grain::Day => to_char(e, "YYYY-MM-DD"),
            Grain::Month => to_char(e, "YYYY-MM"),
            Grain::Year => to_char(e, "YYYY"),
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
                    to_char(e.clone(), "YYYY"),
                    string("-Q"),
                    text(func("quarter", vec![e])),
                ],
            ),
        }
    }

    /// `SELECT DATEADD(month, CAST(f.value AS INTEGER), b.lo) AS column
    /// FROM (SELECT start AS lo, end AS hi) AS b, LATERAL
    /// FLATTEN(INPUT => ARRAY_GENERATE_RANGE(0, DATEDIFF(month, b.lo, b.hi)
    /// + 1, 3)) AS f` (quarters step 3 months, weeks 7 days). The offsets
    /// `0, step, …` up to the difference in whole units give every period
    /// start from `start` to `end` inclusive, both being period starts.
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (unit, step) = step_unit(grain);
        let bounds = select_query(select(vec![item(start, "lo"), item(end, "hi")], vec![]));
        let units = func(
            "datediff",
            vec![part(unit), qcol("b", "lo"), qcol("b", "hi")],
        );
        let offsets = func(
            "array_generate_range",
            vec![int(0), add(units, int(1)), int(step)],
        );
        let flatten = TableFactor::Function {
            lateral: true,
            name: sqlparser::ast::ObjectName::from(vec![Ident::new("flatten")]),
            args: vec![FunctionArg::Named {
                name: Ident::new("input"),
                arg: FunctionArgExpr::Expr(offsets),
                operator: FunctionArgOperator::RightArrow,
            }],
            with_ordinality: false,
            alias: Some(alias("f")),
        };
        let offset = Expr::CompoundIdentifier(vec![Ident::new("f"), Ident::new("value")]);
        let day = dateadd(unit, cast(offset, DataType::Integer(None)), qcol("b", "lo"));
        select_query(select(
            vec![item(day, column)],
            vec![from(derived(bounds, "b"), vec![]), from(flatten, vec![])],
        ))
    }

    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        None
    }

    // ---- style ------------------------------------------------------------

    fn aggregate_filter(&self) -> bool {
        false
    }

    fn aggregate(&self, name: &str, call: &Function) -> Result<Option<Expr>, Refusal> {
        Ok(match name {
            "quantile_cont" | "quantile" | "percentile" | "percentile_cont" => {
                let (x, p) = quantile_arguments(name, call)?;
                Some(percentile_within_group(as_type(x, double()), p))
            }
            "median" => {
                let (x, _) = quantile_arguments(name, call)?;
                Some(func("median", vec![as_type(x, double())]))
            }
            "mean" => Some(with_typed_argument(call, "avg", double())),
            "avg" | "stddev" | "stddev_samp" | "stddev_pop" => {
                Some(with_typed_argument(call, name, double()))
            }
            _ => None,
        })
    }

    /// `"plan"` → `"PLAN"` (see the module header).
    fn identifier(&self, ident: &mut Ident) {
        let mut chars = ident.value.chars();
        let foldable = matches!(chars.next(), Some('a'..='z' | '_'))
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '$'));
        if ident.quote_style == Some('"') && foldable {
            ident.value = ident.value.to_ascii_uppercase();
        }
    }

    /// `'it\'s'`
    fn string_literal(&self, text: &str) -> Option<Expr> {
        backslash_escaped(text)
    }

    // ---- build.sql --------------------------------------------------------

    fn build_prologue(&self) -> Vec<Statement> {
        vec![]
    }

    fn build_epilogue(&self) -> Vec<Statement> {
        vec![]
    }

    fn temp_table(&self, name: &str, query: Query) -> Option<Statement> {
        Some(skeleton(
            self,
            "CREATE OR REPLACE TEMPORARY TABLE kpic_t AS SELECT 1",
            &[("kpic_t", name)],
            Some(query),
        ))
    }

    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        staged_replace(
            self,
            tables,
            &["CREATE OR REPLACE TABLE kpic_t_new AS SELECT 1"],
            &["CREATE OR REPLACE TABLE kpic_t COPY GRANTS AS SELECT * FROM kpic_t_new"],
            &["DROP TABLE IF EXISTS kpic_t_new"],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::parser::Parser;

    fn sql(e: &Expr) -> String {
        e.to_string()
    }

    #[test]
    fn weeks_start_on_the_iso_monday_whatever_week_start_says() {
        let e = Snowflake.period_start(Grain::Week, col("d"));
        assert_eq!(sql(&e), "dateadd(day, 1 - dayofweekiso(d), d)");
        let e = Snowflake.period_start(Grain::Quarter, col("d"));
        assert_eq!(sql(&e), "date_trunc('quarter', d)");
    }

    #[test]
    fn date_arithmetic_and_differences() {
        let d = || col("d");
        assert_eq!(
            sql(&Snowflake.add_periods(Grain::Quarter, d(), -1)),
            "dateadd(month, -3, d)"
        );
        assert_eq!(
            sql(&Snowflake.add_periods(Grain::Week, d(), 2)),
            "dateadd(day, 14, d)"
        );
        assert_eq!(
            sql(&Snowflake.day_diff(col("a"), col("b"))),
            "datediff(day, a, b)"
        );
        assert_eq!(
            sql(&Snowflake.date_literal(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap())),
            "to_date('2026-01-05', 'YYYY-MM-DD')"
        );
    }

    #[test]
    fn labels() {
        let label = |g| sql(&Snowflake.period_label(g, col("d")));
        assert_eq!(label(Grain::Day), "to_char(d, 'YYYY-MM-DD')");
        assert_eq!(
            label(Grain::Week),
            "concat(CAST(yearofweekiso(d) AS VARCHAR), '-W', lpad(CAST(weekiso(d) AS VARCHAR), 2, '0'))"
        );
        assert_eq!(
            label(Grain::Quarter),
            "concat(to_char(d, 'YYYY'), '-Q', CAST(quarter(d) AS VARCHAR))"
        );
    }

    #[test]
    fn spine_flattens_a_range_of_offsets_from_the_start() {
        let q = Snowflake.date_spine(Grain::Quarter, col("s"), col("e"), "ps");
        let text = q.to_string();
        assert_eq!(
            text,
            "SELECT dateadd(month, CAST(f.value AS INTEGER), b.lo) AS ps \
             FROM (SELECT s AS lo, e AS hi) AS b, \
             LATERAL flatten(input => array_generate_range(0, datediff(month, b.lo, b.hi) + 1, 3)) AS f"
        );
        // It reads back with Snowflake's parser.
        Parser::parse_sql(&sqlparser::dialect::SnowflakeDialect {}, &text).unwrap();
    }

    #[test]
    fn keyword_names_fold_to_upper_case_others_keep_theirs() {
        let fold = |q: Option<char>, v: &str| {
            let mut i = Ident {
                value: v.into(),
                quote_style: q,
                span: sqlparser::tokenizer::Span::empty(),
            };
            Snowflake.identifier(&mut i);
            i.value
        };
        assert_eq!(fold(Some('"'), "plan"), "PLAN");
        assert_eq!(fold(Some('"'), "customers__plan"), "CUSTOMERS__PLAN");
        assert_eq!(fold(Some('"'), "Plan"), "Plan");
        assert_eq!(fold(Some('"'), "order id"), "order id");
        assert_eq!(fold(Some('"'), "3rd"), "3rd");
        assert_eq!(fold(Some('"'), "café"), "café");
    }

    #[test]
    fn string_literals_round_trip_through_snowflakes_parser() {
        assert_eq!(backslash_escaped("plain"), None);
        for text in [
            "it's",
            "a\\b",
            "a\\'b",
            "''",
            "\\",
            "'\\'",
            "line\nbreak\r\n",
            "tab\there",
        ] {
            let lit = Snowflake
                .string_literal(text)
                .unwrap_or_else(|| string(text));
            let printed = format!("SELECT {lit}");
            let parsed = Parser::parse_sql(&sqlparser::dialect::SnowflakeDialect {}, &printed)
                .unwrap_or_else(|e| panic!("{printed}: {e}"));
            let sqlparser::ast::Statement::Query(q) = &parsed[0] else {
                panic!("{printed}")
            };
            let sqlparser::ast::SetExpr::Select(s) = q.body.as_ref() else {
                panic!("{printed}")
            };
            let sqlparser::ast::SelectItem::UnnamedExpr(Expr::Value(v)) = &s.projection[0] else {
                panic!("{printed}")
            };
            assert_eq!(
                v.value,
                sqlparser::ast::Value::SingleQuotedString(text.into()),
                "{printed}"
            );
        }
        assert_eq!(
            Snowflake.string_literal("it's a\\b").unwrap().to_string(),
            "'it\\'s a\\\\b'"
        );
    }

    #[test]
    fn quantiles_are_exact_ordered_set_aggregates_over_doubles() {
        let agg = |text: &str| crate::sql::dialect::aggregate_of(&Snowflake, text);
        assert_eq!(
            agg("quantile_cont(x, 0.9)").unwrap().unwrap().to_string(),
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY CAST(x AS DOUBLE))"
        );
        assert_eq!(
            agg("median(x)").unwrap().unwrap().to_string(),
            "median(CAST(x AS DOUBLE))"
        );
        assert_eq!(
            agg("mean(DISTINCT x)").unwrap().unwrap().to_string(),
            "avg(DISTINCT CAST(x AS DOUBLE))"
        );
        assert_eq!(agg("approx_count_distinct(x)").unwrap(), None);
        assert!(agg("quantile_cont(x)").is_err());
    }

    #[test]
    fn build_statements_parse_and_replace_after_every_build() {
        let q = || select_query(select(vec![item(int(1), "x")], vec![]));
        let stmts = Snowflake.replace_tables(vec![
            ("kpi_results".into(), q()),
            ("kpi_metrics".into(), q()),
        ]);
        let text: Vec<String> = stmts.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "CREATE OR REPLACE TABLE kpi_results__kpic_new AS SELECT 1 AS x",
                "CREATE OR REPLACE TABLE kpi_metrics__kpic_new AS SELECT 1 AS x",
                "CREATE OR REPLACE TABLE kpi_results COPY GRANTS AS SELECT * FROM kpi_results__kpic_new",
                "CREATE OR REPLACE TABLE kpi_metrics COPY GRANTS AS SELECT * FROM kpi_metrics__kpic_new",
                "DROP TABLE IF EXISTS kpi_results__kpic_new",
                "DROP TABLE IF EXISTS kpi_metrics__kpic_new",
            ]
        );
        for t in &text {
            Parser::parse_sql(&sqlparser::dialect::SnowflakeDialect {}, t)
                .unwrap_or_else(|e| panic!("{t}: {e}"));
        }
        let temp = Snowflake.temp_table("kpic_scan_orders", q()).unwrap();
        assert_eq!(
            temp.to_string(),
            "CREATE OR REPLACE TEMPORARY TABLE kpic_scan_orders AS SELECT 1 AS x"
        );
        assert!(Snowflake.build_prologue().is_empty());
    }
}
