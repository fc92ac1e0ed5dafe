//! Plan: the semantic model → a dialect-free [`Plan`] of what to compute.
//!
//! The plan says which sources to scan (one [`ScanNode`] per source, with
//! its many-to-one joins and the columns its measures need), which
//! aggregates to compute over each scan (one [`AggNode`] per source and
//! grain: every measure of every metric and KPI filter becomes one
//! conditional aggregate column of that single scan; one more per rolling
//! window kind), and for each KPI how its values, comparisons, target and
//! status follow from those columns ([`KpiNode`]). Expressions are
//! sqlparser ASTs over scan columns; nothing here knows about dialects.
//!
//! In: [`SemanticModel`] + [`PlanOptions`]. Out: [`Plan`], or KPI3xx
//! diagnostics.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use chrono::NaiveDate;
use sqlparser::ast::{BinaryOperator, Expr, ObjectName};

use crate::diagnostics::{Code, Diagnostic, Diagnostics};
use crate::model::{
    Accumulation, AsOf, Compare, Direction, Grain, Indicator, JoinOn, Kpi, MetricKind, Relation,
    Source, Target,
};
use crate::semantic::{ColumnRef, Ratio, Scope, SemanticModel};

mod breakdowns;
mod drivers;
pub mod explain;

pub use breakdowns::MEMBER_SUFFIX;

/// What a plan is for.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Overrides the project's `as_of`.
    pub as_of: Option<AsOf>,
    /// KPI names to plan (all when empty).
    pub select: Vec<String>,
    /// Whether `path` sources are read as local files (DuckDB) or their
    /// `table` is used (other engines).
    pub local_files: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AsOfPlan {
    Date(NaiveDate),
    /// `current_date` in the engine.
    Today,
    /// The latest time value of these scans, decided in the engine.
    Latest(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum ScanRelation {
    /// A local file (or glob), read by the engine's file reader.
    File(String),
    Table(ObjectName),
    Query(Box<sqlparser::ast::Query>),
}

#[derive(Debug, Clone)]
pub struct ScanJoin {
    /// Alias of the joined relation (the joined source's name).
    pub alias: String,
    pub relation: ScanRelation,
    /// Condition over `<base>.<col>` and `<alias>.<col>`.
    pub on: Expr,
}

/// One read of a source: its rows up to `as_of`, with the day of each row
/// (`__kpic_day`) and the columns measures need, named as in
/// [`ColumnRef::alias`].
#[derive(Debug, Clone)]
pub struct ScanNode {
    pub name: String,
    pub source: String,
    pub relation: ScanRelation,
    pub joins: Vec<ScanJoin>,
    /// The time expression over qualified columns (`orders.ordered_at`).
    pub time: Expr,
    /// (scan column name, expression over qualified columns)
    pub columns: Vec<(String, Expr)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// Grouped by the period each row falls in.
    Period,
    /// Per period of a spine, over a rolling range of rows.
    Rolling(Accumulation, crate::model::PeriodAgg),
}

/// One aggregate column: an aggregate expression over scan columns, with
/// the row filter that becomes its FILTER clause.
#[derive(Debug, Clone)]
pub struct AggColumn {
    pub name: String,
    pub measure: Expr,
    pub filter: Option<Expr>,
    /// Also compute the like-for-like variant (`<name>__lfl`): the same
    /// aggregate over the period's first `elapsed_days` days (or, for
    /// rolling aggregates, the range ending there).
    pub like_for_like: bool,
    /// Value of an empty range (0 for sums and counts, or `fill_null`).
    pub fill: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct AggNode {
    pub name: String,
    pub scan: String,
    pub grain: Grain,
    pub kind: AggKind,
    pub columns: Vec<AggColumn>,
    /// Breakdown dimensions: when not empty, the node is grouped by period
    /// and by each dimension's members in turn (one grouping set per
    /// dimension), for `kpi_breakdowns`.
    pub by: Vec<MemberDim>,
}

/// A breakdown dimension of a member aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberDim {
    /// The dimension as KPIs write it in `breakdowns` (`plan`,
    /// `customers.plan`): also its key in member rows.
    pub key: String,
    /// Its expression over scan columns.
    pub expr: Expr,
}

/// How one metric's value is obtained inside a KPI.
#[derive(Debug, Clone)]
pub enum Formula {
    /// A measure: a column of an aggregate node.
    Leaf {
        agg: String,
        /// Column with the KPI's filter applied.
        column: String,
        /// Column without it (for kpi_metrics).
        unfiltered: String,
        /// Value of an empty period (0 for sum/count, `fill_null`).
        fill: Option<f64>,
        additive: bool,
    },
    /// Arithmetic over other metrics (identifiers are metric names).
    Derived(Expr),
}

#[derive(Debug, Clone)]
pub enum TargetPlan {
    Absolute(f64),
    Change {
        change: f64,
        vs: Compare,
    },
    /// (period start, target)
    Values(Vec<(NaiveDate, f64)>),
}

#[derive(Debug, Clone)]
pub struct KpiNode {
    pub name: String,
    pub label: Option<String>,
    pub metric: String,
    pub grain: Grain,
    pub direction: Direction,
    pub indicator: Option<Indicator>,
    pub owner: Option<String>,
    pub tolerance: f64,
    pub target: Option<TargetPlan>,
    /// Period aggregates of the KPI metric's sources: the KPI's periods start
    /// at the earliest period any of them has rows in.
    pub range_aggs: Vec<String>,
    /// Every metric needed, inputs before the metrics using them.
    pub formulas: Vec<(String, Formula)>,
    /// Metrics written to kpi_metrics for this KPI.
    pub metric_outputs: Vec<String>,
    /// numerator / denominator of a ratio KPI.
    pub ratio: Option<(Formula, Formula)>,
    /// Distinct `offset(…, N unit)` shifts the formulas use: (unit, N).
    pub offsets: Vec<(Grain, u32)>,
    /// The KPI's breakdowns, when it has any.
    pub breakdown: Option<BreakdownPlan>,
    /// Each effective driver, in order.
    pub drivers: Vec<DriverPlan>,
    /// The identity drivers are attributed over.
    pub identity: Option<Identity>,
}

/// How kpi_breakdowns splits a KPI's change among members (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakdownShape {
    /// Sums and counts combined with + and −: members' changes add up.
    Additive,
    /// `a / b` over additive metrics, or `avg(x)`: mix and rate effects.
    Ratio,
    /// Anything else: values and change only.
    Other,
}

/// The KPI's metric computed per member of each breakdown dimension: the
/// same formulas as the KPI's, over member aggregates.
#[derive(Debug, Clone)]
pub struct BreakdownPlan {
    /// Dimensions as written in `breakdowns`.
    pub dims: Vec<String>,
    pub shape: BreakdownShape,
    /// The KPI metric and its inputs, inputs first; leaves read member
    /// aggregates.
    pub formulas: Vec<(String, Formula)>,
    /// Numerator and denominator of a ratio KPI, per member.
    pub ratio: Option<(Formula, Formula)>,
    /// Rows (after the KPI's filter) per member of each source of the KPI's
    /// metric: a member is listed in a period when it has rows there or in
    /// the baseline.
    pub presence: Vec<Formula>,
    /// Member aggregates whose members make up each dimension's list.
    pub member_aggs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DriverPlan {
    pub metric: String,
    /// Whether the identity uses it (otherwise it is shown, not attributed).
    pub attributed: bool,
}

/// An identity over metrics that equals the KPI's metric.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Arithmetic over metric names.
    pub expr: Expr,
    /// The metrics it uses, in order of first use.
    pub metrics: Vec<String>,
    /// For a product/quotient of metrics (times constants), each metric's
    /// exponent: the change splits by logs. `None`: Shapley split.
    pub exponents: Option<Vec<f64>>,
}

#[derive(Debug, Clone)]
pub struct FanoutCheck {
    pub source: String,
    pub joined: String,
    pub span: crate::source::Span,
    /// Key columns of the joined relation that must be unique.
    pub keys: Vec<String>,
    pub relation: ScanRelation,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub as_of: AsOfPlan,
    pub scans: Vec<ScanNode>,
    pub aggregates: Vec<AggNode>,
    pub kpis: Vec<KpiNode>,
    pub fanout_checks: Vec<FanoutCheck>,
    /// SQL text of each distinct KPI filter; aggregate columns of filter
    /// context `f<i>` apply the i-th.
    pub filter_contexts: Vec<String>,
}

/// Plans the selected KPIs of an analyzed model (which must have no errors).
pub fn plan_kpis(model: &SemanticModel, options: &PlanOptions) -> Result<Plan, Diagnostics> {
    let project = &model.project;
    let mut diags = Diagnostics::new();
    let mut selected: Vec<&Kpi> = Vec::new();
    for name in &options.select {
        match project.kpi(name) {
            Some(k) => selected.push(k),
            None => diags.push(
                Diagnostic::new(
                    Code::InvalidReference,
                    format!("--select: no KPI named `{name}`"),
                )
                .with_help(format!(
                    "KPIs: {}",
                    project
                        .kpis
                        .iter()
                        .map(|k| k.name.value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
        }
    }
    if options.select.is_empty() {
        selected = project.kpis.iter().collect();
    }
    let mut b = Builder {
        model,
        options,
        scans: BTreeMap::new(),
        aggs: BTreeMap::new(),
        filters: Vec::new(),
        diags: &mut diags,
    };
    let mut kpis = Vec::new();
    for k in selected {
        if let Some(node) = b.kpi(k) {
            kpis.push(node);
        }
    }
    let scans_used: BTreeSet<String> = b.aggs.values().map(|a| a.scan.clone()).collect();
    let mut scans: Vec<ScanNode> = Vec::new();
    let mut fanout_checks = Vec::new();
    let scan_columns = std::mem::take(&mut b.scans);
    for (source, columns) in &scan_columns {
        if !scans_used.contains(&scan_name(source)) {
            continue;
        }
        let Some(src) = project.source(source) else {
            continue;
        };
        if let Some((scan, checks)) = b.scan(src, columns) {
            scans.push(scan);
            fanout_checks.extend(checks);
        }
    }
    let aggregates: Vec<AggNode> = b.aggs.into_values().collect();
    let filter_contexts = b.filters;
    if diags.has_errors() {
        return Err(diags);
    }
    let as_of = match options.as_of.unwrap_or(project.config.as_of) {
        AsOf::Date(d) => AsOfPlan::Date(d),
        AsOf::Today => AsOfPlan::Today,
        AsOf::Latest => AsOfPlan::Latest(scans.iter().map(|s| s.name.clone()).collect()),
    };
    Ok(Plan {
        as_of,
        scans,
        aggregates,
        kpis,
        fanout_checks,
        filter_contexts,
    })
}

pub fn scan_name(source: &str) -> String {
    format!("scan_{source}")
}

struct Builder<'a> {
    model: &'a SemanticModel,
    options: &'a PlanOptions,
    /// Columns each source's scan must provide.
    scans: BTreeMap<String, BTreeSet<ColumnRef>>,
    /// Aggregate nodes by name.
    aggs: BTreeMap<String, AggNode>,
    /// Distinct KPI filters (by SQL text): context ids.
    filters: Vec<String>,
    diags: &'a mut Diagnostics,
}

impl Builder<'_> {
    fn scope<'s>(&'s self, source: &'s Source) -> Scope<'s> {
        Scope {
            project: &self.model.project,
            source,
            schemas: &self.model.schemas,
            sources: &self.model.sources,
        }
    }

    /// Resolves a field of `source` into scan columns, recording them.
    fn resolve(&mut self, source: &Source, field: &crate::model::SqlExpr) -> Option<Expr> {
        match self.scope(source).resolve(field, true) {
            Ok(r) => {
                self.scans
                    .entry(source.name.value.clone())
                    .or_default()
                    .extend(r.columns);
                Some(r.expr)
            }
            Err(errs) => {
                self.diags.0.extend(errs);
                None
            }
        }
    }

    fn context(&mut self, kpi: &Kpi) -> String {
        match &kpi.filter {
            None => "all".into(),
            Some(f) => {
                let i = match self.filters.iter().position(|t| *t == f.text) {
                    Some(i) => i,
                    None => {
                        self.filters.push(f.text.clone());
                        self.filters.len() - 1
                    }
                };
                format!("f{i}")
            }
        }
    }

    /// Ensures the period aggregate of (source, grain) exists; returns its name.
    fn period_agg(&mut self, source: &str, grain: Grain) -> String {
        let name = format!("agg_{source}_{}", grain.as_str());
        self.aggs.entry(name.clone()).or_insert_with(|| AggNode {
            name: name.clone(),
            scan: scan_name(source),
            grain,
            kind: AggKind::Period,
            columns: Vec::new(),
            by: Vec::new(),
        });
        self.scans.entry(source.to_string()).or_default();
        name
    }

    fn rolling_agg(
        &mut self,
        source: &str,
        grain: Grain,
        acc: Accumulation,
        daily: crate::model::PeriodAgg,
    ) -> String {
        let suffix = match acc {
            Accumulation::Window { days } => format!("w{days}"),
            Accumulation::All => "all".into(),
            Accumulation::ToDate(g) => format!("{}td", g.as_str()),
            Accumulation::None => "none".into(),
        };
        let name = match daily {
            crate::model::PeriodAgg::Last => format!("win_{source}_{}_{suffix}", grain.as_str()),
            other => format!(
                "win_{source}_{}_{suffix}_{}",
                grain.as_str(),
                other.as_str()
            ),
        };
        self.aggs.entry(name.clone()).or_insert_with(|| AggNode {
            name: name.clone(),
            scan: scan_name(source),
            grain,
            kind: AggKind::Rolling(acc, daily),
            columns: Vec::new(),
            by: Vec::new(),
        });
        name
    }

    fn add_column(&mut self, agg: &str, col: AggColumn) {
        if let Some(a) = self.aggs.get_mut(agg) {
            match a.columns.iter_mut().find(|c| c.name == col.name) {
                Some(existing) => existing.like_for_like |= col.like_for_like,
                None => a.columns.push(col),
            }
        }
    }

    /// The aggregate column of measure metric `name` in filter context `ctx`.
    fn leaf(
        &mut self,
        name: &str,
        kpi: &Kpi,
        ctx: &str,
        filtered: bool,
    ) -> Option<(String, String)> {
        let project = &self.model.project;
        let m = project.metric(name)?;
        let MetricKind::Measure {
            source,
            measure,
            filter,
            accumulation,
        } = &m.kind
        else {
            return None;
        };
        let src = project.source(&source.value)?;
        let measure_expr = safe_divisions(self.resolve(src, measure)?);
        let mut conditions = Vec::new();
        if let Some(f) = filter {
            conditions.push(self.resolve(src, f)?);
        }
        let ctx = if filtered { ctx } else { "all" };
        if filtered && let Some(f) = &kpi.filter {
            conditions.push(self.resolve(src, f)?);
        }
        let filter = crate::sql::build::and_all(conditions);
        self.period_agg(&source.value, kpi.grain);
        let agg = match accumulation {
            Accumulation::None => self.period_agg(&source.value, kpi.grain),
            acc => self.rolling_agg(&source.value, kpi.grain, *acc, m.period_agg),
        };
        let column = format!("{name}__{ctx}");
        let fill = m
            .fill_null
            .or(crate::semantic::aggregates::zero_when_empty(&measure.expr).then_some(0.0));
        self.add_column(
            &agg,
            AggColumn {
                name: column.clone(),
                measure: measure_expr,
                filter,
                like_for_like: true,
                fill,
            },
        );
        Some((agg, column))
    }

    fn formula(&mut self, name: &str, kpi: &Kpi, ctx: &str) -> Option<Formula> {
        let project = &self.model.project;
        let m = project.metric(name)?;
        match &m.kind {
            MetricKind::Derived { expr } => Some(Formula::Derived(expr.expr.clone())),
            MetricKind::Measure { measure, .. } => {
                let (agg, column) = self.leaf(name, kpi, ctx, true)?;
                let (_, unfiltered) = self.leaf(name, kpi, ctx, false)?;
                let info = self.model.metrics.get(name)?;
                let counts_only = crate::semantic::aggregates::zero_when_empty(&measure.expr);
                let fill = m.fill_null.or(if counts_only { Some(0.0) } else { None });
                Some(Formula::Leaf {
                    agg,
                    column,
                    unfiltered,
                    fill,
                    additive: info.additive,
                })
            }
        }
    }

    fn kpi(&mut self, k: &Kpi) -> Option<KpiNode> {
        let info = self.model.kpis.get(&k.name.value)?.clone();
        let ctx = self.context(k);
        let mut formulas = Vec::new();
        for m in &info.metrics {
            let f = self.formula(m, k, &ctx)?;
            formulas.push((m.clone(), f));
        }
        let range_aggs = info
            .sources
            .iter()
            .map(|s| self.period_agg(s, k.grain))
            .collect();
        let ratio = match self
            .model
            .metrics
            .get(&k.metric.value)
            .and_then(|i| i.ratio.clone())
        {
            Some(Ratio::Metrics {
                numerator,
                denominator,
            }) => {
                let n = self.formula(&numerator, k, &ctx)?;
                let d = self.formula(&denominator, k, &ctx)?;
                Some((n, d))
            }
            Some(Ratio::Avg { argument }) => self.avg_parts(k, &ctx, argument),
            None => None,
        };
        let target = k.target.as_ref().map(|t| match &t.value {
            Target::Absolute(v) => TargetPlan::Absolute(*v),
            Target::Change { change, vs } => TargetPlan::Change {
                change: *change,
                vs: *vs,
            },
            Target::Values(vs) => TargetPlan::Values(
                vs.iter()
                    .filter_map(|(label, v)| {
                        crate::model::period::parse_label(label).map(|(_, start)| (start, *v))
                    })
                    .collect(),
            ),
        });
        let mut offsets = Vec::new();
        for (_, f) in &formulas {
            if let Formula::Derived(e) = f {
                for o in crate::semantic::expr::offsets_in(e) {
                    if !offsets.contains(&(o.unit, o.n)) {
                        offsets.push((o.unit, o.n));
                    }
                }
            }
        }
        let breakdown = self.breakdown(k, &ctx, &formulas, ratio.as_ref());
        let (drivers, identity) = drivers::plan_drivers(&info);
        Some(KpiNode {
            breakdown,
            drivers,
            identity,
            offsets,
            name: k.name.value.clone(),
            label: k.label.clone(),
            metric: k.metric.value.clone(),
            grain: k.grain,
            direction: k.direction,
            indicator: k.indicator,
            owner: k.owner.as_ref().map(|o| o.value.clone()),
            tolerance: k.tolerance,
            target,
            range_aggs,
            formulas,
            metric_outputs: info.metrics.clone(),
            ratio,
        })
    }

    /// `sum(x)` and `count(x)` columns for an `avg(x)` KPI.
    fn avg_parts(&mut self, k: &Kpi, ctx: &str, argument: Expr) -> Option<(Formula, Formula)> {
        let project = &self.model.project;
        let m = project.metric(&k.metric.value)?;
        let MetricKind::Measure { source, filter, .. } = &m.kind else {
            return None;
        };
        let src = project.source(&source.value)?;
        let argument_field = crate::model::SqlExpr {
            expr: argument,
            text: String::new(),
            span: m.span,
        };
        let arg = self.resolve(src, &argument_field)?;
        let mut conditions = Vec::new();
        if let Some(f) = filter {
            conditions.push(self.resolve(src, f)?);
        }
        if let Some(f) = &k.filter {
            conditions.push(self.resolve(src, f)?);
        }
        let filter = crate::sql::build::and_all(conditions);
        let agg = self.period_agg(&source.value, k.grain);
        let mut parts = Vec::new();
        for (suffix, func) in [("num", "sum"), ("den", "count")] {
            let column = format!("{}__{ctx}__{suffix}", m.name.value);
            self.add_column(
                &agg,
                AggColumn {
                    name: column.clone(),
                    measure: crate::sql::build::func(func, vec![arg.clone()]),
                    filter: filter.clone(),
                    like_for_like: true,
                    fill: Some(0.0),
                },
            );
            parts.push(Formula::Leaf {
                agg: agg.clone(),
                column: column.clone(),
                unfiltered: column,
                fill: Some(0.0),
                additive: true,
            });
        }
        let den = parts.pop()?;
        let num = parts.pop()?;
        Some((num, den))
    }

    fn relation(&mut self, src: &Source) -> Option<ScanRelation> {
        match &src.relation {
            Relation::Path { path, table } => {
                if self.options.local_files {
                    Some(ScanRelation::File(path.value.clone()))
                } else if let Some(t) = table {
                    Some(ScanRelation::Table(t.value.clone()))
                } else {
                    self.diags.push(
                        Diagnostic::new(
                            Code::PlanUnsupported,
                            format!(
                                "source `{}` is a local file; other engines need a `table:`",
                                src.name.value
                            ),
                        )
                        .at(path.span, "only DuckDB reads local files")
                        .with_help(
                            "add `table: schema.table` naming the same data in the warehouse",
                        ),
                    );
                    None
                }
            }
            Relation::Table(t) | Relation::DbtRef(t) => Some(ScanRelation::Table(t.value.clone())),
            Relation::Sql(q) => Some(ScanRelation::Query(q.value.clone())),
        }
    }

    fn scan(
        &mut self,
        src: &Source,
        columns: &BTreeSet<ColumnRef>,
    ) -> Option<(ScanNode, Vec<FanoutCheck>)> {
        let base = src.name.value.clone();
        let relation = self.relation(src)?;
        let time_field = src.time.as_ref()?;
        let time = match self.scope(src).resolve(time_field, false) {
            Ok(r) => qualify(r.expr, &base, &r.columns),
            Err(errs) => {
                self.diags.0.extend(errs);
                return None;
            }
        };
        let mut joins = Vec::new();
        let mut checks = Vec::new();
        let joined_needed: BTreeSet<&str> = columns
            .iter()
            .filter_map(|c| match c {
                ColumnRef::Joined { source, .. } => Some(source.as_str()),
                ColumnRef::Base(_) => None,
            })
            .collect();
        // Every declared join is checked, used or not: a join declares a
        // many-to-one relation, and breakdowns may use it later.
        for j in &src.joins {
            let Some(js) = self.model.project.source(&j.source.value) else {
                continue;
            };
            let relation = self.relation(js)?;
            let alias = js.name.value.clone();
            let (on, keys) = match &j.on {
                JoinOn::Column(c) => (
                    Expr::BinaryOp {
                        left: Box::new(Expr::CompoundIdentifier(vec![
                            crate::sql::build::ident(&base),
                            crate::sql::build::ident(&c.value),
                        ])),
                        op: BinaryOperator::Eq,
                        right: Box::new(Expr::CompoundIdentifier(vec![
                            crate::sql::build::ident(&alias),
                            crate::sql::build::ident(&c.value),
                        ])),
                    },
                    vec![c.value.clone()],
                ),
                JoinOn::Expr(e) => {
                    let pairs =
                        crate::semantic::expr::join_pairs(e, &base, &alias).unwrap_or_default();
                    (e.expr.clone(), pairs.into_iter().map(|(_, k)| k).collect())
                }
            };
            checks.push(FanoutCheck {
                source: base.clone(),
                joined: alias.clone(),
                span: j.span,
                keys,
                relation: relation.clone(),
            });
            if joined_needed.contains(j.source.value.as_str()) {
                joins.push(ScanJoin {
                    alias,
                    relation,
                    on,
                });
            }
        }
        let columns = columns
            .iter()
            .map(|c| {
                let e = match c {
                    ColumnRef::Base(col) => Expr::CompoundIdentifier(vec![
                        crate::sql::build::ident(&base),
                        crate::sql::build::ident(col),
                    ]),
                    ColumnRef::Joined { source, column } => Expr::CompoundIdentifier(vec![
                        crate::sql::build::ident(source),
                        crate::sql::build::ident(column),
                    ]),
                };
                (c.alias(), e)
            })
            .collect();
        Some((
            ScanNode {
                name: scan_name(&base),
                source: base,
                relation,
                joins,
                time,
                columns,
            },
            checks,
        ))
    }
}

/// `a / b` → `a / NULLIF(b, 0)`: division is NULL when the divisor is 0,
/// on every engine (SPEC §7).
fn safe_divisions(mut e: Expr) -> Expr {
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Divide,
            right,
        } = x
        {
            *x = crate::sql::build::safe_div((**left).clone(), (**right).clone());
        }
        ControlFlow::<()>::Continue(())
    });
    e
}

/// Rewrites scan-column identifiers of a resolved expression into qualified
/// references to the scan's relations (`amount` → `orders.amount`).
fn qualify(mut e: Expr, base: &str, columns: &BTreeSet<ColumnRef>) -> Expr {
    let map: BTreeMap<String, Vec<sqlparser::ast::Ident>> = columns
        .iter()
        .map(|c| {
            let q = match c {
                ColumnRef::Base(col) => vec![
                    crate::sql::build::ident(base),
                    crate::sql::build::ident(col),
                ],
                ColumnRef::Joined { source, column } => vec![
                    crate::sql::build::ident(source),
                    crate::sql::build::ident(column),
                ],
            };
            (c.alias(), q)
        })
        .collect();
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        if let Expr::Identifier(i) = x
            && let Some(q) = map.get(&i.value)
        {
            *x = Expr::CompoundIdentifier(q.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    e
}
