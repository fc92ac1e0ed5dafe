//! Trino (checked against the Trino documentation, trino.io/docs, and
//! Trino's own tests; no server here, so the tests re-parse the output with
//! sqlparser's generic dialect and sqlglot's Trino dialect).
//!
//! What differs from DuckDB:
//! - Date arithmetic: Trino's date operators add intervals only (no `d +
//!   1`), written `INTERVAL '1' MONTH`; kpic uses `date_add('month',
//!   3, d)`, which returns a DATE for a DATE. Months clip to the end of a
//!   shorter month (`+ INTERVAL '1' MONTH` on Oct 31 is Nov 30), as in
//!   DuckDB; a week is 7 days, a quarter 3 months, a year 12 months. Day
//!   differences: `date_diff('day', a, b)` (`b - a`), as in DuckDB.
//! - `date_trunc('month', d)` returns the input's type (a DATE for a
//!   DATE); `week` truncates to the Monday. ISO year and week:
//!   `year_of_week(d)` and `week(d)` (ISO 8601).
//! - Labels: `date_format(CAST(d AS TIMESTAMP), '%Y-%m-%d')` and `'%Y-%m'`
//!   (MySQL-style; `date_format` takes a timestamp); weeks, quarters and
//!   years are built with `concat` and `lpad` from the ISO functions.
//! - Date spines: `sequence()` refuses more than 10,000 entries (a day
//!   spine over 28 years), so a spine unnests two integer sequences — high
//!   and low four digits, each at most 10,000 long — crossed and filtered
//!   to the periods from start to end inclusive (up to 10^8 periods). The
//!   bounds sit in a one-row derived table that the `CROSS JOIN UNNEST`s
//!   read. A NULL bound gives a NULL array, which UNNEST turns into no
//!   rows, as `generate_series` does; a start after the end gives no rows
//!   (a plain `sequence` would fail).
//! - Breakdown members are joined with `COALESCE(a, '0') = COALESCE(b, '0')
//!   AND COALESCE(a, '1') = COALESCE(b, '1')` (exact for text: a NULL
//!   matches only a NULL) rather than `IS NOT DISTINCT FROM`: open Trino
//!   correctness issues (trinodb/trino#25943, #26257) report joins on `IS NOT
//!   DISTINCT FROM` losing rows with NULL keys under dynamic filtering, and
//!   the equalities are a plain hash join.
//! - Quantiles: Trino has no exact percentile aggregate, only
//!   `approx_percentile` (a rank approximation that does not interpolate).
//!   kpic computes the exact one: the non-NULL values, as DOUBLE, collected
//!   in order (`array_agg(x ORDER BY x)`), and DuckDB's interpolation at
//!   position `(n - 1) · p` with `element_at`. The values of one group are
//!   held in memory (as DuckDB's `quantile_cont` does); `median(x)` is the
//!   same at 0.5. `DISTINCT` quantiles and a fraction outside [0, 1] are
//!   refused.
//! - `approx_count_distinct(x)` → `approx_distinct(x)`: HyperLogLog with a
//!   2.3 % standard error, 0 when every value is NULL (approximate, like
//!   DuckDB's; the two estimates differ). `mean` → `avg`. `avg` of a DECIMAL
//!   keeps the argument's type, so `avg` gets its argument cast to DOUBLE
//!   and computes as DuckDB does.
//! - Breakdown members are `CAST(x AS VARCHAR)` as in DuckDB, but a DOUBLE
//!   member is spelled Trino's way (`1.5E0`, not `1.5`).
//! - `FILTER (WHERE …)` on aggregates, `GROUPING SETS` with `grouping()`,
//!   `CAST(boolean AS INTEGER)`, `ln`, `nullif`, `least`, `DOUBLE` and
//!   `VARCHAR` are Trino's too; string literals are standard (no backslash
//!   escapes); there is no `AS MATERIALIZED` hint.
//! - `build.sql`: Trino has no temporary tables, so shared steps are inlined
//!   as CTEs into each output. Transactions around DDL depend on the
//!   connector (most allow only autocommit writes), so there is no `BEGIN`.
//!   Every output is first built as `<table>__kpic_new` (a failure there
//!   leaves every old table in place), then each is swapped in with
//!   `CREATE OR REPLACE TABLE t AS SELECT * FROM t__kpic_new` and the staged
//!   table dropped. `CREATE OR REPLACE TABLE` exists since Trino 431 and is
//!   atomic where the connector implements it (Iceberg, Delta Lake): a
//!   reader sees the old table or the new one. The five swaps are not one
//!   transaction, so between two swaps a reader can see a new table beside
//!   an old one. Connectors without it (Hive and most others) reject the
//!   swap; there the last step is `DROP TABLE t` and `ALTER TABLE
//!   t__kpic_new RENAME TO t`, which is not atomic.

use sqlparser::ast::{
    DataType, ExactNumberInfo, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentClause, FunctionArguments, Ident, Join, JoinConstraint, JoinOperator,
    OrderByExpr, OrderByOptions, Query, Statement, TableAlias, TableAliasColumnDef, TableFactor,
    Value,
};

use super::postgres::keep_filter;
use super::translate::{arguments, is_distinct};
use super::{Dialect, Refusal, staged_replace};
use crate::model::Grain;
use crate::sql::build::*;

pub struct Trino;

/// The `date_add`/`date_diff` unit and the number of them in one period.
fn unit(grain: Grain) -> (&'static str, i64) {
    match grain {
        Grain::Day => ("day", 1),
        Grain::Week => ("day", 7),
        Grain::Month => ("month", 1),
        Grain::Quarter => ("month", 3),
        Grain::Year => ("month", 12),
    }
}

/// `sequence()` returns at most this many entries.
const SEQUENCE_MAX: i64 = 10_000;

/// `date_add('month', n, d)`: a DATE for a DATE.
fn date_add(unit: &str, n: Expr, d: Expr) -> Expr {
    func("date_add", vec![string(unit), n, d])
}

/// `date_diff('month', a, b)`: `b - a` in whole units.
fn date_diff(unit: &str, a: Expr, b: Expr) -> Expr {
    func("date_diff", vec![string(unit), a, b])
}

fn double() -> DataType {
    DataType::Double(ExactNumberInfo::None)
}

fn text(e: Expr) -> Expr {
    cast(e, varchar())
}

/// `CROSS JOIN UNNEST(array) AS alias (column)`
fn cross_join_unnest(array: Expr, alias: &str, column: &str) -> Join {
    Join {
        relation: TableFactor::UNNEST {
            alias: Some(TableAlias {
                explicit: true,
                name: ident(alias),
                columns: vec![TableAliasColumnDef::from_name(column)],
                at: None,
            }),
            array_exprs: vec![array],
            with_offset: false,
            with_offset_alias: None,
            with_ordinality: false,
        },
        global: false,
        join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
    }
}

/// A function name as written (`avg` is a keyword, never quoted).
fn renamed(call: &Function, name: &str) -> Function {
    let mut f = call.clone();
    f.name = sqlparser::ast::ObjectName::from(vec![Ident::new(name)]);
    f
}

/// `avg(x)` → `avg(CAST(x AS DOUBLE))`, keeping DISTINCT, a filter and a
/// window.
fn avg_over_doubles(call: &Function) -> Option<Expr> {
    let mut f = renamed(call, "avg");
    let FunctionArguments::List(list) = &mut f.args else {
        return None;
    };
    match list.args.first_mut() {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) => {
            *x = cast(x.clone(), double());
            Some(Expr::Function(f))
        }
        _ => None,
    }
}

/// The fraction of a quantile when it is a number literal.
fn literal_fraction(p: &Expr) -> Option<f64> {
    match p {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => literal_fraction(inner),
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => literal_fraction(expr).map(|v| -v),
        _ => None,
    }
}

/// The exact `quantile_cont(x, p)` of the rows `filter` keeps (DuckDB's and
/// PostgreSQL's `percentile_cont`): with the n non-NULL values sorted as
/// v[1..n] and h = (n - 1) · p, `v[floor(h) + 1] + (h - floor(h)) ·
/// (v[ceil(h) + 1] - v[floor(h) + 1])`.
///
/// ```sql
/// element_at(array_agg(CAST(x AS DOUBLE) ORDER BY CAST(x AS DOUBLE))
///              FILTER (WHERE x IS NOT NULL), CAST(floor(h) AS BIGINT) + 1)
///   + (h - floor(h)) * (element_at(…, CAST(ceiling(h) AS BIGINT) + 1)
///                       - element_at(…, CAST(floor(h) AS BIGINT) + 1))
/// -- h = greatest(count(x) - 1, 0) * CAST(p AS DOUBLE)
/// ```
///
/// The identical `array_agg` and `count` calls are one aggregate each for
/// Trino's planner. No rows give a NULL array, so NULL.
fn exact_quantile(x: Expr, p: Expr, filter: Option<&Expr>) -> Expr {
    let value = cast(x.clone(), double());
    let not_null = Expr::IsNotNull(Box::new(paren(x.clone())));
    let mut values = function("array_agg", vec![value.clone()]);
    if let FunctionArguments::List(list) = &mut values.args {
        list.clauses
            .push(FunctionArgumentClause::OrderBy(vec![OrderByExpr {
                expr: value,
                options: OrderByOptions {
                    sort: None,
                    nulls_first: None,
                },
                with_fill: None,
            }]));
    }
    values.filter = Some(Box::new(match filter {
        Some(cond) => and(cond.clone(), not_null),
        None => not_null,
    }));
    let mut count = function("count", vec![x]);
    count.filter = filter.map(|c| Box::new(c.clone()));
    let h = mul(
        func("greatest", vec![sub(Expr::Function(count), int(1)), int(0)]),
        cast(p, double()),
    );
    let at = |position: Expr| {
        func(
            "element_at",
            vec![
                Expr::Function(values.clone()),
                add(cast(position, DataType::BigInt(None)), int(1)),
            ],
        )
    };
    let floor = func("floor", vec![h.clone()]);
    let below = at(floor.clone());
    let above = at(func("ceiling", vec![h.clone()]));
    add(below.clone(), mul(sub(h, floor), sub(above, below)))
}

impl Dialect for Trino {
    fn name(&self) -> &'static str {
        "trino"
    }

    fn as_dyn(&self) -> &dyn Dialect {
        self
    }

    /// sqlparser has no Trino dialect; its generic one is the closest
    /// (sqlglot's `trino` is the strict check).
    fn parser(&self) -> Box<dyn sqlparser::dialect::Dialect> {
        Box::new(sqlparser::dialect::GenericDialect {})
    }

    /// `date_add('month', -12, d)`
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (unit, step) = unit(grain);
        date_add(unit, int(n * step), e)
    }

    /// `date_add('day', n, d)`
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        date_add("day", days, e)
    }

    /// `year_of_week(d)`
    fn iso_year(&self, e: Expr) -> Expr {
        func("year_of_week", vec![e])
    }

    /// `week(d)`
    fn iso_week(&self, e: Expr) -> Expr {
        func("week", vec![e])
    }

    /// `date_format(CAST(d AS TIMESTAMP), '%Y-%m')`, `concat(CAST(
    /// year_of_week(d) AS VARCHAR), '-W', lpad(CAST(week(d) AS VARCHAR), 2,
    /// '0'))`, …
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let format = |e: Expr, f: &str| {
            let timestamp = DataType::Timestamp(None, sqlparser::ast::TimezoneInfo::None);
            func("date_format", vec![cast(e, timestamp), string(f)])
        };
        match grain {
            Grain::Day => format(e, "%Y-%m-%d"),
            Grain::Month => format(e, "%Y-%m"),
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

    /// ```sql
    /// SELECT date_add('month', 3 * ((hi.n * 10000) + lo.n), b.start_day) AS column
    /// FROM (SELECT start AS start_day, end AS end_day) AS b
    /// CROSS JOIN UNNEST(sequence(0, (greatest(date_diff('month', b.start_day, b.end_day), 0) / 3) / 10000)) AS hi (n)
    /// CROSS JOIN UNNEST(sequence(0, least(greatest(…, 0) / 3, 9999))) AS lo (n)
    /// WHERE 3 * ((hi.n * 10000) + lo.n) <= date_diff('month', b.start_day, b.end_day)
    /// ```
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (unit, step) = unit(grain);
        let bounds = derived(
            select_query(select(
                vec![item(start, "start_day"), item(end, "end_day")],
                vec![],
            )),
            "b",
        );
        let units = || date_diff(unit, qcol("b", "start_day"), qcol("b", "end_day"));
        let positive = func("greatest", vec![units(), int(0)]);
        let periods = match step {
            1 => positive,
            _ => binop(positive, sqlparser::ast::BinaryOperator::Divide, int(step)),
        };
        let sequence = |last: Expr| func("sequence", vec![int(0), last]);
        let high = sequence(binop(
            paren(periods.clone()),
            sqlparser::ast::BinaryOperator::Divide,
            int(SEQUENCE_MAX),
        ));
        let low = sequence(func("least", vec![periods, int(SEQUENCE_MAX - 1)]));
        let n = add(mul(qcol("hi", "n"), int(SEQUENCE_MAX)), qcol("lo", "n"));
        let offset = match step {
            1 => n,
            _ => mul(int(step), n),
        };
        let mut s = select(
            vec![item(
                date_add(unit, offset.clone(), qcol("b", "start_day")),
                column,
            )],
            vec![from(
                bounds,
                vec![
                    cross_join_unnest(high, "hi", "n"),
                    cross_join_unnest(low, "lo", "n"),
                ],
            )],
        );
        s.selection = Some(lt_eq(offset, units()));
        select_query(s)
    }

    /// `(COALESCE(a, '0') = COALESCE(b, '0')) AND (COALESCE(a, '1') =
    /// COALESCE(b, '1'))`: true for equal texts and for two NULLs, false
    /// for a NULL and a text (no text equals both sentinels).
    fn null_safe_eq(&self, a: Expr, b: Expr) -> Expr {
        let side = |sentinel: &str| {
            eq(
                func("coalesce", vec![a.clone(), string(sentinel)]),
                func("coalesce", vec![b.clone(), string(sentinel)]),
            )
        };
        and(side("0"), side("1"))
    }

    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        None
    }

    fn aggregate(&self, name: &str, call: &Function) -> Result<Option<Expr>, Refusal> {
        let args = || {
            arguments(call).ok_or_else(|| Refusal {
                message: format!("`{name}` with these arguments cannot be translated"),
                help: format!("write it as `{name}(column)`"),
            })
        };
        let quantile = |x: Expr, p: Expr| {
            if is_distinct(call) {
                return Err(Refusal {
                    message: format!("`{name}(DISTINCT …)` is not translated for Trino"),
                    help: "drop DISTINCT (the quantile is taken over every value)".into(),
                });
            }
            if literal_fraction(&p).is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                return Err(Refusal {
                    message: format!("`{name}` needs a fraction between 0 and 1, not {p}"),
                    help: format!("write `{name}(column, 0.9)` for the 90th percentile"),
                });
            }
            Ok(Some(exact_quantile(x, p, call.filter.as_deref())))
        };
        match name {
            "quantile_cont" | "quantile" | "percentile" | "percentile_cont" => {
                let (x, rest) = args()?;
                let Some(p) = rest.first() else {
                    return Err(Refusal {
                        message: format!("`{name}` needs a fraction"),
                        help: format!("write `{name}(column, 0.9)`"),
                    });
                };
                quantile(x, p.clone())
            }
            "median" => {
                let (x, _) = args()?;
                quantile(x, num(0.5))
            }
            "approx_count_distinct" => {
                let (x, _) = args()?;
                Ok(Some(keep_filter(call, func("approx_distinct", vec![x]))))
            }
            "avg" | "mean" => Ok(avg_over_doubles(call)),
            _ => Ok(None),
        }
    }

    /// No `BEGIN`: whether DDL may run in a transaction is up to the
    /// connector.
    fn build_prologue(&self) -> Vec<Statement> {
        vec![]
    }

    fn build_epilogue(&self) -> Vec<Statement> {
        vec![]
    }

    /// No temporary tables: shared steps are inlined as CTEs.
    fn temp_table(&self, _name: &str, _query: Query) -> Option<Statement> {
        None
    }

    /// Every output built as `<table>__kpic_new`, then each swapped in with
    /// `CREATE OR REPLACE TABLE t AS SELECT * FROM t__kpic_new` and the
    /// staged table dropped.
    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        staged_replace(
            self,
            tables,
            &[
                "DROP TABLE IF EXISTS kpic_t_new",
                "CREATE TABLE kpic_t_new AS SELECT 1",
            ],
            &[
                "CREATE OR REPLACE TABLE kpic_t AS SELECT * FROM kpic_t_new",
                "DROP TABLE kpic_t_new",
            ],
            &[],
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

    fn parses(text: &str) {
        Parser::parse_sql(&sqlparser::dialect::GenericDialect {}, text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }

    #[test]
    fn dates_move_by_date_add_in_days_and_months() {
        let d = || col("d");
        assert_eq!(
            sql(&Trino.add_periods(Grain::Year, d(), -1)),
            "date_add('month', -12, d)"
        );
        assert_eq!(
            sql(&Trino.add_periods(Grain::Week, d(), 2)),
            "date_add('day', 14, d)"
        );
        assert_eq!(sql(&Trino.add_days(d(), int(1))), "date_add('day', 1, d)");
        assert_eq!(
            sql(&Trino.day_diff(col("a"), col("b"))),
            "date_diff('day', a, b)"
        );
        assert_eq!(
            sql(&Trino.period_start(Grain::Week, d())),
            "CAST(date_trunc('week', d) AS DATE)"
        );
    }

    #[test]
    fn labels() {
        let label = |g| sql(&Trino.period_label(g, col("d")));
        assert_eq!(
            label(Grain::Day),
            "date_format(CAST(d AS TIMESTAMP), '%Y-%m-%d')"
        );
        assert_eq!(
            label(Grain::Week),
            "concat(CAST(year_of_week(d) AS VARCHAR), '-W', lpad(CAST(week(d) AS VARCHAR), 2, '0'))"
        );
        assert_eq!(
            label(Grain::Quarter),
            "concat(CAST(year(d) AS VARCHAR), '-Q', CAST(quarter(d) AS VARCHAR))"
        );
        assert_eq!(label(Grain::Year), "CAST(year(d) AS VARCHAR)");
    }

    #[test]
    fn spine_unnests_two_short_sequences() {
        let q = Trino.date_spine(Grain::Quarter, col("s"), col("e"), "ps");
        let text = q.to_string();
        let units = "date_diff('month', b.start_day, b.end_day)";
        assert_eq!(
            text,
            format!(
                "SELECT date_add('month', 3 * ((hi.n * 10000) + lo.n), b.start_day) AS ps \
                 FROM (SELECT s AS start_day, e AS end_day) AS b \
                 CROSS JOIN UNNEST(sequence(0, (greatest({units}, 0) / 3) / 10000)) AS hi (n) \
                 CROSS JOIN UNNEST(sequence(0, least(greatest({units}, 0) / 3, 9999))) AS lo (n) \
                 WHERE (3 * ((hi.n * 10000) + lo.n)) <= {units}"
            )
        );
        parses(&text);
        let days = Trino
            .date_spine(Grain::Day, col("s"), col("e"), "ps")
            .to_string();
        assert!(
            days.starts_with("SELECT date_add('day', (hi.n * 10000) + lo.n, b.start_day) AS ps"),
            "{days}"
        );
    }

    /// The spine's arithmetic, for spans around the sequence limit: every
    /// offset from 0 to the span, once, and each sequence within 10,000.
    #[test]
    fn spine_offsets_cover_long_spans_exactly_once() {
        for span in [-5_i64, 0, 1, 9_998, 9_999, 10_000, 10_001, 99_999, 123_456] {
            let periods = span.max(0);
            let high = periods / SEQUENCE_MAX;
            let low = periods.min(SEQUENCE_MAX - 1);
            assert!(high < SEQUENCE_MAX && low < SEQUENCE_MAX);
            let mut offsets: Vec<i64> = (0..=high)
                .flat_map(|h| (0..=low).map(move |l| h * SEQUENCE_MAX + l))
                .filter(|n| *n <= span)
                .collect();
            offsets.sort();
            let expected: Vec<i64> = (0..=span).collect();
            assert_eq!(offsets, expected, "span {span}");
        }
    }

    #[test]
    fn members_match_null_to_null_with_equalities_only() {
        assert_eq!(
            sql(&Trino.null_safe_eq(col("a"), col("b"))),
            "(coalesce(a, '0') = coalesce(b, '0')) AND (coalesce(a, '1') = coalesce(b, '1'))"
        );
    }

    fn agg(text: &str) -> Result<Option<Expr>, Refusal> {
        crate::sql::dialect::aggregate_of(&Trino, text)
    }

    #[test]
    fn quantiles_are_exact_from_the_sorted_values() {
        let text = agg("quantile_cont(x, 0.9) FILTER (WHERE y > 0)")
            .unwrap()
            .unwrap()
            .to_string();
        let values = "array_agg(CAST(x AS DOUBLE) ORDER BY CAST(x AS DOUBLE)) \
                      FILTER (WHERE (y > 0) AND (x IS NOT NULL))";
        let h = "greatest(count(x) FILTER (WHERE y > 0) - 1, 0) * CAST(0.9 AS DOUBLE)";
        let below = format!("element_at({values}, CAST(floor({h}) AS BIGINT) + 1)");
        let above = format!("element_at({values}, CAST(ceiling({h}) AS BIGINT) + 1)");
        assert_eq!(
            text,
            format!("{below} + ((({h}) - floor({h})) * ({above} - {below}))")
        );
        parses(&format!("SELECT {text} FROM t"));
        assert!(
            agg("median(x)")
                .unwrap()
                .unwrap()
                .to_string()
                .contains("CAST(0.5 AS DOUBLE)")
        );
        assert!(agg("quantile_cont(x)").is_err());
        assert!(agg("quantile_cont(x, 1.5)").is_err());
        assert!(agg("median(DISTINCT x)").is_err());
    }

    /// The formula, evaluated as Trino would (1-based positions), matches
    /// DuckDB's `quantile_cont` on a few samples.
    #[test]
    fn quantile_formula_interpolates_like_duckdb() {
        let quantile = |values: &[f64], p: f64| -> Option<f64> {
            let mut v = values.to_vec();
            v.sort_by(f64::total_cmp);
            let at = |i: f64| v.get(i as usize).copied();
            let h = (v.len().max(1) - 1) as f64 * p;
            let below = at(h.floor())?;
            Some(below + (h - h.floor()) * (at(h.ceil())? - below))
        };
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9), Some(4.6));
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn other_aggregates() {
        let text = |t: &str| agg(t).unwrap().unwrap().to_string();
        assert_eq!(
            text("approx_count_distinct(x) FILTER (WHERE y)"),
            "approx_distinct(x) FILTER (WHERE y)"
        );
        assert_eq!(text("mean(x)"), "avg(CAST(x AS DOUBLE))");
        assert_eq!(agg("stddev(x)").unwrap(), None);
        assert_eq!(agg("count(DISTINCT x)").unwrap(), None);
    }

    #[test]
    fn build_stages_every_output_then_replaces_each() {
        let q = || select_query(select(vec![item(int(1), "x")], vec![]));
        let stmts = Trino.replace_tables(vec![
            ("kpi_results".into(), q()),
            ("kpi_metrics".into(), q()),
        ]);
        let text: Vec<String> = stmts.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "DROP TABLE IF EXISTS kpi_results__kpic_new",
                "CREATE TABLE kpi_results__kpic_new AS SELECT 1 AS x",
                "DROP TABLE IF EXISTS kpi_metrics__kpic_new",
                "CREATE TABLE kpi_metrics__kpic_new AS SELECT 1 AS x",
                "CREATE OR REPLACE TABLE kpi_results AS SELECT * FROM kpi_results__kpic_new",
                "DROP TABLE kpi_results__kpic_new",
                "CREATE OR REPLACE TABLE kpi_metrics AS SELECT * FROM kpi_metrics__kpic_new",
                "DROP TABLE kpi_metrics__kpic_new",
            ]
        );
        for t in &text {
            parses(t);
        }
        assert!(Trino.temp_table("kpic_scan_orders", q()).is_none());
        assert!(Trino.build_prologue().is_empty());
        assert!(Trino.build_epilogue().is_empty());
    }
}
