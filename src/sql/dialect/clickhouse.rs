//! ClickHouse (tested on chdb 4.4 = ClickHouse 26.9 by the engine tests).
//!
//! What differs from DuckDB, each verified on the engine:
//! - Session settings: build.sql starts with `SET` statements, which last
//!   for the session that runs the script (`clickhouse-client` with the
//!   file, or one HTTP `session_id`). By default an outer join's unmatched
//!   side, a key that `GROUPING SETS` rolled up and an aggregate over no
//!   rows give the type's default (0, '', 1970-01-01), not NULL:
//!   `join_use_nulls`, `group_by_use_nulls` and
//!   `aggregate_functions_null_for_empty` make them NULL (`count` stays 0).
//!   A SELECT alias also shadows the column of the same name everywhere in
//!   the query, so `sum(x) AS x, sum(CASE … THEN x END)` would nest
//!   aggregates: `prefer_column_name_to_alias` resolves names to columns
//!   first, as the standard does. The standalone SELECTs of `kpic compile`
//!   (`kpi_results.sql`, …) need the same four settings: run them in a
//!   session after these `SET`s, or append `SETTINGS join_use_nulls = 1,
//!   …` to them (without, they fail with code 184).
//! - Types are not Nullable unless written so, and `CAST(NULL AS Float64)`
//!   fails: every CAST targets a Nullable type — `Nullable(DOUBLE)`
//!   (Float64), `Nullable(INTEGER)`, `Nullable(VARCHAR)` (String),
//!   `Nullable(BOOLEAN)`, `Nullable(DateTime64(6))` and `Nullable(Date32)`
//!   (`Date` only spans 1970–2149; `Date32` spans 1900–2299 and keeps its
//!   type through `date_trunc`, `addMonths` and `addDays`; dates outside
//!   are clipped). Text that is not a date casts to NULL (`'x'`) or to a
//!   wrong date (`'2024-13-04'` → 1900-01-01), not to an error.
//! - Dates: `date_trunc('month', d)` keeps a `Date32` (`toStartOfMonth`
//!   returns a `Date`, clipped to 1970); weeks start on Monday.
//!   `addMonths(d, 3)`, `addDays(d, -7)`, `addYears(d, 1)` clip to month
//!   end as DuckDB (`addMonths(2024-01-31, 1)` = 2024-02-29). Day
//!   differences are `dateDiff('day', a, b)`. ISO year and week:
//!   `toISOYear`, `toISOWeek`; labels from `formatDateTime(d, '%G-W%V')`,
//!   `'%Y-Q%Q'`, `'%Y-%m'`. `today()`, `now64(6)`.
//! - Date spines: `SELECT addMonths(start, number) FROM numbers(n)`, with
//!   `n` the number of periods from `start` to `end` (`dateDiff`), 0 when
//!   a bound is NULL (no rows, as DuckDB's NULL series).
//! - Aggregates: `FILTER (WHERE …)` works, but a parametric aggregate with
//!   FILTER (`quantileExactInclusive(0.9)(x) FILTER (…)`) does not
//!   re-parse in sqlparser, so conditions go into a `CASE` inside the
//!   aggregate (aggregates skip NULLs). `quantile_cont(x, p)` →
//!   `quantileExactInclusive(p)(x)` and `median(x)` → the same at 0.5:
//!   exact and interpolated as DuckDB's (ClickHouse's `median` is
//!   approximate, `medianExact` does not interpolate). `stddev`,
//!   `stddev_samp` → `stddevSampStable` (the plain one uses a numerically
//!   unstable formula), NULL for fewer than two values (ClickHouse gives
//!   `inf` or `nan`); `stddev_pop` → `stddevPopStable`.
//!   `approx_count_distinct(x)` → `uniq(x)`: approximate like DuckDB's
//!   (exact on small sets; on large ones the two estimates differ).
//!   `mean` → `avg`.
//! - `lag(x) OVER (…)` gives the type's default (0), not NULL, on the
//!   first row unless `x` is Nullable: it is written `lag(toNullable(x))`.
//! - `1/0` is `inf`, not NULL: kpic guards every division with
//!   `nullif(d, 0)`, which gives NULL as in DuckDB. `log` is ClickHouse's
//!   natural logarithm (`log(0)` is `-inf`; kpic only takes logarithms of
//!   positive values).
//! - A breakdown member is `CAST(x AS Nullable(VARCHAR))`, which spells
//!   some values differently from DuckDB: a Float64 `2.0` is `'2'`
//!   (DuckDB `'2.0'`), a Decimal `12.50` is `'12.5'`, a comparison (UInt8)
//!   is `'1'` (DuckDB `'true'`).
//! - String literals read backslash escapes: `\` → `\\`, `'` → `\'`,
//!   newline → `\n`, carriage return → `\r`.
//! - No `AS MATERIALIZED` hint and no transactions (`BEGIN` is an error).
//! - Comparisons are `UInt8` (0/1), so `is_complete` is a number, not a
//!   boolean.
//! - `build.sql`: shared steps are session `TEMPORARY` tables (`CREATE OR
//!   REPLACE TEMPORARY TABLE … ENGINE = Memory`, so the script can run
//!   twice in one session). Every output is first built as
//!   `<table>__kpic_new` (a MergeTree table): a failure there leaves every
//!   old table in place.
//!   Then each output is replaced with `CREATE OR REPLACE TABLE t … AS
//!   SELECT * FROM t__kpic_new`, which an Atomic (the default) or
//!   Replicated database swaps in atomically: a reader sees the old table
//!   or the new one, never none or a half-filled one. The five
//!   replacements are not one transaction: between two of them a reader
//!   can see a new table beside an old one. (`EXCHANGE TABLES`, which
//!   would avoid the copy, does not parse in sqlparser.)

use sqlparser::ast::{
    DataType, DateTimeField, ExactNumberInfo, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, Ident, ObjectName, Query, Statement, TimezoneInfo,
};

use super::{Dialect, Refusal, backslash_escaped, grain_unit, skeleton, staged_replace};
use crate::model::Grain;
use crate::sql::build::*;

pub struct ClickHouse;

/// Session settings, run before anything else: standard NULL semantics,
/// names resolved to columns before SELECT aliases, and room for the
/// output statements of a project with many KPIs (each KPI's steps are CTEs
/// of one statement: 20 KPIs with breakdowns exceed ClickHouse's default
/// 50,000 AST elements and can exceed its 256 KiB of query text).
const SETTINGS: &[&str] = &[
    "SET join_use_nulls = 1",
    "SET group_by_use_nulls = 1",
    "SET aggregate_functions_null_for_empty = 1",
    "SET prefer_column_name_to_alias = 1",
    "SET max_ast_elements = 100000000",
    "SET max_expanded_ast_elements = 100000000",
    "SET max_query_size = 1073741824",
];

/// `f(params)(args)`: a ClickHouse parametric aggregate.
fn parametric(name: &str, params: Vec<Expr>, args: Vec<Expr>) -> Expr {
    let mut f = function(name, args);
    f.parameters = function(name, params).args;
    Expr::Function(f)
}

/// `n * step` (`n` when the step is 1).
fn spaced(n: Expr, step: i64) -> Expr {
    if step == 1 { n } else { mul(n, int(step)) }
}

/// `addMonths(d, n)`, `addDays(d, n)` or `addYears(d, n)`: `d` plus `n`
/// units of one step of `grain` (months for a quarter, days for a week).
fn add_units(grain: Grain, e: Expr, n: Expr) -> Expr {
    let (_, field, _) = grain_unit(grain);
    let name = match field {
        DateTimeField::Day => "addDays",
        DateTimeField::Month => "addMonths",
        _ => "addYears",
    };
    func(name, vec![e, n])
}

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

    /// `CAST('2026-01-31' AS Nullable(Date32))`
    fn date_literal(&self, d: chrono::NaiveDate) -> Expr {
        cast(string(&d.format("%Y-%m-%d").to_string()), DataType::Date)
    }

    /// `today()`
    fn current_date(&self) -> Expr {
        func("today", vec![])
    }

    /// `now64(6)` (microseconds)
    fn current_timestamp(&self) -> Expr {
        func("now64", vec![int(6)])
    }

    /// `CAST(date_trunc('month', d) AS Nullable(Date32))`: `date_trunc`
    /// keeps a `Date32` (weeks start on Monday); `toStartOfMonth` would
    /// return a `Date`, clipped to 1970.
    fn period_start(&self, grain: Grain, e: Expr) -> Expr {
        let (unit, _, _) = grain_unit(grain);
        if grain == Grain::Day {
            // `date_trunc('day', Date32)` is a DateTime64.
            return cast(e, DataType::Date);
        }
        cast(func("date_trunc", vec![string(unit), e]), DataType::Date)
    }

    /// `addMonths(d, 3)`, `addDays(d, -7)`, `addYears(d, 1)`: month
    /// arithmetic clips to month end, as in DuckDB.
    fn add_periods(&self, grain: Grain, e: Expr, n: i64) -> Expr {
        let (_, _, step) = grain_unit(grain);
        add_units(grain, e, int(n * step))
    }

    /// `addDays(d, n)`
    fn add_days(&self, e: Expr, days: Expr) -> Expr {
        func("addDays", vec![e, days])
    }

    /// `dateDiff('day', a, b)`
    fn day_diff(&self, a: Expr, b: Expr) -> Expr {
        func("dateDiff", vec![string("day"), a, b])
    }

    /// `toISOYear(d)`
    fn iso_year(&self, e: Expr) -> Expr {
        func("toISOYear", vec![e])
    }

    /// `toISOWeek(d)`
    fn iso_week(&self, e: Expr) -> Expr {
        func("toISOWeek", vec![e])
    }

    /// `formatDateTime(d, '%G-W%V')` (ISO year and week), `'%Y-Q%Q'`, …
    fn period_label(&self, grain: Grain, e: Expr) -> Expr {
        let format = match grain {
            Grain::Day => "%Y-%m-%d",
            Grain::Week => "%G-W%V",
            Grain::Month => "%Y-%m",
            Grain::Quarter => "%Y-Q%Q",
            Grain::Year => "%Y",
        };
        func("formatDateTime", vec![e, string(format)])
    }

    /// `SELECT addMonths(start, number) AS column FROM numbers(n)`, with
    /// `n = greatest(ifNull(intDiv(dateDiff('month', start, end) + 3, 3),
    /// 0), 0)` periods for a quarter (both bounds are period starts): no
    /// rows when a bound is NULL or `end` is before `start`.
    fn date_spine(&self, grain: Grain, start: Expr, end: Expr, column: &str) -> Query {
        let (_, field, step) = grain_unit(grain);
        let unit = match field {
            DateTimeField::Day => "day",
            DateTimeField::Month => "month",
            _ => "year",
        };
        let diff = func("dateDiff", vec![string(unit), start.clone(), end]);
        let periods = if step == 1 {
            add(diff, int(1))
        } else {
            func("intDiv", vec![add(diff, int(step)), int(step)])
        };
        // `numbers(n)`'s column (a keyword, which `col` would quote).
        let number = Expr::Identifier(Ident::new("number"));
        let count = func(
            "greatest",
            vec![func("ifNull", vec![periods, int(0)]), int(0)],
        );
        select_query(select(
            vec![item(
                cast(
                    add_units(grain, start, spaced(number, step)),
                    DataType::Date,
                ),
                column,
            )],
            vec![from(table_function("numbers", vec![count], "n"), vec![])],
        ))
    }

    fn materialized_cte(&self) -> Option<sqlparser::ast::CteAsMaterialized> {
        None
    }

    /// `log(e)`: ClickHouse's natural logarithm.
    fn ln(&self, e: Expr) -> Expr {
        func("log", vec![e])
    }

    // ---- style ------------------------------------------------------------

    fn aggregate_filter(&self) -> bool {
        false
    }

    /// `quantile_cont(x, p)` → `quantileExactInclusive(p)(x)`, `median(x)`
    /// → `quantileExactInclusive(0.5)(x)` (`…Distinct` with DISTINCT);
    /// `stddev(x)` → `CASE WHEN count(x) > 1 THEN stddevSampStable(x) END`;
    /// `approx_count_distinct(x)` → `uniq(x)`; `mean` → `avg`. Also
    /// `lag(x) OVER (…)` → `lag(toNullable(x)) OVER (…)` (see the module
    /// header).
    fn aggregate(&self, name: &str, call: &Function) -> Result<Option<Expr>, Refusal> {
        use super::translate::{arguments, is_distinct};
        let renamed = |to: &str| {
            let mut f = call.clone();
            f.name = ObjectName::from(vec![Ident::new(to)]);
            f
        };
        Ok(match name {
            "quantile_cont" | "quantile" | "percentile" | "percentile_cont" | "median" => {
                let usage = || Refusal {
                    message: format!("`{name}` with these arguments cannot be translated"),
                    help: "write it as `quantile_cont(column, 0.9)`".into(),
                };
                if !call.within_group.is_empty() {
                    return Err(usage());
                }
                let (x, rest) = arguments(call).ok_or_else(usage)?;
                let p = match (name, rest.first()) {
                    ("median", _) => num(0.5),
                    (_, Some(p)) => p.clone(),
                    (_, None) => {
                        return Err(Refusal {
                            message: format!("`{name}` needs a fraction"),
                            help: format!("write `{name}(column, 0.9)`"),
                        });
                    }
                };
                let f = if is_distinct(call) {
                    "quantileExactInclusiveDistinct"
                } else {
                    "quantileExactInclusive"
                };
                Some(parametric(f, vec![p], vec![x]))
            }
            "approx_count_distinct" => {
                let mut f = renamed("uniq");
                if let FunctionArguments::List(list) = &mut f.args {
                    list.duplicate_treatment = None;
                }
                Some(Expr::Function(f))
            }
            "stddev" | "stddev_samp" => {
                // One value: DuckDB's is NULL, ClickHouse's `inf` or `nan`.
                let more_than_one = gt(Expr::Function(renamed("count")), int(1));
                Some(case(
                    vec![(more_than_one, Expr::Function(renamed("stddevSampStable")))],
                    None,
                ))
            }
            "stddev_pop" => Some(Expr::Function(renamed("stddevPopStable"))),
            "mean" => Some(Expr::Function(renamed("avg"))),
            // Not an aggregate, but the pass asks about every call.
            "lag" if call.over.is_some() => {
                let mut f = call.clone();
                if let FunctionArguments::List(list) = &mut f.args
                    && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) =
                        list.args.first_mut()
                {
                    *x = func("toNullable", vec![x.clone()]);
                }
                Some(Expr::Function(f))
            }
            _ => None,
        })
    }

    /// `Nullable(DOUBLE)` (= `Nullable(Float64)`), `Nullable(INTEGER)`,
    /// `Nullable(VARCHAR)` (= `Nullable(String)`), `Nullable(BOOLEAN)`,
    /// `Nullable(Date32)`, `Nullable(DateTime64(6))`: a CAST to a
    /// non-Nullable type fails on NULL. The SQL names are used where
    /// sqlparser would print ClickHouse's own in capitals (`FLOAT64`,
    /// `STRING`), which ClickHouse does not know.
    fn data_type(&self, t: DataType) -> DataType {
        let base = match t {
            DataType::Nullable(_) => return t,
            DataType::Double(_)
            | DataType::DoublePrecision
            | DataType::Float(_)
            | DataType::Float8
            | DataType::Float64 => DataType::Double(ExactNumberInfo::None),
            DataType::Integer(_) | DataType::Int(_) | DataType::Int4(_) | DataType::Int32 => {
                DataType::Integer(None)
            }
            DataType::BigInt(_) | DataType::Int8(_) | DataType::Int64 => DataType::BigInt(None),
            DataType::Varchar(_)
            | DataType::Nvarchar(_)
            | DataType::CharVarying(_)
            | DataType::CharacterVarying(_)
            | DataType::Text
            | DataType::String(_) => DataType::Varchar(None),
            DataType::Bool => DataType::Boolean,
            DataType::Date => DataType::Date32,
            DataType::Timestamp(_, TimezoneInfo::None) | DataType::Datetime(_) => {
                DataType::Datetime64(6, None)
            }
            other => other,
        };
        DataType::Nullable(Box::new(base))
    }

    /// `'it\'s'`, `'a\\b'`
    fn string_literal(&self, text: &str) -> Option<Expr> {
        backslash_escaped(text)
    }

    // ---- build.sql --------------------------------------------------------

    fn build_prologue(&self) -> Vec<Statement> {
        SETTINGS
            .iter()
            .map(|s| skeleton(self, s, &[], None))
            .collect()
    }

    fn build_epilogue(&self) -> Vec<Statement> {
        vec![]
    }

    /// `SELECT … SETTINGS join_use_nulls = 1, …`: the session settings of
    /// build.sql, on the query itself.
    fn finish_standalone(&self, query: &mut Query) {
        let settings = SETTINGS
            .iter()
            .filter_map(|s| {
                let (key, value) = s.strip_prefix("SET ")?.split_once(" = ")?;
                Some(sqlparser::ast::Setting {
                    key: sqlparser::ast::Ident::new(key),
                    value: crate::sql::build::int(value.parse().ok()?),
                })
            })
            .collect();
        query.settings = Some(settings);
    }

    fn temp_table(&self, name: &str, query: Query) -> Option<Statement> {
        Some(skeleton(
            self,
            "CREATE OR REPLACE TEMPORARY TABLE kpic_t ENGINE = Memory AS SELECT 1",
            &[("kpic_t", name)],
            Some(query),
        ))
    }

    fn replace_tables(&self, tables: Vec<(String, Query)>) -> Vec<Statement> {
        staged_replace(
            self,
            tables,
            &[
                "DROP TABLE IF EXISTS kpic_t_new",
                "CREATE TABLE kpic_t_new ENGINE = MergeTree ORDER BY tuple() AS SELECT 1",
            ],
            &[
                "CREATE OR REPLACE TABLE kpic_t ENGINE = MergeTree ORDER BY tuple() \
                 AS SELECT * FROM kpic_t_new",
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

    fn reparse(text: &str) -> Vec<Statement> {
        Parser::parse_sql(&sqlparser::dialect::ClickHouseDialect {}, text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// `e` after the dialect pass (CASTs, aggregates, literals).
    fn translated(mut e: Expr) -> String {
        super::super::translate_expr(&mut e, &ClickHouse);
        e.to_string()
    }

    fn parse_expr(text: &str) -> Expr {
        Parser::new(&sqlparser::dialect::GenericDialect {})
            .try_with_sql(text)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn dates() {
        let d = || col("d");
        let ch = ClickHouse;
        assert_eq!(
            translated(ch.period_start(Grain::Week, d())),
            "CAST(date_trunc('week', d) AS Nullable(Date32))"
        );
        assert_eq!(
            translated(ch.period_start(Grain::Day, d())),
            "CAST(d AS Nullable(Date32))"
        );
        assert_eq!(
            sql(&ch.add_periods(Grain::Quarter, d(), -1)),
            "addMonths(d, -3)"
        );
        assert_eq!(sql(&ch.add_periods(Grain::Week, d(), 1)), "addDays(d, 7)");
        assert_eq!(
            sql(&ch.add_periods(Grain::Year, d(), -1)),
            "addYears(d, -1)"
        );
        assert_eq!(
            sql(&ch.day_diff(col("a"), col("b"))),
            "dateDiff('day', a, b)"
        );
        assert_eq!(
            sql(&ch.period_label(Grain::Week, d())),
            "formatDateTime(d, '%G-W%V')"
        );
        assert_eq!(
            translated(ch.date_literal(chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap())),
            "CAST('2026-01-31' AS Nullable(Date32))"
        );
        for e in [
            ch.period_start(Grain::Quarter, d()),
            ch.add_days(d(), neg(int(30))),
            ch.iso_year(d()),
            ch.iso_week(d()),
            ch.current_timestamp(),
        ] {
            reparse(&format!("SELECT {}", translated(e)));
        }
    }

    #[test]
    fn spine_counts_periods_from_start_to_end() {
        let q = |g| {
            ClickHouse
                .date_spine(g, col("s"), col("e"), "ps")
                .to_string()
        };
        assert_eq!(
            q(Grain::Month),
            "SELECT CAST(addMonths(s, number) AS DATE) AS ps \
             FROM numbers(greatest(ifNull(dateDiff('month', s, e) + 1, 0), 0)) AS n"
        );
        // Steps of several units: intDiv(diff + step, step) periods, 0
        // when `e` is a step or more before `s`.
        assert_eq!(
            q(Grain::Week),
            "SELECT CAST(addDays(s, number * 7) AS DATE) AS ps \
             FROM numbers(greatest(ifNull(intDiv(dateDiff('day', s, e) + 7, 7), 0), 0)) AS n"
        );
        assert!(q(Grain::Quarter).contains("addMonths(s, number * 3)"));
        assert!(q(Grain::Year).contains("dateDiff('year', s, e) + 1"));
        reparse(&q(Grain::Quarter));
    }

    #[test]
    fn aggregates() {
        let agg = |text: &str| {
            crate::sql::dialect::aggregate_of(&ClickHouse, text).map(|r| r.map(|e| e.to_string()))
        };
        let some = |s: &str| Ok(Some(s.to_string()));
        assert_eq!(
            agg("quantile_cont(x, 0.9)"),
            some("quantileExactInclusive(0.9)(x)")
        );
        assert_eq!(agg("median(x)"), some("quantileExactInclusive(0.5)(x)"));
        assert_eq!(
            agg("median(DISTINCT x)"),
            some("quantileExactInclusiveDistinct(0.5)(x)")
        );
        assert_eq!(agg("approx_count_distinct(x)"), some("uniq(x)"));
        assert_eq!(
            agg("stddev(x)"),
            some("CASE WHEN count(x) > 1 THEN stddevSampStable(x) END")
        );
        assert_eq!(agg("stddev_pop(x)"), some("stddevPopStable(x)"));
        assert_eq!(agg("mean(x)"), some("avg(x)"));
        assert_eq!(agg("sum(x)"), Ok(None));
        assert_eq!(agg("count(DISTINCT x)"), Ok(None));
        assert!(agg("percentile_cont(x)").is_err());
        // Filters move into the argument before the rewrite.
        let filtered = translated(parse_expr("quantile_cont(x, 0.9) FILTER (WHERE y = 1)"));
        assert_eq!(
            filtered,
            "quantileExactInclusive(0.9)(CASE WHEN y = 1 THEN x END)"
        );
        reparse(&format!("SELECT {filtered} FROM t"));
        assert_eq!(
            translated(parse_expr("count(*) FILTER (WHERE y = 1)")),
            "count(CASE WHEN y = 1 THEN 1 END)"
        );
        // `lag` of a non-Nullable value is NULL on the first row only when
        // its argument is Nullable.
        let lagged = translated(lag(col("v"), vec![], col("p")));
        assert_eq!(lagged, "lag(toNullable(v)) OVER (ORDER BY p)");
        reparse(&format!("SELECT {lagged} FROM t"));
    }

    #[test]
    fn casts_target_nullable_types() {
        let t = |d: DataType| ClickHouse.data_type(d).to_string();
        assert_eq!(t(double()), "Nullable(DOUBLE)");
        assert_eq!(t(varchar()), "Nullable(VARCHAR)");
        assert_eq!(t(DataType::Integer(None)), "Nullable(INTEGER)");
        assert_eq!(t(DataType::Boolean), "Nullable(BOOLEAN)");
        assert_eq!(t(DataType::Date), "Nullable(Date32)");
        assert_eq!(
            t(DataType::Timestamp(None, TimezoneInfo::None)),
            "Nullable(DateTime64(6))"
        );
        // Idempotent: skeletons are translated, then get translated queries.
        assert_eq!(
            ClickHouse.data_type(ClickHouse.data_type(double())),
            ClickHouse.data_type(double())
        );
    }

    #[test]
    fn string_literals_round_trip() {
        assert!(ClickHouse.string_literal("plain text").is_none());
        for text in ["it's", "a\\b", "a\\'b", "''", "\\", "line\nbreak\r\n"] {
            let lit = ClickHouse.string_literal(text).expect("needs escaping");
            let printed = format!("SELECT {lit}");
            assert!(!printed.contains('\n'), "{printed}");
            let parsed = reparse(&printed);
            let Statement::Query(q) = &parsed[0] else {
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
    }

    #[test]
    fn build_statements_parse_and_replace_after_every_build() {
        let q = || select_query(select(vec![item(int(1), "x")], vec![]));
        let prologue: Vec<String> = ClickHouse
            .build_prologue()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(prologue.contains(&"SET join_use_nulls = 1".to_string()));
        assert!(ClickHouse.build_epilogue().is_empty());
        let stmts = ClickHouse.replace_tables(vec![
            ("kpi_results".into(), q()),
            ("kpi_metrics".into(), q()),
        ]);
        let text: Vec<String> = stmts.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "DROP TABLE IF EXISTS kpi_results__kpic_new",
                "CREATE TABLE kpi_results__kpic_new ENGINE = MergeTree ORDER BY tuple() AS SELECT 1 AS x",
                "DROP TABLE IF EXISTS kpi_metrics__kpic_new",
                "CREATE TABLE kpi_metrics__kpic_new ENGINE = MergeTree ORDER BY tuple() AS SELECT 1 AS x",
                "CREATE OR REPLACE TABLE kpi_results ENGINE = MergeTree ORDER BY tuple() AS SELECT * FROM kpi_results__kpic_new",
                "DROP TABLE kpi_results__kpic_new",
                "CREATE OR REPLACE TABLE kpi_metrics ENGINE = MergeTree ORDER BY tuple() AS SELECT * FROM kpi_metrics__kpic_new",
                "DROP TABLE kpi_metrics__kpic_new",
            ]
        );
        let temp = ClickHouse.temp_table("kpic_scan_orders", q()).unwrap();
        assert_eq!(
            temp.to_string(),
            "CREATE OR REPLACE TEMPORARY TABLE kpic_scan_orders ENGINE = Memory AS SELECT 1 AS x"
        );
        for t in text.iter().chain(&prologue).chain([&temp.to_string()]) {
            reparse(t);
        }
    }
}
