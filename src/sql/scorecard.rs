//! The `kpi_scorecard` view: one row per KPI, wide, for BI tools.
//!
//! In: nothing (the view is a SELECT over the output tables `kpi_results`
//! and `kpi_definitions`, the same for every project). Out: its query, as
//! dialect-free AST the renderer then translates like every other query.
//!
//! Each row holds the KPI's definition (every column of kpi_definitions),
//! then its latest complete period (`complete_*`, from the kpi_results row
//! with the latest `period_start` among those with `is_complete`), then its
//! current period (`current_*`, the kpi_results row with the latest
//! `period_start`: the period containing `as_of`, complete only when
//! `as_of` is its last day). The column list is a stable contract
//! (docs/tables.md): [`scorecard_columns`] is its single source.

use sqlparser::ast::{Expr, Query, SelectItem};

use super::build::*;

/// The view's name.
pub const SCORECARD: &str = "kpi_scorecard";

/// kpi_definitions columns, first in the view, unprefixed.
pub const DEFINITION_COLUMNS: &[&str] = &[
    "kpi",
    "label",
    "description",
    "metric",
    "objective",
    "owner",
    "grain",
    "direction",
    "indicator",
    "tolerance",
    "format",
    "rationale",
    "measurement",
    "review",
    "action_plan",
    "related",
    "drivers",
    "breakdowns",
    "definition_hash",
    "computed_at",
];

/// kpi_results columns of the latest complete period, as `complete_<c>`.
/// (`is_complete` is true by definition and `projected` equals `actual`
/// there, so both are left out.)
pub const COMPLETE_COLUMNS: &[&str] = &[
    "period",
    "period_start",
    "period_end",
    "actual",
    "target",
    "attainment",
    "status",
    "previous",
    "change",
    "change_pct",
    "last_year",
    "yoy_change_pct",
    "numerator",
    "denominator",
];

/// kpi_results columns of the current period, as `current_<c>`.
pub const CURRENT_COLUMNS: &[&str] = &[
    "period",
    "period_start",
    "period_end",
    "is_complete",
    "actual",
    "projected",
    "target",
    "attainment",
    "status",
    "previous",
    "change",
    "change_pct",
    "last_year",
    "yoy_change_pct",
    "numerator",
    "denominator",
];

/// Every column of the view, in order.
pub fn scorecard_columns() -> Vec<String> {
    DEFINITION_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(COMPLETE_COLUMNS.iter().map(|c| format!("complete_{c}")))
        .chain(CURRENT_COLUMNS.iter().map(|c| format!("current_{c}")))
        .collect()
}

/// Rank column of the per-KPI latest-row subqueries.
const RANK: &str = "kpic_rank";

/// The latest kpi_results row of each KPI (among complete periods when
/// `complete_only`), with `columns`:
///
/// ```sql
/// SELECT kpi, <columns> FROM (
///   SELECT kpi, <columns>, row_number() OVER (PARTITION BY kpi ORDER BY period_start DESC) AS kpic_rank
///   FROM kpi_results [WHERE is_complete]) AS r
/// WHERE kpic_rank = 1
/// ```
///
/// A window rank rather than a correlated `max()` subquery: every engine
/// kpic targets runs it the same way.
fn latest_rows(columns: &[&str], complete_only: bool) -> Query {
    let plain = |c: &str| SelectItem::UnnamedExpr(col(c));
    let items = |with_rank: bool| {
        let mut items = vec![plain("kpi")];
        items.extend(columns.iter().map(|c| plain(c)));
        if with_rank {
            items.push(item(
                row_number_desc(vec![col("kpi")], col("period_start")),
                RANK,
            ));
        }
        items
    };
    let mut ranked = select(
        items(true),
        vec![from(table(object("kpi_results"), None), vec![])],
    );
    if complete_only {
        ranked.selection = Some(col("is_complete"));
    }
    let mut latest = select(
        items(false),
        vec![from(derived(select_query(ranked), "r"), vec![])],
    );
    latest.selection = Some(eq(col(RANK), int(1)));
    select_query(latest)
}

/// The view's SELECT over `kpi_definitions` and `kpi_results`. Every KPI
/// of kpi_definitions has a row; a KPI without a complete period (or
/// without any row) has NULL `complete_*` (and `current_*`) columns.
pub fn scorecard_query() -> Query {
    let mut items: Vec<_> = DEFINITION_COLUMNS
        .iter()
        .map(|c| item(qcol("d", c), c))
        .collect();
    items.extend(
        COMPLETE_COLUMNS
            .iter()
            .map(|c| item(qcol("c", c), &format!("complete_{c}"))),
    );
    items.extend(
        CURRENT_COLUMNS
            .iter()
            .map(|c| item(qcol("u", c), &format!("current_{c}"))),
    );
    let on = |alias: &str| -> Expr { eq(qcol(alias, "kpi"), qcol("d", "kpi")) };
    select_query(select(
        items,
        vec![from(
            table(object("kpi_definitions"), Some("d")),
            vec![
                left_join(derived(latest_rows(COMPLETE_COLUMNS, true), "c"), on("c")),
                left_join(derived(latest_rows(CURRENT_COLUMNS, false), "u"), on("u")),
            ],
        )],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_unique_and_match_the_query() {
        let columns = scorecard_columns();
        let unique: std::collections::BTreeSet<&String> = columns.iter().collect();
        assert_eq!(unique.len(), columns.len());
        let q = scorecard_query();
        let sqlparser::ast::SetExpr::Select(s) = q.body.as_ref() else {
            panic!("not a SELECT")
        };
        let aliases: Vec<String> = s
            .projection
            .iter()
            .map(|i| match i {
                sqlparser::ast::SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                other => panic!("unaliased item {other}"),
            })
            .collect();
        assert_eq!(aliases, columns);
    }
}
