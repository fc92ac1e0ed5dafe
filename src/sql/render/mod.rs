//! Rendering: [`Plan`] → named queries and output SELECTs, as sqlparser
//! AST, for one [`Dialect`].
//!
//! Naming: every step is a `kpic_*` relation. `kpic_scan_<source>` reads a
//! source once; `kpic_agg_<source>_<grain>` groups it by period with one
//! conditional aggregate per (metric, filter context), plus a `__lfl`
//! variant over each period's first `elapsed_days` days;
//! `kpic_win_<source>_<grain>_<kind>` computes rolling measures over a
//! period spine; `kpic_k_<kpi>_{spine,base,cmp,vals}` turn those columns
//! into one KPI's rows. In KPI steps a metric's value for a variant is
//! column `<variant>__<metric>`: `v` value, `l` like-for-like value, `u`
//! unfiltered value, `pv`/`pl` previous period's, `yv`/`yl` last year's.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sha2::{Digest, Sha256};
use sqlparser::ast::{BinaryOperator, DataType, Expr, Query, SelectItem};

use super::build::*;

mod diagnose;
mod pregroup;
mod segments;
mod trailing;

pub use diagnose::driver_step_metrics;
pub use segments::{SegmentRanges, segment_query};

use super::{CheckQuery, CompiledSql, Dialect, NamedQuery, OutputQuery};
use crate::model::{Accumulation, Direction, Grain, PeriodAgg};
use crate::plan::{
    AggKind, AggNode, AsOfPlan, BreakdownPlan, Formula, KpiNode, MEMBER_SUFFIX, Plan, ScanNode,
    ScanRelation, TargetPlan,
};
use crate::semantic::SemanticModel;
use crate::semantic::aggregates::is_holistic;
use diagnose::{grouping_sets, grouping_sets_with, member_items, member_list};

const DAY: &str = "__kpic_day";
/// A scan row's period, next to the scan's own columns (which may include
/// one named `period_start`) in the rows of member aggregates.
const ROW_PERIOD: &str = "__kpic_period";
/// Columns of member rows: the breakdown dimension (as the KPI writes it)
/// and the member (text, NULL for a NULL member).
const MEMBER_DIM: &str = "__kpic_dim";
const MEMBER: &str = "__kpic_member";
/// Leaf names of a ratio KPI's numerator and denominator, and of member
/// row counts, in KPI steps.
const RATIO_NUM: &str = "kpic_num";
const RATIO_DEN: &str = "kpic_den";
const PRESENCE: &str = "kpic_rows";
/// Columns of a KPI's values step with its baseline's ratio parts.
const PREVIOUS_NUMERATOR: &str = "__kpic_prev_num";
const PREVIOUS_DENOMINATOR: &str = "__kpic_prev_den";
const PARAMS: &str = "kpic_params";
/// Placeholder prefix for `offset()` calls while a formula is expanded.
const OFFSET_MARK: &str = "__kpic_offset_";

/// A period aggregate computed from a member aggregate's rows.
struct RollUp {
    /// The member aggregate's step.
    source: String,
    /// The dimension whose member rows are summed (the first).
    dimension: String,
    /// What the member aggregate computes for it, and how it combines.
    partials: pregroup::Partials,
}

struct Renderer<'a> {
    dialect: &'a dyn Dialect,
    /// Period aggregates computed from a member aggregate's rows, by name
    /// ([`Renderer::roll_up_source`]).
    roll_ups: BTreeMap<String, RollUp>,
    plan: &'a Plan,
    model: &'a SemanticModel,
    /// Named queries the as_of expression needs.
    as_of_deps: Vec<String>,
}

/// Renders a plan for `dialect`.
pub fn plan_to_sql(plan: &Plan, model: &SemanticModel, dialect: &dyn Dialect) -> CompiledSql {
    let as_of_deps = match &plan.as_of {
        AsOfPlan::Latest(_) => vec![PARAMS.to_string()],
        _ => vec![],
    };
    let mut r = Renderer {
        dialect,
        plan,
        model,
        as_of_deps,
        roll_ups: BTreeMap::new(),
    };
    r.roll_ups = plan
        .aggregates
        .iter()
        .filter_map(|p| Some((p.name.clone(), r.roll_up_source(p)?)))
        .collect();
    let mut named: Vec<NamedQuery> = Vec::new();
    for s in &plan.scans {
        named.push(r.scan(s));
    }
    if let AsOfPlan::Latest(_) = &plan.as_of {
        named.push(NamedQuery {
            name: PARAMS.into(),
            query: r.params(),
            deps: plan.scans.iter().map(|s| rel(&s.name)).collect(),
            shared: true,
        });
    }
    for a in &plan.aggregates {
        named.extend(r.aggregate(a));
    }
    // A period aggregate rolled up from a member aggregate reads it, and
    // rolling aggregates read period aggregates: build.sql materializes
    // the steps in this order.
    let mut named = in_dependency_order(named);
    let read_in_place: Vec<String> = plan
        .scans
        .iter()
        .filter(|s| r.cheap_to_read_again(s))
        .map(|s| rel(&s.name))
        .collect();
    inline_scans(&mut named, &read_in_place);
    let mut hashes = Vec::new();
    let (mut breakdowns, mut breakdown_deps) = (Vec::new(), Vec::new());
    let (mut drivers, mut driver_deps) = (Vec::new(), Vec::new());
    let mut results = Vec::new();
    let mut metrics = Vec::new();
    for k in &plan.kpis {
        let mut steps = r.kpi_steps(k, None);
        if let Some(b) = &k.breakdown {
            steps.extend(r.kpi_steps(k, Some(b)));
            steps.extend(r.breakdown_steps(k, b));
            breakdowns.push(r.breakdown_rows(k, b));
            breakdown_deps.push(format!("kpic_kb_{}_eff", k.name));
        }
        steps.extend(r.driver_steps(k));
        drivers.extend(r.driver_rows(k));
        if !k.drivers.is_empty() {
            driver_deps.push(step(&k.name, "drv"));
        }
        let mut hasher = Sha256::new();
        if let Some(def) = model.project.kpi(&k.name) {
            // The texts shown in kpi_definitions; spans are left out so that
            // moving a definition within its file keeps its hash.
            for text in [
                &def.label,
                &def.description,
                &def.objective,
                &def.rationale,
                &def.measurement,
                &def.review,
                &def.action_plan,
            ] {
                hasher.update(text.as_deref().unwrap_or("\u{0}").as_bytes());
                hasher.update([0]);
            }
        }
        for s in &steps {
            hasher.update(s.query.to_string().as_bytes());
        }
        let digest = hasher.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        hashes.push((k.name.clone(), hex));
        named.extend(steps);
        results.push(r.kpi_result(k));
        metrics.extend(r.kpi_metric_rows(k));
    }
    let kpi_deps: Vec<String> = plan.kpis.iter().map(|k| step(&k.name, "vals")).collect();
    let base_deps: Vec<String> = plan.kpis.iter().map(|k| step(&k.name, "cmp")).collect();
    let outputs = vec![
        OutputQuery {
            table: "kpi_results".into(),
            query: union(results, false).unwrap_or_else(|| empty(RESULT_COLUMNS)),
            deps: kpi_deps,
        },
        OutputQuery {
            table: "kpi_metrics".into(),
            query: union(metrics, true).unwrap_or_else(|| empty(METRIC_COLUMNS)),
            deps: base_deps,
        },
        OutputQuery {
            table: "kpi_breakdowns".into(),
            query: union(breakdowns, false).unwrap_or_else(|| empty(BREAKDOWN_COLUMNS)),
            deps: breakdown_deps,
        },
        OutputQuery {
            table: "kpi_drivers".into(),
            query: union(drivers, false).unwrap_or_else(|| empty(DRIVER_COLUMNS)),
            deps: driver_deps,
        },
        OutputQuery {
            table: "kpi_definitions".into(),
            query: union(
                plan.kpis
                    .iter()
                    .filter_map(|k| r.definition(k, &hashes))
                    .collect(),
                false,
            )
            .unwrap_or_else(|| empty(DEFINITION_COLUMNS)),
            deps: vec![],
        },
    ];
    let checks = plan
        .fanout_checks
        .iter()
        .map(|c| CheckQuery {
            check: c.clone(),
            query: r.fanout_query(c),
        })
        .collect();
    let probes = plan
        .aggregates
        .iter()
        .flat_map(|a| {
            a.columns.iter().map(|c| super::Probe {
                scan: rel(&a.scan),
                column: c.name.clone(),
                query: select_query(select(
                    vec![item(with_filter(&c.measure, c.filter.as_ref()), "v")],
                    vec![from(table(object(&rel(&a.scan)), None), vec![])],
                )),
            })
        })
        .collect();
    let mut compiled = CompiledSql {
        probes,
        dialect: dialect.name(),
        named,
        outputs,
        views: vec![OutputQuery {
            table: super::scorecard::SCORECARD.into(),
            query: super::scorecard::scorecard_query(),
            deps: vec![],
        }],
        checks,
        definition_hashes: hashes,
    };
    // The dialect's style, applied once to every query.
    let translate = |q: &mut Query| super::dialect::translate_query(q, dialect);
    compiled
        .named
        .iter_mut()
        .for_each(|n| translate(&mut n.query));
    compiled
        .outputs
        .iter_mut()
        .chain(compiled.views.iter_mut())
        .for_each(|o| translate(&mut o.query));
    compiled
        .checks
        .iter_mut()
        .for_each(|c| translate(&mut c.query));
    compiled
        .probes
        .iter_mut()
        .for_each(|p| translate(&mut p.query));
    compiled
}

/// `named` with every step after the steps it reads, otherwise in the
/// order given.
fn in_dependency_order(named: Vec<NamedQuery>) -> Vec<NamedQuery> {
    fn visit(
        i: usize,
        named: &[NamedQuery],
        index: &BTreeMap<&str, usize>,
        placed: &mut Vec<bool>,
        order: &mut Vec<usize>,
    ) {
        if placed[i] {
            return;
        }
        placed[i] = true;
        for dep in &named[i].deps {
            if let Some(&j) = index.get(dep.as_str()) {
                visit(j, named, index, placed, order);
            }
        }
        order.push(i);
    }
    let index: BTreeMap<&str, usize> = named
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut placed = vec![false; named.len()];
    let mut order = Vec::with_capacity(named.len());
    for i in 0..named.len() {
        visit(i, &named, &index, &mut placed, &mut order);
    }
    drop(index);
    let mut slots: Vec<Option<NamedQuery>> = named.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// Writes each scan of `scans` into every step that reads it, as a derived
/// table in place of its name, and gives those steps the scan's own
/// dependencies. These are the scans cheap to read again
/// ([`Renderer::cheap_to_read_again`]): as a CTE, DuckDB would materialize
/// a scan that one statement reads more than once (a member window reads
/// it once per breakdown dimension), the very copy the plan avoids. The
/// scan steps stay among the named queries (`kpic check` binds measures
/// against them) but nothing reads them.
fn inline_scans(named: &mut [NamedQuery], scans: &[String]) {
    use sqlparser::ast::{TableFactor, VisitMut, VisitorMut};

    struct InPlace<'a> {
        scans: &'a BTreeMap<String, (Query, Vec<String>)>,
    }
    impl VisitorMut for InPlace<'_> {
        type Break = ();
        fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, alias, .. } = factor
                && let [part] = name.0.as_slice()
                && let Some(step) = part.as_ident()
                && let Some((query, _)) = self.scans.get(&step.value)
            {
                let alias = alias
                    .as_ref()
                    .map_or_else(|| step.value.clone(), |a| a.name.value.clone());
                *factor = derived(query.clone(), &alias);
            }
            ControlFlow::Continue(())
        }
    }

    let scans: BTreeMap<String, (Query, Vec<String>)> = named
        .iter()
        .filter(|n| scans.contains(&n.name))
        .map(|n| (n.name.clone(), (n.query.clone(), n.deps.clone())))
        .collect();
    for n in named.iter_mut() {
        if scans.contains_key(&n.name) || !n.deps.iter().any(|d| scans.contains_key(d)) {
            continue;
        }
        let _ = n.query.visit(&mut InPlace { scans: &scans });
        let mut deps = Vec::new();
        for d in std::mem::take(&mut n.deps) {
            let own = match scans.get(&d) {
                Some((_, scan_deps)) => scan_deps.clone(),
                None => vec![d],
            };
            for dep in own {
                if !deps.contains(&dep) {
                    deps.push(dep);
                }
            }
        }
        n.deps = deps;
    }
}

fn step(kpi: &str, part: &str) -> String {
    format!("kpic_k_{kpi}_{part}")
}

fn rel(name: &str) -> String {
    format!("kpic_{name}")
}

enum Ty {
    Text,
    Date,
    Double,
    Bool,
    Timestamp,
}

const RESULT_COLUMNS: &[(&str, Ty)] = &[
    ("kpi", Ty::Text),
    ("label", Ty::Text),
    ("metric", Ty::Text),
    ("grain", Ty::Text),
    ("period", Ty::Text),
    ("period_start", Ty::Date),
    ("period_end", Ty::Date),
    ("is_complete", Ty::Bool),
    ("actual", Ty::Double),
    ("target", Ty::Double),
    ("attainment", Ty::Double),
    ("status", Ty::Text),
    ("projected", Ty::Double),
    ("previous", Ty::Double),
    ("change", Ty::Double),
    ("change_pct", Ty::Double),
    ("last_year", Ty::Double),
    ("yoy_change_pct", Ty::Double),
    ("numerator", Ty::Double),
    ("denominator", Ty::Double),
    ("direction", Ty::Text),
    ("indicator", Ty::Text),
    ("owner", Ty::Text),
];

const METRIC_COLUMNS: &[(&str, Ty)] = &[
    ("metric", Ty::Text),
    ("grain", Ty::Text),
    ("period", Ty::Text),
    ("period_start", Ty::Date),
    ("period_end", Ty::Date),
    ("value", Ty::Double),
];

const BREAKDOWN_COLUMNS: &[(&str, Ty)] = &[
    ("kpi", Ty::Text),
    ("period", Ty::Text),
    ("period_start", Ty::Date),
    ("dimension", Ty::Text),
    ("member", Ty::Text),
    ("actual", Ty::Double),
    ("previous", Ty::Double),
    ("change", Ty::Double),
    ("contribution", Ty::Double),
    ("share_of_change", Ty::Double),
    ("mix_effect", Ty::Double),
    ("rate_effect", Ty::Double),
];

const DRIVER_COLUMNS: &[(&str, Ty)] = &[
    ("kpi", Ty::Text),
    ("period", Ty::Text),
    ("period_start", Ty::Date),
    ("driver", Ty::Text),
    ("actual", Ty::Double),
    ("previous", Ty::Double),
    ("change_pct", Ty::Double),
    ("contribution", Ty::Double),
    ("share_of_change", Ty::Double),
    ("method", Ty::Text),
];

const DEFINITION_COLUMNS: &[(&str, Ty)] = &[
    ("kpi", Ty::Text),
    ("label", Ty::Text),
    ("description", Ty::Text),
    ("metric", Ty::Text),
    ("objective", Ty::Text),
    ("owner", Ty::Text),
    ("grain", Ty::Text),
    ("direction", Ty::Text),
    ("indicator", Ty::Text),
    ("tolerance", Ty::Double),
    ("format", Ty::Text),
    ("rationale", Ty::Text),
    ("measurement", Ty::Text),
    ("review", Ty::Text),
    ("action_plan", Ty::Text),
    ("related", Ty::Text),
    ("drivers", Ty::Text),
    ("breakdowns", Ty::Text),
    ("definition_hash", Ty::Text),
    ("computed_at", Ty::Timestamp),
];

fn data_type(t: &Ty) -> DataType {
    match t {
        Ty::Text => varchar(),
        Ty::Date => DataType::Date,
        Ty::Double => double(),
        Ty::Bool => DataType::Boolean,
        Ty::Timestamp => DataType::Timestamp(None, sqlparser::ast::TimezoneInfo::None),
    }
}

/// A typed empty table (no KPI selected).
fn empty(columns: &[(&str, Ty)]) -> Query {
    let mut s = select(
        columns
            .iter()
            .map(|(c, t)| item(cast(null(), data_type(t)), c))
            .collect(),
        vec![],
    );
    s.selection = Some(eq(int(1), int(0)));
    select_query(s)
}

fn text_or_null(v: Option<&str>) -> Expr {
    match v {
        Some(s) => string(s),
        None => cast(null(), varchar()),
    }
}

/// `sum(x)` or `count(…)` (not distinct) alone: its per-day totals add up
/// to any longer range's, NULL days aside (a sum over no rows).
fn single_sum_or_count(measure: &Expr) -> bool {
    match measure {
        Expr::Nested(e) => single_sum_or_count(e),
        Expr::Function(_) => crate::semantic::aggregates::is_additive(measure),
        _ => false,
    }
}

/// A comparison value in a KPI step: the whole comparison period's when the
/// row's period is complete, the like-for-like one otherwise (SPEC §7).
fn whole_or_like_for_like(whole: Expr, like_for_like: Expr) -> Expr {
    case(vec![(col("is_complete"), whole)], Some(like_for_like))
}

/// [`with_filter`] for a like-for-like twin: an aggregate over DISTINCT
/// values takes `cond` into its argument (`count(DISTINCT CASE WHEN cond
/// THEN x END)`, the same value, NULLs being ignored) instead of a FILTER:
/// DuckDB hashes every (group, value) pair of a filtered DISTINCT aggregate
/// before filtering, so a twin that reads two periods would cost as much
/// as the whole column; as a CASE the other rows hash to one NULL per group.
fn with_filter_in_distinct(measure: &Expr, cond: &Expr) -> Expr {
    use sqlparser::ast::{DuplicateTreatment, FunctionArg, FunctionArgExpr, FunctionArguments};
    let mut m = measure.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut m, |e| {
        if let Expr::Function(f) = e
            && crate::semantic::aggregates::is_aggregate_name(
                &crate::semantic::aggregates::function_name(f),
            )
        {
            let folded = match &mut f.args {
                FunctionArguments::List(l)
                    if l.duplicate_treatment == Some(DuplicateTreatment::Distinct) =>
                {
                    match l.args.as_mut_slice() {
                        [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] => {
                            *x = case(vec![(cond.clone(), x.clone())], None);
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            if !folded {
                f.filter = Some(Box::new(match f.filter.take() {
                    Some(existing) => and(*existing, cond.clone()),
                    None => cond.clone(),
                }));
            }
        }
        ControlFlow::<()>::Continue(())
    });
    m
}

/// Adds `cond` to the FILTER clause of every aggregate in `measure`.
fn with_filter(measure: &Expr, cond: Option<&Expr>) -> Expr {
    let mut m = measure.clone();
    let Some(cond) = cond else { return m };
    let _ = sqlparser::ast::visit_expressions_mut(&mut m, |e| {
        if let Expr::Function(f) = e
            && crate::semantic::aggregates::is_aggregate_name(
                &crate::semantic::aggregates::function_name(f),
            )
        {
            f.filter = Some(Box::new(match f.filter.take() {
                Some(existing) => and(*existing, cond.clone()),
                None => cond.clone(),
            }));
        }
        ControlFlow::<()>::Continue(())
    });
    m
}

impl Renderer<'_> {
    fn as_of(&self) -> Expr {
        match &self.plan.as_of {
            AsOfPlan::Date(d) => self.dialect.date_literal(*d),
            AsOfPlan::Today => self.dialect.current_date(),
            AsOfPlan::Latest(_) => subquery(select_query(select(
                vec![SelectItem::UnnamedExpr(col("as_of"))],
                vec![from(table(object(PARAMS), None), vec![])],
            ))),
        }
    }

    fn deps(&self, mut deps: Vec<String>) -> Vec<String> {
        deps.extend(self.as_of_deps.iter().cloned());
        deps
    }

    fn relation(&self, r: &ScanRelation, alias: &str) -> sqlparser::ast::TableFactor {
        match r {
            ScanRelation::File(path) => self.dialect.file_relation(path, alias),
            ScanRelation::Table(name) => table(name.clone(), Some(alias)),
            ScanRelation::Query(q) => derived((**q).clone(), alias),
        }
    }

    /// `as_of` = the latest day in any scanned source. The scans are
    /// materialized in this mode, so this reads no file twice.
    fn params(&self) -> Query {
        let parts: Vec<Query> = self
            .plan
            .scans
            .iter()
            .map(|s| {
                select_query(select(
                    vec![item(func("max", vec![col(DAY)]), "d")],
                    vec![from(table(object(&rel(&s.name)), None), vec![])],
                ))
            })
            .collect();
        let all = union(parts, false).unwrap_or_else(|| {
            select_query(select(
                vec![item(cast(null(), DataType::Date), "d")],
                vec![],
            ))
        });
        select_query(select(
            vec![item(func("max", vec![col("d")]), "as_of")],
            vec![from(derived(all, "days"), vec![])],
        ))
    }

    fn scan(&self, s: &ScanNode) -> NamedQuery {
        let day = self.dialect.to_date(s.time.clone());
        let mut projection = vec![item(day.clone(), DAY)];
        projection.extend(s.columns.iter().map(|(name, e)| item(e.clone(), name)));
        let joins = s
            .joins
            .iter()
            .map(|j| left_join(self.relation(&j.relation, &j.alias), j.on.clone()))
            .collect();
        let mut sel = select(
            projection,
            vec![from(self.relation(&s.relation, &s.source), joins)],
        );
        // With `as_of: latest` every row is on or before as_of, and as_of is
        // computed from the scans themselves.
        let latest = matches!(self.plan.as_of, AsOfPlan::Latest(_));
        if !latest {
            sel.selection = Some(lt_eq(day, self.as_of()));
        }
        let readers = self
            .plan
            .aggregates
            .iter()
            .filter(|a| a.scan == s.name)
            .count();
        NamedQuery {
            name: rel(&s.name),
            query: select_query(sel),
            deps: if latest { vec![] } else { self.deps(vec![]) },
            // Each source is parsed or computed once: a scan read by several
            // aggregates (or by the as_of computation) is materialized,
            // unless reading it again costs less than copying it.
            shared: (latest || readers > 1) && !self.cheap_to_read_again(s),
        }
    }

    /// Whether each reader of `s` should read its source itself rather than
    /// a materialized copy: a Parquet file, or a table of the DuckDB
    /// database, without joins. Each read then decodes only the columns it
    /// uses, where a copy writes every scanned column of every row first
    /// (at 10M orders the copy took as long as a distinct count per
    /// month). CSV and JSON are parsed again on every read, joins and
    /// queries computed again, so they stay materialized; so do tables on
    /// other engines, where statements of one build may see different
    /// snapshots of a table (read committed) but all read one copy.
    fn cheap_to_read_again(&self, s: &ScanNode) -> bool {
        s.joins.is_empty()
            && match &s.relation {
                ScanRelation::File(path) => path.to_ascii_lowercase().ends_with(".parquet"),
                ScanRelation::Table(_) => self.dialect.name() == "duckdb",
                ScanRelation::Query(_) => false,
            }
    }

    /// Days of the incomplete period so far: `as_of − period_start + 1`.
    fn elapsed(&self, grain: Grain) -> Expr {
        let as_of = self.as_of();
        add(
            self.dialect
                .day_diff(self.dialect.period_start(grain, as_of.clone()), as_of),
            int(1),
        )
    }

    /// Whether no like-for-like value of `grain` can be read at all: with
    /// a fixed `as_of` on the last day of its period, the current period
    /// is complete, so every comparison reads whole periods (SPEC §7) and
    /// the twins are NULL instead of a second aggregate. (With `latest`
    /// or `today` the engine decides, so the twins are computed.)
    fn like_for_like_unread(&self, grain: Grain) -> bool {
        match self.plan.as_of {
            AsOfPlan::Date(as_of) => as_of
                .succ_opt()
                .is_none_or(|next| crate::model::period::period_start(grain, next) == next),
            AsOfPlan::Today | AsOfPlan::Latest(_) => false,
        }
    }

    /// Whether a row of `period` (a period start of `grain`) can have its
    /// like-for-like value read: like-for-like values are read only by the
    /// incomplete period (the one of as_of), from the period before it and
    /// the one a year earlier (the ISO week of the previous ISO year for
    /// weeks), exactly as the KPI steps join them. `None` (every period)
    /// when a KPI reads periods through `offset()`, whose like-for-like
    /// values come from further back.
    ///
    /// Computing the like-for-like twin of a distinct count or a quantile
    /// for every period costs as much as the value itself; restricted to
    /// two periods it costs almost nothing.
    fn like_for_like_read(&self, grain: Grain, period: Expr) -> Option<Expr> {
        if self.plan.kpis.iter().any(|k| !k.offsets.is_empty()) {
            return None;
        }
        let d = self.dialect;
        let current = d.period_start(grain, self.as_of());
        let previous = eq(period.clone(), d.add_periods(grain, current.clone(), -1));
        let year_before = if grain == Grain::Week {
            and(
                eq(
                    d.iso_year(period.clone()),
                    sub(d.iso_year(current.clone()), int(1)),
                ),
                eq(d.iso_week(period), d.iso_week(current)),
            )
        } else {
            eq(period, d.add_periods(Grain::Year, current, -1))
        };
        Some(paren(binop(
            paren(previous),
            BinaryOperator::Or,
            paren(year_before),
        )))
    }

    fn aggregate(&self, a: &AggNode) -> Vec<NamedQuery> {
        match a.kind {
            AggKind::Period
                if a.by.len() > 1 && a.columns.iter().any(|c| is_holistic(&c.measure)) =>
            {
                self.period_aggregate_per_dimension(a)
            }
            AggKind::Period => vec![self.period_aggregate(a)],
            AggKind::Rolling(acc, daily) => self.rolling_aggregate(a, acc, daily),
        }
    }

    /// The columns of period aggregate `a` whose rows' period is `period`:
    /// each column's alias, its aggregate with every condition in FILTER
    /// clauses (as pre-grouping and roll-ups read them), and the aggregate
    /// a single GROUP BY computes, where a like-for-like twin's condition
    /// goes into a DISTINCT argument instead (`with_filter_in_distinct`).
    fn period_columns(&self, a: &AggNode, period: &Expr) -> Vec<(String, Expr, Expr)> {
        let d = self.dialect;
        let mut lfl = lt(d.day_diff(period.clone(), col(DAY)), self.elapsed(a.grain));
        if let Some(read) = self.like_for_like_read(a.grain, period.clone()) {
            lfl = and(read, lfl);
        }
        let mut columns: Vec<(String, Expr, Expr)> = Vec::new();
        for c in &a.columns {
            let value = with_filter(&c.measure, c.filter.as_ref());
            columns.push((c.name.clone(), value.clone(), value));
            if c.like_for_like {
                let cond = match &c.filter {
                    Some(f) => and(f.clone(), lfl.clone()),
                    None => lfl.clone(),
                };
                let twin = format!("{}__lfl", c.name);
                if self.like_for_like_unread(a.grain) {
                    columns.push((twin, null(), null()));
                } else {
                    columns.push((
                        twin,
                        with_filter(&c.measure, Some(&cond)),
                        with_filter_in_distinct(&c.measure, &cond),
                    ));
                }
            }
        }
        columns
    }

    /// The member aggregate that period aggregate `p` is rolled up from,
    /// with the partials it adds to that aggregate's columns: a member
    /// aggregate of the same scan and grain already reads every row once
    /// per period and member, so when `p`'s aggregates combine from
    /// partials (sums, counts, minima, maxima, averages; nothing
    /// DISTINCT) `p` sums one dimension's member rows instead of reading
    /// the rows again. Only when the member aggregate is one plain GROUP
    /// BY (not pre-grouped, not split per dimension) and `p` is the only
    /// period aggregate of its scan and grain.
    fn roll_up_source(&self, p: &AggNode) -> Option<RollUp> {
        let same =
            |a: &&AggNode| a.kind == AggKind::Period && a.scan == p.scan && a.grain == p.grain;
        if p.kind != AggKind::Period || !p.by.is_empty() {
            return None;
        }
        if self
            .plan
            .aggregates
            .iter()
            .filter(same)
            .filter(|a| a.by.is_empty())
            .count()
            > 1
        {
            return None;
        }
        let m = self
            .plan
            .aggregates
            .iter()
            .filter(same)
            .find(|a| !a.by.is_empty())?;
        if m.by.len() > 1 && m.columns.iter().any(|c| is_holistic(&c.measure)) {
            return None;
        }
        let double = self.dialect.double_type();
        let filtered = |a: &AggNode| -> Vec<Expr> {
            self.period_columns(a, &col(ROW_PERIOD))
                .into_iter()
                .map(|(_, f, _)| f)
                .collect()
        };
        if pregroup::pre_group(&filtered(m), &double).is_some() {
            return None;
        }
        Some(RollUp {
            source: rel(&m.name),
            dimension: m.by.first()?.key.clone(),
            partials: pregroup::roll_up(&filtered(p), &double)?,
        })
    }

    /// [`Self::period_aggregate`] of `p` from the member aggregate `m`
    /// ([`Self::roll_up_source`]): the rows of `m`'s first dimension,
    /// grouped by period, combining the partials.
    fn period_aggregate_rolled_up(&self, p: &AggNode, roll_up: &RollUp) -> NamedQuery {
        let d = self.dialect;
        let mut projection = vec![item(col("period_start"), "period_start")];
        for ((alias, _, _), column) in self
            .period_columns(p, &col(ROW_PERIOD))
            .iter()
            .zip(roll_up.partials.columns.iter().cloned())
        {
            projection.push(item(cast(column, d.double_type()), alias));
        }
        let mut sel = select(
            projection,
            vec![from(table(object(&roll_up.source), None), vec![])],
        );
        // Every row is in each dimension's member rows once (a NULL member
        // too): one dimension's rows hold the whole period.
        sel.selection = Some(eq(col(MEMBER_DIM), string(&roll_up.dimension)));
        sel.group_by = sqlparser::ast::GroupByExpr::Expressions(vec![col("period_start")], vec![]);
        NamedQuery {
            name: rel(&p.name),
            query: select_query(sel),
            deps: self.deps(vec![roll_up.source.clone()]),
            shared: true,
        }
    }

    fn period_aggregate(&self, a: &AggNode) -> NamedQuery {
        let d = self.dialect;
        let members = !a.by.is_empty();
        if let Some(roll_up) = self.roll_ups.get(&a.name) {
            return self.period_aggregate_rolled_up(a, roll_up);
        }
        // Plain sums and counts add up day by day: group the rows per day
        // first (one cheap key), and compute periods from the daily
        // totals, instead of truncating every row's date.
        if !members && a.columns.iter().all(|c| single_sum_or_count(&c.measure)) {
            return self.period_aggregate_by_day(a);
        }
        let period = if members {
            col(ROW_PERIOD)
        } else {
            d.period_start(a.grain, col(DAY))
        };
        let columns = self.period_columns(a, &period);
        // The partials of the period aggregate rolled up from this one.
        let rolled_up: Vec<SelectItem> = self
            .roll_ups
            .values()
            .filter(|r| r.source == rel(&a.name))
            .flat_map(|r| r.partials.partials.iter().cloned())
            .collect();
        let filtered: Vec<Expr> = columns.iter().map(|(_, f, _)| f.clone()).collect();
        let rows = if members {
            self.rows_with_members(a, Some(d.period_start(a.grain, col(DAY))), "g")
        } else {
            table(object(&rel(&a.scan)), None)
        };
        let keys = |extra: &[Expr]| {
            if members {
                grouping_sets_with(period.clone(), a.by.len(), extra)
            } else {
                let mut keys = vec![period.clone()];
                keys.extend(extra.iter().cloned());
                sqlparser::ast::GroupByExpr::Expressions(keys, vec![])
            }
        };
        let mut projection = vec![item(period.clone(), "period_start")];
        if members {
            projection.extend(member_items(&a.by));
        }
        let query = if let Some(pre) = pregroup::pre_group(&filtered, &d.double_type()) {
            // Grouped by (period, members, the distinct value), then by
            // (period, members): see `pregroup`.
            projection.push(item(pre.value.clone(), pregroup::DISTINCT_VALUE));
            projection.extend(pre.partials);
            let mut inner = select(projection, vec![from(rows, vec![])]);
            inner.group_by = keys(std::slice::from_ref(&pre.value));
            let mut outer_keys = vec![col("period_start")];
            if members {
                outer_keys.extend([col(MEMBER_DIM), col(MEMBER)]);
            }
            let mut outer_items: Vec<SelectItem> = outer_keys
                .iter()
                .map(|k| SelectItem::UnnamedExpr(k.clone()))
                .collect();
            for ((alias, _, _), column) in columns.iter().zip(pre.columns) {
                outer_items.push(item(cast(column, d.double_type()), alias));
            }
            let mut outer = select(
                outer_items,
                vec![from(derived(select_query(inner), "pre"), vec![])],
            );
            outer.group_by = sqlparser::ast::GroupByExpr::Expressions(outer_keys, vec![]);
            select_query(outer)
        } else {
            for (alias, _, single) in columns {
                projection.push(item(cast(single, d.double_type()), &alias));
            }
            projection.extend(rolled_up);
            let mut sel = select(projection, vec![from(rows, vec![])]);
            sel.group_by = keys(&[]);
            select_query(sel)
        };
        NamedQuery {
            name: rel(&a.name),
            query,
            deps: self.deps(vec![rel(&a.scan)]),
            shared: true,
        }
    }

    /// [`Self::period_aggregate`] of a member aggregate with a quantile or
    /// median, one step per breakdown dimension (`<name>__d<i>`), and the
    /// aggregate itself as their union.
    ///
    /// Grouping sets would feed every row to one holistic state per
    /// dimension in a single statement, and an engine keeps all of them in
    /// memory (they cannot spill): at 50M rows and three dimensions that
    /// is more than DuckDB's default 2 GB. As separate steps (each its own
    /// statement in `build.sql`) one dimension's values are held at a time.
    fn period_aggregate_per_dimension(&self, a: &AggNode) -> Vec<NamedQuery> {
        let mut steps: Vec<NamedQuery> =
            a.by.iter()
                .enumerate()
                .map(|(i, dim)| {
                    self.period_aggregate(&AggNode {
                        name: format!("{}__d{i}", a.name),
                        by: vec![dim.clone()],
                        ..a.clone()
                    })
                })
                .collect();
        let parts: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
        let every_part = parts
            .iter()
            .map(|p| {
                select_query(select(
                    vec![wildcard_of(p)],
                    vec![from(table(object(p), None), vec![])],
                ))
            })
            .collect();
        // `a.by` has two or more dimensions, so there are parts to unite.
        let Some(union_all) = union(every_part, false) else {
            return steps;
        };
        steps.push(NamedQuery {
            name: rel(&a.name),
            query: union_all,
            deps: parts,
            shared: true,
        });
        steps
    }

    /// [`Self::period_aggregate`] from daily totals (sums and counts only).
    fn period_aggregate_by_day(&self, a: &AggNode) -> NamedQuery {
        let d = self.dialect;
        let daily = self.daily_totals(a);
        let period = d.period_start(a.grain, col(DAY));
        let lfl = lt(d.day_diff(period.clone(), col(DAY)), self.elapsed(a.grain));
        let mut projection = vec![item(period.clone(), "period_start")];
        for c in &a.columns {
            projection.push(item(func("sum", vec![col(&c.name)]), &c.name));
            if c.like_for_like {
                let mut f = function("sum", vec![col(&c.name)]);
                f.filter = Some(Box::new(lfl.clone()));
                projection.push(item(Expr::Function(f), &format!("{}__lfl", c.name)));
            }
        }
        let mut sel = select(projection, vec![from(derived(daily, "days"), vec![])]);
        sel.group_by = sqlparser::ast::GroupByExpr::Expressions(vec![period], vec![]);
        NamedQuery {
            name: rel(&a.name),
            query: select_query(sel),
            deps: self.deps(vec![rel(&a.scan)]),
            shared: true,
        }
    }

    /// Each day's totals of `a`'s columns (sums and counts only), per
    /// member of each breakdown dimension when `a` has any.
    fn daily_totals(&self, a: &AggNode) -> Query {
        let members = !a.by.is_empty();
        let mut items = vec![item(col(DAY), DAY)];
        if members {
            items.extend(member_items(&a.by));
        }
        items.extend(a.columns.iter().map(|c| {
            item(
                cast(
                    with_filter(&c.measure, c.filter.as_ref()),
                    self.dialect.double_type(),
                ),
                &c.name,
            )
        }));
        let rows = if members {
            self.rows_with_members(a, None, "r")
        } else {
            table(object(&rel(&a.scan)), None)
        };
        let mut daily = select(items, vec![from(rows, vec![])]);
        daily.group_by = if members {
            grouping_sets(col(DAY), a.by.len())
        } else {
            sqlparser::ast::GroupByExpr::Expressions(vec![col(DAY)], vec![])
        };
        select_query(daily)
    }

    /// A rolling measure (`window`, `to_date`) per period. For
    /// `period_agg: last` (or `first`) each period's value is the range
    /// ending at the period's end (or after its first day); for `average`
    /// the value of every day is computed over a daily spine and averaged
    /// per period.
    fn rolling_aggregate(
        &self,
        a: &AggNode,
        acc: Accumulation,
        daily: PeriodAgg,
    ) -> Vec<NamedQuery> {
        if let Some(steps) = self.split_trailing_distinct(a, acc, daily) {
            return steps;
        }
        let d = self.dialect;
        let period_agg = format!(
            "agg_{}_{}",
            a.scan.trim_start_matches("scan_"),
            a.grain.as_str()
        );
        let source_agg = rel(&period_agg);
        let member_agg = format!("{period_agg}{MEMBER_SUFFIX}");
        let first = subquery(select_query(select(
            vec![SelectItem::UnnamedExpr(func(
                "min",
                vec![col("period_start")],
            ))],
            vec![from(table(object(&source_agg), None), vec![])],
        )));
        let step_grain = if daily == PeriodAgg::Average {
            Grain::Day
        } else {
            a.grain
        };
        let last = d.period_start(step_grain, self.as_of());
        let spine = d.date_spine(step_grain, first.clone(), last, "__kpic_ps");
        let ps = qcol("sp", "__kpic_ps");
        let as_of_next = d.add_days(self.as_of(), int(1));
        let (end, lfl_end) = match daily {
            PeriodAgg::Last => {
                let period_end = d.add_periods(a.grain, col("__kpic_ps"), 1);
                (
                    func("least", vec![period_end.clone(), as_of_next]),
                    func(
                        "least",
                        vec![
                            d.add_days(col("__kpic_ps"), self.elapsed(a.grain)),
                            period_end,
                        ],
                    ),
                )
            }
            // The first day's value, or a day's own value for averages.
            PeriodAgg::First | PeriodAgg::Average => {
                let next_day = func(
                    "least",
                    vec![d.add_days(col("__kpic_ps"), int(1)), as_of_next],
                );
                (next_day.clone(), next_day)
            }
        };
        let members = !a.by.is_empty();
        // A like-for-like range differs from the period's own only where
        // it can be read; elsewhere it is the same range.
        let lfl_end = match (daily, self.like_for_like_read(a.grain, col("__kpic_ps"))) {
            (PeriodAgg::Last, Some(read)) => case(vec![(read, lfl_end)], Some(end.clone())),
            _ => lfl_end,
        };
        let mut ends_items = vec![
            item(col("__kpic_ps"), "__kpic_ps"),
            item(end, "__kpic_end"),
            item(lfl_end, "__kpic_lfl_end"),
        ];
        let mut ends_joins = vec![];
        if members {
            // Every member on every day of the spine: a member's range may
            // hold rows on days the member has none itself.
            ends_items.push(item(qcol("m", MEMBER_DIM), MEMBER_DIM));
            ends_items.push(item(qcol("m", MEMBER), MEMBER));
            ends_joins.push(inner_join(
                derived(member_list(std::slice::from_ref(&member_agg)), "m"),
                eq(int(1), int(1)),
            ));
        }
        let ends = select_query(select(
            ends_items,
            vec![from(derived(spine, "s"), ends_joins)],
        ));
        let lower = |end: Expr| -> Option<Expr> {
            match acc {
                Accumulation::Window { days } => Some(d.add_days(end, neg(int(days as i64)))),
                Accumulation::ToDate(g) => Some(d.period_start(g, ps.clone())),
                Accumulation::All | Accumulation::None => None,
            }
        };
        let range = |end: Expr| -> Expr {
            let upper = lt(col(DAY), end.clone());
            match lower(end) {
                Some(lo) => and(gt_eq(col(DAY), lo), upper),
                None => upper,
            }
        };
        let averaged = daily == PeriodAgg::Average;
        // Sums and counts roll up from daily totals: one GROUP BY day over
        // the scan, then the ranges add days instead of joining every row
        // to every period whose range holds it.
        let by_day = a
            .columns
            .iter()
            .all(|c| crate::semantic::aggregates::is_additive(&c.measure));
        let scan_rows = |alias: &str| {
            if members {
                self.rows_with_members(a, None, alias)
            } else {
                table(object(&rel(&a.scan)), Some(alias))
            }
        };
        let rows = if by_day {
            derived(self.daily_totals(a), "s")
        } else if members {
            // One row per (row, dimension): joins then match the member by
            // equality (a hash join), not by a CASE over the dimension.
            self.rows_by_member(a, "s")
        } else {
            scan_rows("s")
        };
        // Distinct counts over trailing ranges count each value through its
        // last occurrence instead of joining every row to every range.
        let trailing = if by_day {
            None
        } else {
            trailing::distinct_columns(a, acc)
        };
        let (mut steps, mut query) = if let Some(columns) = trailing {
            let ends = trailing::Ends {
                query: ends,
                first,
                member_agg: members.then(|| member_agg.clone()),
                like_for_like: !averaged,
            };
            self.trailing_distinct_counts(a, acc, &columns, ends)
        } else {
            let mut projection = vec![item(ps.clone(), "period_start")];
            let mut group_keys = vec![ps.clone()];
            if members {
                projection.push(item(qcol("sp", MEMBER_DIM), MEMBER_DIM));
                projection.push(item(qcol("sp", MEMBER), MEMBER));
                group_keys.extend([qcol("sp", MEMBER_DIM), qcol("sp", MEMBER)]);
            }
            for c in &a.columns {
                for (suffix, end) in [
                    ("", qcol("sp", "__kpic_end")),
                    ("__lfl", qcol("sp", "__kpic_lfl_end")),
                ] {
                    // Averages take their like-for-like variant from the days.
                    if suffix == "__lfl" && (!c.like_for_like || averaged) {
                        continue;
                    }
                    if suffix == "__lfl" && self.like_for_like_unread(a.grain) {
                        projection.push(item(
                            cast(null(), d.double_type()),
                            &format!("{}{suffix}", c.name),
                        ));
                        continue;
                    }
                    let mut value = if by_day {
                        let mut total = function("sum", vec![qcol("s", &c.name)]);
                        total.filter = Some(Box::new(range(end)));
                        Expr::Function(total)
                    } else {
                        let cond = match &c.filter {
                            Some(f) => and(f.clone(), range(end)),
                            None => range(end),
                        };
                        cast(with_filter(&c.measure, Some(&cond)), d.double_type())
                    };
                    if averaged && let Some(fill) = c.fill {
                        // A day whose range is empty counts as `fill`, not as absent.
                        value = func("coalesce", vec![value, num(fill)]);
                    }
                    projection.push(item(value, &format!("{}{suffix}", c.name)));
                }
            }
            let mut on = lt(col(DAY), qcol("sp", "__kpic_end"));
            if let Some(lo) = lower(qcol("sp", "__kpic_lfl_end")) {
                on = and(gt_eq(col(DAY), lo), on);
            }
            if members {
                on = and(
                    on,
                    and(
                        eq(qcol("s", MEMBER_DIM), qcol("sp", MEMBER_DIM)),
                        d.null_safe_eq(qcol("s", MEMBER), qcol("sp", MEMBER)),
                    ),
                );
            }
            // Averages need every day, also those whose range has no rows.
            let join = if averaged {
                left_join(rows, on)
            } else {
                inner_join(rows, on)
            };
            let mut sel = select(projection, vec![from(derived(ends, "sp"), vec![join])]);
            sel.group_by = sqlparser::ast::GroupByExpr::Expressions(group_keys, vec![]);
            (vec![], select_query(sel))
        };
        if averaged {
            let day = col("period_start");
            let period = d.period_start(a.grain, day.clone());
            let mut so_far = lt(d.day_diff(period.clone(), day), self.elapsed(a.grain));
            if let Some(read) = self.like_for_like_read(a.grain, period.clone()) {
                so_far = and(read, so_far);
            }
            let mut projection = vec![item(period.clone(), "period_start")];
            let mut keys = vec![period];
            if members {
                projection.push(item(col(MEMBER_DIM), MEMBER_DIM));
                projection.push(item(col(MEMBER), MEMBER));
                keys.extend([col(MEMBER_DIM), col(MEMBER)]);
            }
            for c in &a.columns {
                projection.push(item(func("avg", vec![col(&c.name)]), &c.name));
                if c.like_for_like {
                    let mut f = function("avg", vec![col(&c.name)]);
                    f.filter = Some(Box::new(so_far.clone()));
                    projection.push(item(Expr::Function(f), &format!("{}__lfl", c.name)));
                }
            }
            let mut outer = select(projection, vec![from(derived(query, "days"), vec![])]);
            outer.group_by = sqlparser::ast::GroupByExpr::Expressions(keys, vec![]);
            query = select_query(outer);
        }
        let mut deps = vec![rel(&a.scan), source_agg];
        if members {
            deps.push(rel(&member_agg));
        }
        deps.extend(steps.iter().map(|s| s.name.clone()));
        steps.push(NamedQuery {
            name: rel(&a.name),
            query,
            deps: self.deps(deps),
            shared: true,
        });
        steps
    }

    /// A rolling node mixing distinct counts with other measures: the
    /// distinct counts as a node of their own (the trailing form, see
    /// `trailing.rs`), the others as another (daily totals when additive),
    /// joined on the period (and member). Together they would all take the
    /// general form, joining every row to every range. `None` when the node
    /// is not mixed (or averages daily values).
    fn split_trailing_distinct(
        &self,
        a: &AggNode,
        acc: Accumulation,
        daily: PeriodAgg,
    ) -> Option<Vec<NamedQuery>> {
        if daily == PeriodAgg::Average || trailing::distinct_columns(a, acc).is_some() {
            return None;
        }
        let (distinct, other): (Vec<_>, Vec<_>) = a.columns.iter().cloned().partition(|c| {
            crate::semantic::aggregates::distinct_count_argument(&c.measure).is_some()
        });
        if distinct.is_empty() || other.is_empty() {
            return None;
        }
        let part = |suffix: &str, columns| AggNode {
            name: format!("{}__{suffix}", a.name),
            columns,
            ..a.clone()
        };
        let (t, g) = (part("t", distinct), part("g", other));
        trailing::distinct_columns(&t, acc)?;
        let mut steps = self.rolling_aggregate(&t, acc, daily);
        steps.extend(self.rolling_aggregate(&g, acc, daily));
        // The trailing part has a row for every period (and member); the
        // other may lack the periods whose range holds no rows.
        let mut items = vec![wildcard_of("t")];
        for c in &g.columns {
            items.push(item(qcol("g", &c.name), &c.name));
            if c.like_for_like {
                let lfl = format!("{}__lfl", c.name);
                items.push(item(qcol("g", &lfl), &lfl));
            }
        }
        let mut on = eq(qcol("g", "period_start"), qcol("t", "period_start"));
        if !a.by.is_empty() {
            on = and(
                on,
                and(
                    eq(qcol("g", MEMBER_DIM), qcol("t", MEMBER_DIM)),
                    self.dialect
                        .null_safe_eq(qcol("g", MEMBER), qcol("t", MEMBER)),
                ),
            );
        }
        steps.push(NamedQuery {
            name: rel(&a.name),
            query: select_query(select(
                items,
                vec![from(
                    table(object(&rel(&t.name)), Some("t")),
                    vec![left_join(table(object(&rel(&g.name)), Some("g")), on)],
                )],
            )),
            deps: vec![rel(&t.name), rel(&g.name)],
            shared: true,
        });
        Some(steps)
    }

    fn formula<'k>(&self, k: &'k KpiNode, metric: &str) -> Option<&'k Formula> {
        k.formulas.iter().find(|(m, _)| m == metric).map(|(_, f)| f)
    }

    /// A metric's value in one variant, as an expression over the columns
    /// of the KPI's steps. Variant `p` is the projection.
    fn value(&self, k: &KpiNode, metric: &str, variant: &str) -> Expr {
        self.shifted_value(k, metric, variant, "")
    }

    /// [`Self::value`] of the period `prefix` names (`o<i>__`: the i-th
    /// offset of the KPI; "" for the row's own period).
    fn shifted_value(&self, k: &KpiNode, metric: &str, variant: &str, prefix: &str) -> Expr {
        match self.formula(k, metric) {
            Some(Formula::Leaf { additive, .. }) => {
                if variant == "p" {
                    let v = col(&format!("v__{prefix}{metric}"));
                    // An offset period lies in the past: it is complete.
                    if *additive && prefix.is_empty() {
                        return case(
                            vec![(col("is_complete"), v.clone())],
                            Some(safe_div(
                                mul(v, cast(col("__kpic_days"), double())),
                                cast(col("__kpic_elapsed"), double()),
                            )),
                        );
                    }
                    return v;
                }
                col(&format!("{variant}__{prefix}{metric}"))
            }
            Some(Formula::Derived(expr)) => {
                let mut e = expr.clone();
                // offset(m, N unit) first becomes a placeholder naming the
                // shifted metric, so the substitution below sees one name.
                let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
                    if let Expr::Function(f) = x
                        && crate::semantic::aggregates::function_name(f) == "offset"
                    {
                        *x = match crate::semantic::expr::parse_offset(f) {
                            Ok(o) => match k.offsets.iter().position(|s| *s == (o.unit, o.n)) {
                                Some(i) if prefix.is_empty() => {
                                    col(&format!("{OFFSET_MARK}{i}__{}", o.metric))
                                }
                                _ => cast(null(), double()),
                            },
                            Err(_) => cast(null(), double()),
                        };
                    }
                    ControlFlow::<()>::Continue(())
                });
                let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
                    match x {
                        Expr::Identifier(i) => {
                            *x = paren(match i.value.strip_prefix(OFFSET_MARK) {
                                Some(rest) => {
                                    let (index, name) = rest.split_once("__").unwrap_or(("", rest));
                                    self.shifted_value(k, name, variant, &format!("o{index}__"))
                                }
                                None => self.shifted_value(k, &i.value, variant, prefix),
                            });
                        }
                        Expr::BinaryOp {
                            left,
                            op: BinaryOperator::Divide,
                            right,
                        } => {
                            let (l, r) = ((**left).clone(), (**right).clone());
                            *x = safe_div(l, r);
                        }
                        _ => {}
                    }
                    ControlFlow::<()>::Continue(())
                });
                paren(e)
            }
            None => cast(null(), double()),
        }
    }

    /// The steps of one KPI: spine, base, offsets, comparisons and (for the
    /// KPI itself) values. With `members`, the same steps per member of
    /// each breakdown dimension (`kpic_kb_<kpi>_*`): the spine is crossed
    /// with the members, aggregates are the member twins, and every join
    /// and window also matches the member.
    fn kpi_steps(&self, k: &KpiNode, members: Option<&BreakdownPlan>) -> Vec<NamedQuery> {
        let d = self.dialect;
        let step = |part: &str| match members {
            Some(_) => format!("kpic_kb_{}_{part}", k.name),
            None => step(&k.name, part),
        };
        let range_aggs: &[String] = match members {
            Some(m) => &m.member_aggs,
            None => &k.range_aggs,
        };
        // Rows of member steps are (period, dimension, member); joins of
        // two such relations match all three.
        let same_member = |a: &str, b: &str| -> Option<Expr> {
            members.map(|_| {
                and(
                    eq(qcol(a, MEMBER_DIM), qcol(b, MEMBER_DIM)),
                    d.null_safe_eq(qcol(a, MEMBER), qcol(b, MEMBER)),
                )
            })
        };
        let with_member = |on: Expr, a: &str, b: &str| match same_member(a, b) {
            Some(m) => and(on, m),
            None => on,
        };
        // Spine: every period from the first with data to the one of as_of.
        let starts = union(
            range_aggs
                .iter()
                .map(|a| {
                    select_query(select(
                        vec![SelectItem::UnnamedExpr(col("period_start"))],
                        vec![from(table(object(&rel(a)), None), vec![])],
                    ))
                })
                .collect(),
            false,
        );
        let first = match starts {
            Some(q) => subquery(select_query(select(
                vec![SelectItem::UnnamedExpr(func(
                    "min",
                    vec![col("period_start")],
                ))],
                vec![from(derived(q, "starts"), vec![])],
            ))),
            None => cast(null(), DataType::Date),
        };
        let mut spine = d.date_spine(
            k.grain,
            first,
            d.period_start(k.grain, self.as_of()),
            "period_start",
        );
        if let Some(m) = members {
            spine = self.member_spine(spine, m);
        }
        let spine_name = step("spine");

        // Base: the spine with every leaf column of every aggregate.
        let mut aliases: BTreeMap<&str, String> = BTreeMap::new();
        let (formulas, ratio) = match members {
            Some(m) => (&m.formulas, &m.ratio),
            None => (&k.formulas, &k.ratio),
        };
        let mut leaves: Vec<(String, &Formula)> =
            formulas.iter().map(|(m, f)| (m.clone(), f)).collect();
        if let Some((n, den)) = ratio {
            leaves.push((RATIO_NUM.into(), n));
            leaves.push((RATIO_DEN.into(), den));
        }
        if let Some(m) = members {
            for (i, p) in m.presence.iter().enumerate() {
                leaves.push((format!("{PRESENCE}{i}"), p));
            }
        }
        let mut projection = vec![
            item(qcol("sp", "period_start"), "period_start"),
            item(
                d.add_periods(k.grain, qcol("sp", "period_start"), 1),
                "period_end",
            ),
            item(
                lt_eq(
                    d.add_periods(k.grain, qcol("sp", "period_start"), 1),
                    d.add_days(self.as_of(), int(1)),
                ),
                "is_complete",
            ),
            item(
                d.day_diff(
                    qcol("sp", "period_start"),
                    d.add_periods(k.grain, qcol("sp", "period_start"), 1),
                ),
                "__kpic_days",
            ),
            item(
                add(d.day_diff(qcol("sp", "period_start"), self.as_of()), int(1)),
                "__kpic_elapsed",
            ),
        ];
        if k.grain == Grain::Week {
            projection.push(item(d.iso_year(qcol("sp", "period_start")), "__kpic_iy"));
            projection.push(item(d.iso_week(qcol("sp", "period_start")), "__kpic_iw"));
        }
        if members.is_some() {
            projection.push(item(qcol("sp", MEMBER_DIM), MEMBER_DIM));
            projection.push(item(qcol("sp", MEMBER), MEMBER));
        }
        let mut joins = Vec::new();
        let mut deps = vec![spine_name.clone()];
        for (metric, f) in &leaves {
            let Formula::Leaf {
                agg,
                column,
                unfiltered,
                fill,
                ..
            } = f
            else {
                continue;
            };
            let alias = match aliases.get(agg.as_str()) {
                Some(a) => a.clone(),
                None => {
                    let a = format!("a{}", aliases.len());
                    aliases.insert(agg, a.clone());
                    joins.push(left_join(
                        table(object(&rel(agg)), Some(&a)),
                        with_member(
                            eq(qcol(&a, "period_start"), qcol("sp", "period_start")),
                            &a,
                            "sp",
                        ),
                    ));
                    deps.push(rel(agg));
                    a
                }
            };
            let filled = |c: &str| -> Expr {
                let e = qcol(&alias, c);
                match fill {
                    Some(v) => func("coalesce", vec![e, num(*v)]),
                    None => e,
                }
            };
            projection.push(item(filled(column), &format!("v__{metric}")));
            projection.push(item(
                filled(&format!("{column}__lfl")),
                &format!("l__{metric}"),
            ));
            projection.push(item(filled(unfiltered), &format!("u__{metric}")));
        }
        let base = select(
            projection,
            vec![from(table(object(&spine_name), Some("sp")), joins)],
        );
        let base_name = step("base");

        // Offsets: each `offset(…, N unit)` joins the base to itself, N
        // units earlier; its leaf values become columns `<v>__o<i>__<leaf>`.
        // Every column read from an aggregate: the formulas' leaves, ratio
        // parts and member row counts all get comparison variants.
        let real_leaves: Vec<&str> = leaves
            .iter()
            .filter(|(_, f)| matches!(f, Formula::Leaf { .. }))
            .map(|(m, _)| m.as_str())
            .collect();
        let mut leaves: Vec<String> = real_leaves.iter().map(|m| m.to_string()).collect();
        let mut steps_before_cmp = Vec::new();
        let compared = if k.offsets.is_empty() {
            base_name.clone()
        } else {
            let mut projection = vec![wildcard_of("b")];
            let mut joins = Vec::new();
            for (i, (unit, n)) in k.offsets.iter().enumerate() {
                let alias = format!("o{i}");
                for m in &real_leaves {
                    for v in ["v", "l", "u"] {
                        projection.push(item(
                            qcol(&alias, &format!("{v}__{m}")),
                            &format!("{v}__o{i}__{m}"),
                        ));
                    }
                    leaves.push(format!("o{i}__{m}"));
                }
                joins.push(left_join(
                    table(object(&base_name), Some(&alias)),
                    with_member(self.earlier(k.grain, *unit, *n, "b", &alias), "b", &alias),
                ));
            }
            let off_name = step("off");
            steps_before_cmp.push(NamedQuery {
                name: off_name.clone(),
                query: select_query(select(
                    projection,
                    vec![from(table(object(&base_name), Some("b")), joins)],
                )),
                deps: vec![base_name.clone()],
                shared: false,
            });
            off_name
        };

        // Comparisons: previous period (LAG over the gap-free spine) and
        // the same period a year earlier (ISO week W of the previous ISO year).
        let mut projection = vec![wildcard_of("b")];
        let partition: Vec<Expr> = match members {
            Some(_) => vec![qcol("b", MEMBER_DIM), qcol("b", MEMBER)],
            None => vec![],
        };
        for metric in &leaves {
            for (from_v, to) in [("v", "pv"), ("l", "pl")] {
                projection.push(item(
                    lag(
                        qcol("b", &format!("{from_v}__{metric}")),
                        partition.clone(),
                        qcol("b", "period_start"),
                    ),
                    &format!("{to}__{metric}"),
                ));
            }
            for (from_v, to) in [("v", "yv"), ("l", "yl")] {
                projection.push(item(
                    qcol("ly", &format!("{from_v}__{metric}")),
                    &format!("{to}__{metric}"),
                ));
            }
        }
        let ly_on = with_member(self.earlier(k.grain, Grain::Year, 1, "b", "ly"), "b", "ly");
        let cmp = select(
            projection,
            vec![from(
                table(object(&compared), Some("b")),
                vec![left_join(table(object(&compared), Some("ly")), ly_on)],
            )],
        );
        let cmp_name = step("cmp");
        let mut steps = vec![
            NamedQuery {
                name: spine_name.clone(),
                query: spine,
                deps: self.deps(range_aggs.iter().map(|a| rel(a)).collect()),
                shared: false,
            },
            NamedQuery {
                name: base_name.clone(),
                query: select_query(base),
                deps: self.deps(deps),
                shared: false,
            },
        ];
        steps.extend(steps_before_cmp);
        steps.push(NamedQuery {
            name: cmp_name.clone(),
            query: select_query(cmp),
            deps: vec![compared],
            shared: false,
        });
        if members.is_some() {
            return steps;
        }

        // Values of the KPI's metric in every variant, and its target.
        let m = k.metric.as_str();
        let complete = col("is_complete");
        let actual = self.value(k, m, "v");
        let prev_full = self.value(k, m, "pv");
        let ly_full = self.value(k, m, "yv");
        let pick = whole_or_like_for_like;
        let target = match &k.target {
            None => cast(null(), double()),
            Some(TargetPlan::Absolute(v)) => cast(num(*v), double()),
            Some(TargetPlan::Change { change, vs }) => {
                let base = match vs {
                    crate::model::Compare::Previous => prev_full.clone(),
                    crate::model::Compare::LastYear => ly_full.clone(),
                };
                mul(base, num(1.0 + change))
            }
            Some(TargetPlan::Values(vs)) => case(
                vs.iter()
                    .map(|(start, v)| {
                        (
                            eq(col("period_start"), d.date_literal(*start)),
                            cast(num(*v), double()),
                        )
                    })
                    .collect(),
                Some(cast(null(), double())),
            ),
        };
        let ratio_part = |variant: &str, part: &str| match &k.ratio {
            Some(_) => col(&format!("{variant}__{part}")),
            None => cast(null(), double()),
        };
        let numerator = ratio_part("v", RATIO_NUM);
        let denominator = ratio_part("v", RATIO_DEN);
        // The baseline's parts, for the mix/rate split of kpi_breakdowns.
        let previous_numerator = pick(ratio_part("pv", RATIO_NUM), ratio_part("pl", RATIO_NUM));
        let previous_denominator = pick(ratio_part("pv", RATIO_DEN), ratio_part("pl", RATIO_DEN));
        let vals = select(
            vec![
                item(col("period_start"), "period_start"),
                item(col("period_end"), "period_end"),
                item(complete.clone(), "is_complete"),
                item(actual, "actual"),
                item(self.value(k, m, "p"), "projected"),
                item(pick(prev_full, self.value(k, m, "pl")), "previous"),
                item(pick(ly_full, self.value(k, m, "yl")), "last_year"),
                item(target, "target"),
                item(numerator, "numerator"),
                item(denominator, "denominator"),
                item(previous_numerator, PREVIOUS_NUMERATOR),
                item(previous_denominator, PREVIOUS_DENOMINATOR),
            ],
            vec![from(table(object(&cmp_name), None), vec![])],
        );
        steps.push(NamedQuery {
            name: step("vals"),
            query: select_query(vals),
            deps: vec![cmp_name],
            shared: false,
        });
        steps
    }

    /// Join condition: relation `earlier` holds the period `n` `unit`s
    /// before `row`'s. A year before an ISO week is week W of ISO year − 1.
    fn earlier(&self, grain: Grain, unit: Grain, n: u32, row: &str, earlier: &str) -> Expr {
        if grain == Grain::Week && unit == Grain::Year {
            return and(
                eq(
                    qcol(earlier, "__kpic_iy"),
                    sub(qcol(row, "__kpic_iy"), int(n as i64)),
                ),
                eq(qcol(earlier, "__kpic_iw"), qcol(row, "__kpic_iw")),
            );
        }
        eq(
            qcol(earlier, "period_start"),
            self.dialect
                .add_periods(unit, qcol(row, "period_start"), -(n as i64)),
        )
    }

    fn kpi_result(&self, k: &KpiNode) -> Query {
        let d = self.dialect;
        let actual = col("actual");
        let target = col("target");
        let projected = col("projected");
        let tol = k.tolerance;
        let (on_track, at_risk) = match k.direction {
            Direction::HigherIsBetter => (
                gt_eq(projected.clone(), target.clone()),
                gt_eq(projected.clone(), mul(target.clone(), num(1.0 - tol))),
            ),
            Direction::LowerIsBetter => (
                lt_eq(projected.clone(), target.clone()),
                lt_eq(projected.clone(), mul(target.clone(), num(1.0 + tol))),
            ),
        };
        let status = case(
            vec![
                (is_null(target.clone()), string("no_target")),
                (is_null(projected.clone()), string("no_data")),
                (on_track, string("on_track")),
                (at_risk, string("at_risk")),
            ],
            Some(string("off_track")),
        );
        let change = sub(actual.clone(), col("previous"));
        let yoy = sub(actual.clone(), col("last_year"));
        let s = select(
            vec![
                item(string(&k.name), "kpi"),
                item(text_or_null(k.label.as_deref()), "label"),
                item(string(&k.metric), "metric"),
                item(string(k.grain.as_str()), "grain"),
                item(d.period_label(k.grain, col("period_start")), "period"),
                item(col("period_start"), "period_start"),
                item(col("period_end"), "period_end"),
                item(col("is_complete"), "is_complete"),
                item(actual.clone(), "actual"),
                item(target.clone(), "target"),
                item(safe_div(actual.clone(), target), "attainment"),
                item(status, "status"),
                item(projected, "projected"),
                item(col("previous"), "previous"),
                item(change.clone(), "change"),
                item(safe_div(change, col("previous")), "change_pct"),
                item(col("last_year"), "last_year"),
                item(safe_div(yoy, col("last_year")), "yoy_change_pct"),
                item(col("numerator"), "numerator"),
                item(col("denominator"), "denominator"),
                item(string(k.direction.as_str()), "direction"),
                item(text_or_null(k.indicator.map(|i| i.as_str())), "indicator"),
                item(text_or_null(k.owner.as_deref()), "owner"),
            ],
            vec![from(table(object(&step(&k.name, "vals")), None), vec![])],
        );
        select_query(s)
    }

    /// kpi_metrics rows of one KPI: unfiltered values of every metric it uses.
    fn kpi_metric_rows(&self, k: &KpiNode) -> Vec<Query> {
        let d = self.dialect;
        k.metric_outputs
            .iter()
            .map(|m| {
                select_query(select(
                    vec![
                        item(string(m), "metric"),
                        item(string(k.grain.as_str()), "grain"),
                        item(d.period_label(k.grain, col("period_start")), "period"),
                        item(col("period_start"), "period_start"),
                        item(col("period_end"), "period_end"),
                        item(self.value(k, m, "u"), "value"),
                    ],
                    vec![from(table(object(&step(&k.name, "cmp")), None), vec![])],
                ))
            })
            .collect()
    }

    fn definition(&self, k: &KpiNode, hashes: &[(String, String)]) -> Option<Query> {
        let project = &self.model.project;
        let def = project.kpi(&k.name)?;
        let metric = project.metric(&k.metric)?;
        let info = self.model.kpis.get(&k.name)?;
        let list = |items: Vec<String>| -> Expr {
            if items.is_empty() {
                cast(null(), varchar())
            } else {
                string(&items.join(", "))
            }
        };
        let hash = hashes
            .iter()
            .find(|(n, _)| *n == k.name)
            .map(|(_, h)| h.as_str());
        Some(select_query(select(
            vec![
                item(string(&k.name), "kpi"),
                item(text_or_null(def.label.as_deref()), "label"),
                item(text_or_null(def.description.as_deref()), "description"),
                item(string(&k.metric), "metric"),
                item(text_or_null(def.objective.as_deref()), "objective"),
                item(text_or_null(k.owner.as_deref()), "owner"),
                item(string(k.grain.as_str()), "grain"),
                item(string(k.direction.as_str()), "direction"),
                item(text_or_null(k.indicator.map(|i| i.as_str())), "indicator"),
                item(cast(num(k.tolerance), double()), "tolerance"),
                item(string(metric.format.as_str()), "format"),
                item(text_or_null(def.rationale.as_deref()), "rationale"),
                item(text_or_null(def.measurement.as_deref()), "measurement"),
                item(text_or_null(def.review.as_deref()), "review"),
                item(text_or_null(def.action_plan.as_deref()), "action_plan"),
                item(
                    list(def.related.iter().map(|r| r.value.clone()).collect()),
                    "related",
                ),
                item(list(info.drivers.clone()), "drivers"),
                item(
                    list(def.breakdowns.iter().map(|b| b.value.clone()).collect()),
                    "breakdowns",
                ),
                item(text_or_null(hash), "definition_hash"),
                item(
                    cast(self.dialect.current_timestamp(), data_type(&Ty::Timestamp)),
                    "computed_at",
                ),
            ],
            vec![],
        )))
    }

    /// Returns one key of the joined relation that appears twice, if any.
    fn fanout_query(&self, c: &crate::plan::FanoutCheck) -> Query {
        let keys: Vec<Expr> = c.keys.iter().map(|k| qcol("j", k)).collect();
        let mut s = select(
            keys.iter()
                .enumerate()
                .map(|(i, k)| item(cast(k.clone(), varchar()), &format!("k{i}")))
                .collect(),
            vec![from(self.relation(&c.relation, "j"), vec![])],
        );
        s.selection = and_all(
            keys.iter()
                .map(|k| Expr::IsNotNull(Box::new(k.clone())))
                .collect(),
        );
        s.group_by = sqlparser::ast::GroupByExpr::Expressions(keys, vec![]);
        s.having = Some(binop(count_star(), BinaryOperator::Gt, int(1)));
        let mut q = select_query(s);
        q.limit_clause = Some(sqlparser::ast::LimitClause::LimitOffset {
            limit: Some(int(1)),
            offset: None,
            limit_by: vec![],
        });
        q
    }
}
