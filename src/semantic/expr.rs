//! Checks of metric and KPI expressions: measures (aggregates, columns,
//! filters), derived expressions (metric references, cycles), KPI
//! references (metric, drivers, decomposition, breakdowns, related) and
//! KPI filters. Also computes [`MetricInfo`] and [`KpiInfo`].

use std::collections::{BTreeSet, HashMap};

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};

use super::aggregates::{self, MeasureProblem};
use super::resolve::locate;
use super::{KpiInfo, MetricInfo, Ratio, Schemas, Scope};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::model::{Accumulation, Kpi, MetricKind, Project, SqlExpr};
use crate::source::SourceMap;

/// Functions allowed in derived expressions besides arithmetic.
const DERIVED_FUNCTIONS: &[&str] = &[
    "coalesce", "nullif", "abs", "least", "greatest", "round", "ln", "exp", "sqrt", "power",
];

/// `offset(metric, N unit)`: the metric's value N units earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRef {
    pub metric: String,
    pub n: u32,
    pub unit: crate::model::Grain,
}

/// Reads `offset(metric, N*unit)` (the model stage rewrote `N unit`).
pub fn parse_offset(f: &sqlparser::ast::Function) -> Result<OffsetRef, String> {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let usage = "write `offset(metric, N unit)`, e.g. `offset(revenue, 1 year)`";
    let FunctionArguments::List(list) = &f.args else {
        return Err(usage.into());
    };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    let [
        Expr::Identifier(metric),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Multiply,
            right,
        },
    ] = args.as_slice()
    else {
        return Err(usage.into());
    };
    let (Expr::Value(v), Expr::Identifier(unit)) = (left.as_ref(), right.as_ref()) else {
        return Err(usage.into());
    };
    let Value::Number(n, _) = &v.value else {
        return Err(usage.into());
    };
    let n: u32 = n
        .parse()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or("the count of an offset is a whole number from 1 to 1000")?;
    let unit = crate::model::Grain::parse(unit.value.to_ascii_lowercase().trim_end_matches('s'))
        .ok_or("the unit of an offset is day, week, month, quarter or year")?;
    Ok(OffsetRef {
        metric: metric.value.clone(),
        n,
        unit,
    })
}

/// Every `offset(...)` of an expression, in order.
pub fn offsets_in(e: &Expr) -> Vec<OffsetRef> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_expressions(e, |x| {
        if let Expr::Function(f) = x
            && aggregates::function_name(f) == "offset"
            && let Ok(o) = parse_offset(f)
            && !out.contains(&o)
        {
            out.push(o);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// Whether a KPI of `grain` can read values `n` `unit`s earlier: the
/// shifted period must start on a period of the grain.
pub fn offset_fits_grain(grain: crate::model::Grain, unit: crate::model::Grain, n: u32) -> bool {
    use crate::model::Grain::*;
    match (grain, unit) {
        (Day, _) => true,
        (Week, Week | Year) => true,
        (Month, Month | Quarter | Year) => true,
        (Quarter, Quarter | Year) => true,
        (Quarter, Month) => n.is_multiple_of(3),
        (Year, Year) => true,
        (Year, Quarter) => n.is_multiple_of(4),
        (Year, Month) => n.is_multiple_of(12),
        _ => false,
    }
}

/// Metric names a derived expression references (offsets included), or
/// the problem with it.
pub fn metric_refs(e: &SqlExpr) -> Result<Vec<String>, Diagnostic> {
    fn walk(e: &Expr, refs: &mut Vec<String>) -> Result<(), String> {
        let mut add = |name: &str| {
            if !refs.iter().any(|r| r == name) {
                refs.push(name.to_string());
            }
        };
        match e {
            Expr::Identifier(i) => {
                add(&i.value);
                Ok(())
            }
            Expr::Value(v) => match &v.value {
                Value::Number(..) | Value::Null => Ok(()),
                _ => Err("only numbers may appear as literals".to_string()),
            },
            Expr::Nested(e) => walk(e, refs),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide => {
                    walk(left, refs)?;
                    walk(right, refs)
                }
                other => Err(format!("operator `{other}` is not arithmetic")),
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr,
            } => walk(expr, refs),
            Expr::Function(f) => {
                let name = aggregates::function_name(f);
                if name == "offset" {
                    let o = parse_offset(f)?;
                    add(&o.metric);
                    return Ok(());
                }
                if !DERIVED_FUNCTIONS.contains(&name.as_str()) {
                    return Err(format!("function `{name}` is not allowed here"));
                }
                let sqlparser::ast::FunctionArguments::List(list) = &f.args else {
                    return Ok(());
                };
                for a in &list.args {
                    match a {
                        sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::Expr(x),
                        ) => walk(x, refs)?,
                        _ => return Err(format!("unexpected argument of `{name}`")),
                    }
                }
                Ok(())
            }
            other => Err(format!("`{other}` is not arithmetic over metrics")),
        }
    }
    let mut refs = Vec::new();
    let problem = walk(&e.expr, &mut refs).err();
    match problem {
        None => Ok(refs),
        Some(p) => Err(Diagnostic::new(
            Code::InvalidExpression,
            format!("invalid metric expression: {p}"),
        )
        .at(e.span, "expected arithmetic over metric names")
        .with_help(
            "a derived `expr` combines metrics with + - * / and numbers, e.g. `revenue / orders`",
        )
        .with_note(format!(
            "allowed functions: {}",
            DERIVED_FUNCTIONS.join(", ")
        ))),
    }
}

fn unknown_metric(
    project: &Project,
    name: &str,
    field: &SqlExpr,
    sources: &SourceMap,
) -> Option<Diagnostic> {
    let span = locate(sources, field.span, name);
    unknown_metric_at(project, name, span)
}

/// `None` when the metric exists but was broken (its error is reported).
fn unknown_metric_at(
    project: &Project,
    name: &str,
    span: crate::source::Span,
) -> Option<Diagnostic> {
    if project.broken_metrics.contains(name) {
        return None;
    }
    let hint = did_you_mean(name, project.metrics.iter().map(|m| m.name.value.as_str()));
    // The name of something else: say what it is rather than "unknown".
    let other = if project.kpi(name).is_some() {
        Some("a KPI")
    } else if project.source(name).is_some() {
        Some("a source")
    } else if project
        .sources
        .iter()
        .any(|s| s.dimensions.iter().any(|d| d.name.value == name))
    {
        Some("a dimension")
    } else {
        None
    };
    let d = Diagnostic::new(Code::UnknownMetric, format!("unknown metric `{name}`"));
    Some(match (other, hint) {
        (Some(kind), Some(h)) => d
            .at(span, format!("`{name}` is {kind}, not a metric"))
            .with_help(format!("did you mean metric `{h}`?")),
        (Some(kind), None) => d.at(span, format!("`{name}` is {kind}, not a metric")),
        (None, Some(h)) => d.at(span, format!("did you mean `{h}`?")),
        (None, None) => d.at(span, "no metric of this name"),
    })
}

/// `false` when an expression is certainly not a condition.
fn may_be_boolean(e: &Expr, column_type: &dyn Fn(&str) -> Option<String>) -> bool {
    match e {
        Expr::Nested(e) => may_be_boolean(e, column_type),
        Expr::BinaryOp { op, .. } => {
            matches!(
                op,
                BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
                    | BinaryOperator::And
                    | BinaryOperator::Or
                    | BinaryOperator::Xor
                    | BinaryOperator::Spaceship
            ) || matches!(
                op,
                BinaryOperator::Custom(_)
                    | BinaryOperator::PGRegexMatch
                    | BinaryOperator::PGRegexIMatch
                    | BinaryOperator::PGRegexNotMatch
                    | BinaryOperator::PGRegexNotIMatch
                    | BinaryOperator::PGLikeMatch
                    | BinaryOperator::PGILikeMatch
                    | BinaryOperator::PGNotLikeMatch
                    | BinaryOperator::PGNotILikeMatch
            )
        }
        Expr::UnaryOp { op, .. } => matches!(op, UnaryOperator::Not),
        Expr::Value(v) => matches!(v.value, Value::Boolean(_) | Value::Null),
        Expr::Identifier(i) => {
            column_type(&i.value).is_none_or(|t| t.eq_ignore_ascii_case("BOOLEAN"))
        }
        Expr::CompoundIdentifier(_) => true,
        Expr::Function(_) | Expr::Cast { .. } | Expr::Case { .. } => true,
        Expr::Interval(_) | Expr::TypedString(_) => false,
        _ => true,
    }
}

/// Checks a `filter` field against a source; pushes diagnostics.
fn check_filter(scope: &Scope, f: &SqlExpr, diags: &mut Diagnostics) {
    if let Some(a) = aggregates::contains_aggregate(&f.expr) {
        diags.push(
            Diagnostic::new(
                Code::FilterNotBoolean,
                format!("a filter cannot use the aggregate `{a}`"),
            )
            .at(f.span, "filters apply to rows")
            .with_help(
                "filter rows (`status = 'completed'`); combine aggregates in a derived metric",
            ),
        );
        return;
    }
    if let Err(errs) = scope.resolve(f, true) {
        diags.0.extend(errs);
        return;
    }
    let cols = scope.schemas.get(&scope.source.name.value);
    let column_type = |name: &str| -> Option<String> {
        if scope
            .source
            .dimensions
            .iter()
            .any(|d| d.name.value == name && !matches!(&d.expr.expr, Expr::Identifier(_)))
        {
            return None;
        }
        cols.and_then(|c| c.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
            .map(|c| c.data_type.clone())
    };
    if !may_be_boolean(&f.expr, &column_type) {
        diags.push(
            Diagnostic::new(
                Code::FilterNotBoolean,
                format!("filter `{}` is not a condition", f.text),
            )
            .at(f.span, "this is not true or false per row")
            .with_help("write a condition, e.g. `status = 'completed'`"),
        );
    }
}

pub fn analyze_metrics(
    project: &Project,
    schemas: &Schemas,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> HashMap<String, MetricInfo> {
    let mut direct: HashMap<String, Vec<String>> = HashMap::new();
    let mut infos: HashMap<String, MetricInfo> = HashMap::new();
    for m in &project.metrics {
        match &m.kind {
            MetricKind::Measure {
                source,
                measure,
                filter,
                accumulation,
            } => {
                let Some(src) = project.source(&source.value) else {
                    if project.broken_sources.contains(&source.value) {
                        continue;
                    }
                    let hint = did_you_mean(
                        &source.value,
                        project.sources.iter().map(|s| s.name.value.as_str()),
                    );
                    diags.push(
                        Diagnostic::new(
                            Code::UnknownSource,
                            format!("unknown source `{}`", source.value),
                        )
                        .at(
                            source.span,
                            hint.map_or("no source of this name".into(), |h| {
                                format!("did you mean `{h}`?")
                            }),
                        ),
                    );
                    continue;
                };
                let scope = Scope {
                    project,
                    source: src,
                    schemas,
                    sources,
                };
                for p in aggregates::check_measure(&measure.expr) {
                    diags.push(match p {
                        MeasureProblem::BareColumn(c) => Diagnostic::new(
                            Code::MeasureWithoutAggregate,
                            format!("measure of `{}` uses `{c}` outside an aggregate", m.name.value),
                        )
                        .at(locate(sources, measure.span, &c), "not inside an aggregate")
                        .with_help(format!("aggregate it, e.g. `sum({c})`")),
                        MeasureProblem::NoAggregate => Diagnostic::new(
                            Code::MeasureWithoutAggregate,
                            format!("measure of `{}` has no aggregate", m.name.value),
                        )
                        .at(measure.span, "a measure aggregates rows")
                        .with_help("use e.g. `sum(amount)` or `count(*)`"),
                        MeasureProblem::Nested(a) => Diagnostic::new(Code::NestedAggregate, format!("aggregate `{a}` inside another aggregate"))
                            .at(locate(sources, measure.span, &a), "nested aggregate")
                            .with_help("define the inner aggregate as a metric and combine metrics with `expr`"),
                        MeasureProblem::Unsupported(a) => Diagnostic::new(Code::UnsupportedAggregate, format!("aggregate `{a}` is not supported"))
                            .at(locate(sources, measure.span, &a), "not translatable to every engine")
                            .with_help("use sum, count, count(distinct), avg, min, max, median, quantile_cont, percentile, approx_count_distinct or stddev"),
                        MeasureProblem::WindowFunction(a) => Diagnostic::new(Code::UnsupportedAggregate, format!("window function `{a}` in a measure"))
                            .at(measure.span, "OVER (...) is not allowed in a measure")
                            .with_help("use `window:` or `to_date:` on the metric instead"),
                    });
                }
                if let Err(errs) = scope.resolve(measure, true) {
                    diags.0.extend(errs);
                }
                if let Some(f) = filter {
                    check_filter(&scope, f, diags);
                }
                let additive =
                    aggregates::is_additive(&measure.expr) && *accumulation == Accumulation::None;
                let ratio = if *accumulation == Accumulation::None {
                    aggregates::avg_argument(&measure.expr).map(|argument| Ratio::Avg { argument })
                } else {
                    None
                };
                infos.insert(
                    m.name.value.clone(),
                    MetricInfo {
                        leaves: BTreeSet::from([m.name.value.clone()]),
                        sources: BTreeSet::from([src.name.value.clone()]),
                        deps: Vec::new(),
                        additive,
                        ratio,
                        formula_nodes: 1,
                    },
                );
            }
            MetricKind::Derived { expr } => match metric_refs(expr) {
                Ok(refs) => {
                    let mut ok = true;
                    for r in &refs {
                        if project.metric(r).is_none() {
                            diags.0.extend(unknown_metric(project, r, expr, sources));
                            ok = false;
                        }
                    }
                    if ok {
                        direct.insert(m.name.value.clone(), refs);
                    }
                }
                Err(d) => diags.push(d),
            },
        }
    }
    // Derived metrics in dependency order; cycles reported once each.
    let mut names: Vec<&String> = direct.keys().collect();
    names.sort();
    let mut resolver = Resolver {
        project,
        direct: &direct,
        infos: &mut infos,
        state: HashMap::new(),
        costs: HashMap::new(),
        diags,
    };
    for name in names {
        resolver.resolve(name);
    }
    infos
}

/// Most levels of derived metrics built on derived metrics (a derived
/// metric over measures is level 1). Real definitions use two or three;
/// every stage after this one walks the chain recursively.
pub const MAX_DERIVED_LEVELS: usize = 32;

/// Most nodes a metric's formula may have once the derived metrics it uses
/// are written out, as the SQL does: `b = a + a`, `c = b + b`, … doubles at
/// every level, so a few lines could otherwise ask for a formula (and SQL)
/// of billions of terms.
pub const MAX_FORMULA_NODES: usize = 2_000;

/// Size of a derived expression (its nodes other than metric references)
/// and the metric references it makes, with repetitions (`offset(m, …)`
/// counts as a use of `m`). Only called on expressions [`metric_refs`]
/// accepted.
fn formula_parts(e: &Expr, refs: &mut Vec<String>) -> usize {
    match e {
        Expr::Identifier(i) => {
            refs.push(i.value.clone());
            0
        }
        Expr::Nested(e) => formula_parts(e, refs),
        Expr::BinaryOp { left, right, .. } => {
            1 + formula_parts(left, refs) + formula_parts(right, refs)
        }
        Expr::UnaryOp { expr, .. } => 1 + formula_parts(expr, refs),
        Expr::Function(f) => {
            if aggregates::function_name(f) == "offset" {
                if let Ok(o) = parse_offset(f) {
                    refs.push(o.metric);
                }
                return 1;
            }
            let mut n = 1;
            if let sqlparser::ast::FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    if let sqlparser::ast::FunctionArg::Unnamed(
                        sqlparser::ast::FunctionArgExpr::Expr(x),
                    ) = a
                    {
                        n += formula_parts(x, refs);
                    }
                }
            }
            n
        }
        _ => 1,
    }
}

/// Levels and written-out size of a metric's formula (a measure: 0, 1).
#[derive(Clone, Copy)]
struct Cost {
    levels: usize,
    nodes: usize,
}

/// Resolves derived metrics in dependency order without recursion (a chain
/// of metrics may be as long as the files are), reporting cycles and the
/// limits [`MAX_DERIVED_LEVELS`] and [`MAX_FORMULA_NODES`] once each.
struct Resolver<'a, 'd> {
    project: &'a Project,
    direct: &'a HashMap<String, Vec<String>>,
    infos: &'a mut HashMap<String, MetricInfo>,
    /// 1 visiting, 2 done (resolved or failed).
    state: HashMap<String, u8>,
    costs: HashMap<String, Cost>,
    diags: &'d mut Diagnostics,
}

impl Resolver<'_, '_> {
    /// Resolves `name` and what it depends on; whether it resolved.
    fn resolve(&mut self, name: &str) -> bool {
        if self.infos.contains_key(name) {
            return true;
        }
        if !self.enter(name, &[]) {
            return false;
        }
        // (metric, index of the next dependency, all dependencies resolved)
        let mut stack: Vec<(String, usize, bool)> = vec![(name.to_string(), 0, true)];
        let mut result = false;
        while let Some(top) = stack.last_mut() {
            let deps = &self.direct[&top.0];
            if let Some(d) = deps.get(top.1) {
                top.1 += 1;
                if self.infos.contains_key(d) {
                    continue;
                }
                if self.enter(d, &stack) {
                    stack.push((d.clone(), 0, true));
                } else if let Some(top) = stack.last_mut() {
                    top.2 = false;
                }
                continue;
            }
            let Some((done, _, ok)) = stack.pop() else {
                break;
            };
            self.state.insert(done.clone(), 2);
            result = ok && self.finish(&done);
            if !result && let Some(parent) = stack.last_mut() {
                parent.2 = false;
            }
        }
        result
    }

    /// Starts visiting `name` (reached through the metrics of `path`);
    /// false when it cannot resolve: not a valid derived metric, already
    /// failed, or part of a cycle (reported here).
    fn enter(&mut self, name: &str, path: &[(String, usize, bool)]) -> bool {
        if !self.direct.contains_key(name) {
            return false;
        }
        match self.state.get(name) {
            Some(2) => false,
            Some(_) => {
                let start = path.iter().position(|f| f.0 == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|f| f.0.clone()).collect();
                cycle.push(name.to_string());
                if let Some(m) = self.project.metric(name) {
                    let shown = if cycle.len() > 12 {
                        format!(
                            "{} → … ({} more) … → {}",
                            cycle[..6].join(" → "),
                            cycle.len() - 10,
                            cycle[cycle.len() - 4..].join(" → ")
                        )
                    } else {
                        cycle.join(" → ")
                    };
                    self.diags.push(
                        Diagnostic::new(
                            Code::MetricCycle,
                            format!("metrics depend on each other: {shown}"),
                        )
                        .at(m.name.span, "this metric is part of the cycle")
                        .with_help(
                            "a derived metric cannot use itself, directly or through others",
                        ),
                    );
                }
                for c in &cycle {
                    self.state.insert(c.clone(), 2);
                }
                false
            }
            None => {
                self.state.insert(name.to_string(), 1);
                true
            }
        }
    }

    /// Computes the info of `name`, whose dependencies all resolved;
    /// false (reported) when its formula exceeds a limit.
    fn finish(&mut self, name: &str) -> bool {
        let deps = &self.direct[name];
        let Some(metric) = self.project.metric(name) else {
            return false;
        };
        let MetricKind::Derived { expr } = &metric.kind else {
            return false;
        };
        let cost_of = |costs: &HashMap<String, Cost>, d: &str| {
            costs.get(d).copied().unwrap_or(Cost {
                levels: 0,
                nodes: 1,
            })
        };
        // (Derived dependencies have their cost; measures are 0 levels, 1 node.)
        let mut uses = Vec::new();
        let own = formula_parts(&expr.expr, &mut uses);
        let levels = 1 + deps
            .iter()
            .map(|d| cost_of(&self.costs, d).levels)
            .max()
            .unwrap_or(0);
        let nodes = uses
            .iter()
            .fold(own, |n, d| n.saturating_add(cost_of(&self.costs, d).nodes));
        if levels > MAX_DERIVED_LEVELS {
            self.diags.push(
                Diagnostic::new(
                    Code::InputTooLarge,
                    format!(
                        "metric `{name}` is built on more than {MAX_DERIVED_LEVELS} levels of derived metrics"
                    ),
                )
                .at(expr.span, "one level too many")
                .with_help("define it over fewer intermediate metrics (derived metrics may build on each other up to 32 levels)"),
            );
            return false;
        }
        if nodes > MAX_FORMULA_NODES {
            self.diags.push(
                Diagnostic::new(
                    Code::InputTooLarge,
                    format!(
                        "metric `{name}` expands to more than {MAX_FORMULA_NODES} terms once the derived metrics it uses are written out"
                    ),
                )
                .at(expr.span, "this formula is too large")
                .with_help("use each derived metric fewer times (e.g. `2 * x` rather than `x + x`), or build on measure metrics directly")
                .with_note(format!("written out, the formula has {nodes} terms")),
            );
            return false;
        }
        self.costs.insert(name.to_string(), Cost { levels, nodes });
        let mut leaves = BTreeSet::new();
        let mut srcs = BTreeSet::new();
        for d in deps {
            if let Some(i) = self.infos.get(d) {
                leaves.extend(i.leaves.iter().cloned());
                srcs.extend(i.sources.iter().cloned());
            }
        }
        let ratio = ratio_of(&expr.expr, self.infos);
        self.infos.insert(
            name.to_string(),
            MetricInfo {
                leaves,
                sources: srcs,
                deps: deps.clone(),
                additive: false,
                ratio,
                formula_nodes: nodes,
            },
        );
        true
    }
}

/// `a / b` over two additive measure metrics.
fn ratio_of(e: &Expr, infos: &HashMap<String, MetricInfo>) -> Option<Ratio> {
    match e {
        Expr::Nested(e) => ratio_of(e, infos),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Divide,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (Expr::Identifier(a), Expr::Identifier(b))
                if infos.get(&a.value).is_some_and(|i| i.additive)
                    && infos.get(&b.value).is_some_and(|i| i.additive) =>
            {
                Some(Ratio::Metrics {
                    numerator: a.value.clone(),
                    denominator: b.value.clone(),
                })
            }
            _ => None,
        },
        _ => None,
    }
}

/// Metrics `name` needs, inputs first, ending with `name`.
pub fn dependency_order(name: &str, infos: &HashMap<String, MetricInfo>, out: &mut Vec<String>) {
    if out.iter().any(|n| n == name) {
        return;
    }
    if let Some(i) = infos.get(name) {
        for d in &i.deps {
            dependency_order(d, infos, out);
        }
    }
    out.push(name.to_string());
}

/// Most metrics a KPI's identity (its `decomposition:`, or its derived
/// metric's expression) may have for its drivers to be attributed: the
/// exact Shapley split evaluates the identity on every subset of them
/// (2^n evaluations). Over it the drivers are listed with `method: none`
/// (`plan::drivers`) and `kpic check` warns (KPI258).
pub(crate) const MAX_IDENTITY_METRICS: usize = 10;

/// The distinct metrics of an identity, in order of first use; `None` when
/// it uses `offset()` (shifted values are not drivers of this period).
pub(crate) fn identity_metrics(expr: &Expr) -> Option<Vec<String>> {
    let mut metrics: Vec<String> = Vec::new();
    let mut has_offset = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        match e {
            Expr::Identifier(i) if !metrics.contains(&i.value) => metrics.push(i.value.clone()),
            Expr::Function(f) if super::aggregates::function_name(f) == "offset" => {
                has_offset = true
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    (!has_offset).then_some(metrics)
}

/// KPI258: a KPI with drivers whose identity has more metrics than an
/// exact split takes (its drivers are shown, but not attributed).
fn warn_unattributed_drivers(project: &Project, k: &Kpi, diags: &mut Diagnostics) {
    let (identity, from_decomposition) = match (&k.decomposition, project.metric(&k.metric.value)) {
        (Some(dec), _) => (dec, true),
        (
            None,
            Some(crate::model::Metric {
                kind: MetricKind::Derived { expr },
                ..
            }),
        ) => (expr, false),
        _ => return,
    };
    let Some(metrics) = identity_metrics(&identity.expr) else {
        return;
    };
    if metrics.len() <= MAX_IDENTITY_METRICS {
        return;
    }
    let n = metrics.len();
    let what = if from_decomposition {
        "its decomposition".to_string()
    } else {
        format!("the expression of its metric `{}`", k.metric.value)
    };
    let message = format!(
        "KPI `{}`'s drivers will be shown but not attributed: {what} has {n} metrics, more than the {MAX_IDENTITY_METRICS} an exact split takes",
        k.name.value
    );
    let label = format!("{n} metrics: kpi_drivers gets `method: none` and no contributions");
    let d = if from_decomposition {
        Diagnostic::new(Code::DriversNotAttributed, message).at(identity.span, label)
    } else {
        Diagnostic::new(Code::DriversNotAttributed, message)
            .at(k.metric.span, label)
            .with_secondary(identity.span, "the identity drivers are attributed over")
    };
    diags.push(
        d.with_help(format!(
            "group metrics into derived metrics (e.g. `paid = card + invoice + voucher`) so the expression uses at most {MAX_IDENTITY_METRICS}, or declare a `decomposition:` over at most {MAX_IDENTITY_METRICS} metrics and list those as `drivers:`"
        ))
        .with_note(format!("the exact (Shapley) split evaluates the identity on every subset of its metrics: 2^{n} evaluations")),
    );
}

pub fn analyze_kpis(
    project: &Project,
    schemas: &Schemas,
    sources: &SourceMap,
    metrics: &HashMap<String, MetricInfo>,
    diags: &mut Diagnostics,
) -> HashMap<String, KpiInfo> {
    let mut out = HashMap::new();
    for k in &project.kpis {
        if let Some(info) = analyze_kpi(project, schemas, sources, metrics, k, diags) {
            out.insert(k.name.value.clone(), info);
        }
    }
    out
}

fn analyze_kpi(
    project: &Project,
    schemas: &Schemas,
    sources: &SourceMap,
    metrics: &HashMap<String, MetricInfo>,
    k: &Kpi,
    diags: &mut Diagnostics,
) -> Option<KpiInfo> {
    let metric_known = project.metric(&k.metric.value).is_some();
    if !metric_known {
        diags
            .0
            .extend(unknown_metric_at(project, &k.metric.value, k.metric.span));
    }
    let mut ok = metric_known && metrics.contains_key(&k.metric.value);
    let mut drivers: Vec<String> = Vec::new();
    if let Some(ds) = &k.drivers {
        for d in ds {
            if project.metric(&d.value).is_none() {
                diags.0.extend(unknown_metric_at(project, &d.value, d.span));
                ok = false;
            } else if !drivers.contains(&d.value) {
                drivers.push(d.value.clone());
            }
        }
    }
    if let Some(dec) = &k.decomposition {
        match metric_refs(dec) {
            Ok(refs) => {
                for r in &refs {
                    if project.metric(r).is_none() {
                        diags.0.extend(unknown_metric(project, r, dec, sources));
                        ok = false;
                    }
                }
                let mut uses = Vec::new();
                let own = formula_parts(&dec.expr, &mut uses);
                let nodes = uses.iter().fold(own, |n, r| {
                    n.saturating_add(metrics.get(r).map_or(1, |i| i.formula_nodes))
                });
                if nodes > MAX_FORMULA_NODES {
                    diags.push(
                        Diagnostic::new(
                            Code::InputTooLarge,
                            format!(
                                "the decomposition of KPI `{}` expands to more than {MAX_FORMULA_NODES} terms once the derived metrics it uses are written out",
                                k.name.value
                            ),
                        )
                        .at(dec.span, "this formula is too large")
                        .with_help("use each derived metric fewer times, or build on measure metrics directly")
                        .with_note(format!("written out, the formula has {nodes} terms")),
                    );
                    ok = false;
                }
                if k.drivers.is_none() {
                    drivers = refs;
                }
            }
            Err(d) => {
                diags.push(d);
                ok = false;
            }
        }
    }
    if k.drivers.is_none()
        && k.decomposition.is_none()
        && let Some(i) = metrics.get(&k.metric.value)
    {
        drivers = i.deps.clone();
    }
    for r in &k.related {
        if project.kpi(&r.value).is_none() && project.metric(&r.value).is_none() {
            let names = project
                .kpis
                .iter()
                .map(|k| k.name.value.as_str())
                .chain(project.metrics.iter().map(|m| m.name.value.as_str()));
            let hint = did_you_mean(&r.value, names);
            diags.push(
                Diagnostic::new(
                    Code::InvalidReference,
                    format!("related `{}` is neither a KPI nor a metric", r.value),
                )
                .at(
                    r.span,
                    hint.map_or("unknown name".into(), |h| format!("did you mean `{h}`?")),
                ),
            );
        }
    }
    if !ok {
        return None;
    }
    // The identity drivers are attributed over: the declared
    // decomposition, else the KPI metric's own expression.
    let identity = match (&k.decomposition, project.metric(&k.metric.value)) {
        (Some(dec), _) => Some(dec.expr.clone()),
        (
            None,
            Some(crate::model::Metric {
                kind: MetricKind::Derived { expr },
                ..
            }),
        ) => Some(expr.expr.clone()),
        _ => None,
    };
    if !drivers.is_empty() {
        warn_unattributed_drivers(project, k, diags);
    }
    let decomposition_metrics = match &k.decomposition {
        Some(dec) => metric_refs(dec).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut needed = Vec::new();
    dependency_order(&k.metric.value, metrics, &mut needed);
    for d in drivers.iter().chain(&decomposition_metrics) {
        if metrics.contains_key(d) {
            dependency_order(d, metrics, &mut needed);
        }
    }
    for name in &needed {
        let Some(crate::model::Metric {
            kind: MetricKind::Derived { expr },
            ..
        }) = project.metric(name)
        else {
            continue;
        };
        for o in offsets_in(&expr.expr) {
            if !offset_fits_grain(k.grain, o.unit, o.n) {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidExpression,
                        format!(
                            "`offset({}, {} {})` does not fit KPI `{}`'s {} grain",
                            o.metric,
                            o.n,
                            o.unit.as_str(),
                            k.name.value,
                            k.grain.as_str()
                        ),
                    )
                    .at(locate(sources, expr.span, "offset"), "this offset")
                    .with_secondary(k.name.span, "used by this KPI")
                    .with_help("the offset must move by whole periods of the KPI's grain (e.g. 1 year or 12 months for a month KPI)"),
                );
                ok = false;
            }
            // Offsets of offsets would need shifted shifts; refuse them.
            let mut inner = Vec::new();
            dependency_order(&o.metric, metrics, &mut inner);
            let nested = inner.iter().any(|m| {
                matches!(
                    project.metric(m),
                    Some(crate::model::Metric { kind: MetricKind::Derived { expr }, .. })
                        if !offsets_in(&expr.expr).is_empty()
                )
            });
            if nested {
                diags.push(
                    Diagnostic::new(
                        Code::PlanUnsupported,
                        format!("`offset({}, …)` of a metric that itself uses offset() is not supported", o.metric),
                    )
                    .at(locate(sources, expr.span, "offset"), "nested offset")
                    .with_help("offset the underlying metrics instead"),
                );
                ok = false;
            }
        }
    }
    let kpi_sources = metrics
        .get(&k.metric.value)
        .map(|i| i.sources.clone())
        .unwrap_or_default();
    let mut all_sources = BTreeSet::new();
    for n in &needed {
        if let Some(i) = metrics.get(n) {
            all_sources.extend(i.sources.iter().cloned());
        }
    }
    for s in &all_sources {
        let Some(src) = project.source(s) else {
            continue;
        };
        if src.time.is_none() {
            diags.push(
                Diagnostic::new(
                    Code::TimeRequired,
                    format!(
                        "source `{s}` has no `time`, but KPI `{}` uses it at a {} grain",
                        k.name.value,
                        k.grain.as_str()
                    ),
                )
                .at(src.name.span, "add `time:` to this source")
                .with_secondary(k.name.span, "used by this KPI"),
            );
            ok = false;
        }
        let scope = Scope {
            project,
            source: src,
            schemas,
            sources,
        };
        if let Some(f) = &k.filter {
            check_filter(&scope, f, diags);
        }
    }
    for b in &k.breakdowns {
        for s in &kpi_sources {
            let Some(src) = project.source(s) else {
                continue;
            };
            if !dimension_reachable(project, src, &b.value) {
                let mut names: Vec<String> = src
                    .dimensions
                    .iter()
                    .map(|d| d.name.value.clone())
                    .collect();
                for j in &src.joins {
                    if let Some(js) = project.source(&j.source.value) {
                        names.extend(
                            js.dimensions
                                .iter()
                                .map(|d| format!("{}.{}", js.name.value, d.name.value)),
                        );
                    }
                }
                let hint = did_you_mean(&b.value, names.iter().map(String::as_str));
                diags.push(
                    Diagnostic::new(
                        Code::UnknownDimension,
                        format!("breakdown `{}` is not a dimension of source `{s}`", b.value),
                    )
                    .at(
                        b.span,
                        hint.map_or("not reachable".into(), |h| format!("did you mean `{h}`?")),
                    )
                    .with_help(format!(
                        "declare `{}` under `dimensions:` of `{s}` or of a source it joins",
                        b.value
                    )),
                );
                ok = false;
            }
        }
    }
    ok.then_some(KpiInfo {
        drivers,
        identity,
        metrics: needed,
        sources: kpi_sources,
    })
}

/// Whether `name` (`plan` or `customers.plan`) is a dimension of `src` or of
/// a source it joins (unqualified only when unambiguous).
pub fn dimension_reachable(project: &Project, src: &crate::model::Source, name: &str) -> bool {
    if let Some((rel, dim)) = name.split_once('.') {
        if rel == src.name.value {
            return src.dimensions.iter().any(|d| d.name.value == dim);
        }
        return src.joins.iter().any(|j| {
            j.source.value == rel
                && project
                    .source(rel)
                    .is_some_and(|s| s.dimensions.iter().any(|d| d.name.value == dim))
        });
    }
    if src.dimensions.iter().any(|d| d.name.value == name) {
        return true;
    }
    src.joins
        .iter()
        .filter(|j| {
            project
                .source(&j.source.value)
                .is_some_and(|s| s.dimensions.iter().any(|d| d.name.value == name))
        })
        .count()
        == 1
}

/// Column pairs `(base column, joined column)` of an equality join
/// condition `base.a = joined.b AND …`; `None` when it is anything else.
pub fn join_pairs(e: &SqlExpr, base: &str, joined: &str) -> Option<Vec<(String, String)>> {
    fn walk(e: &Expr, base: &str, joined: &str, out: &mut Vec<(String, String)>) -> bool {
        match e {
            Expr::Nested(e) => walk(e, base, joined, out),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => walk(left, base, joined, out) && walk(right, base, joined, out),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                let side = |e: &Expr| match e {
                    Expr::CompoundIdentifier(p) if p.len() == 2 => {
                        Some((p[0].value.clone(), p[1].value.clone()))
                    }
                    _ => None,
                };
                match (side(left), side(right)) {
                    (Some((r1, c1)), Some((r2, c2))) if r1 == base && r2 == joined => {
                        out.push((c1, c2));
                        true
                    }
                    (Some((r1, c1)), Some((r2, c2))) if r1 == joined && r2 == base => {
                        out.push((c2, c1));
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }
    let mut out = Vec::new();
    walk(&e.expr, base, joined, &mut out).then_some(out)
}
