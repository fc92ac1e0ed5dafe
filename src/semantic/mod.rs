//! Semantic analysis: resolves every reference, checks every rule of SPEC §3
//! and §7 that can be checked before running, finds cycles, and adds KPI
//! hygiene warnings. Reports every problem in one run.
//!
//! In: a typed [`Project`] and a [`Catalog`] (schemas of local files, read
//! through DuckDB by `exec`). Out: a [`SemanticModel`] (the project plus
//! derived facts: each metric's leaf measures, additivity, ratio parts, and
//! each KPI's effective drivers), or diagnostics.

pub mod aggregates;
pub mod expr;
pub mod resolve;

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlparser::ast::Expr;

use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::model::{Accumulation, MetricKind, Project, Relation, Source};
use crate::source::{SourceMap, Span};
pub use resolve::{Column, ColumnRef, Schemas, Scope};

/// Schemas of sources, as far as they can be known before running.
pub trait Catalog {
    /// The columns of `source`'s relation; `Ok(None)` when it cannot be known
    /// (a warehouse table); `Err` when reading it failed (KPI404).
    fn describe(
        &mut self,
        project: &Project,
        source: &Source,
    ) -> Result<Option<Vec<Column>>, Diagnostic>;
}

/// A catalog that knows nothing: every column is taken on trust.
pub struct NoCatalog;

impl Catalog for NoCatalog {
    fn describe(&mut self, _: &Project, _: &Source) -> Result<Option<Vec<Column>>, Diagnostic> {
        Ok(None)
    }
}

/// How a metric is computed, as far as planning needs to know.
#[derive(Debug, Clone)]
pub struct MetricInfo {
    /// Measure metrics this metric is computed from (itself for a measure).
    pub leaves: BTreeSet<String>,
    /// Sources of those measures.
    pub sources: BTreeSet<String>,
    /// Metrics a derived expression names directly.
    pub deps: Vec<String>,
    /// SPEC §7 additivity (measure metrics only).
    pub additive: bool,
    pub ratio: Option<Ratio>,
    /// Nodes of the formula once derived metrics are written out (1 for a
    /// measure); bounded by [`expr::MAX_FORMULA_NODES`].
    pub formula_nodes: usize,
}

/// The two additive parts of a ratio metric (`numerator`/`denominator`).
#[derive(Debug, Clone, PartialEq)]
pub enum Ratio {
    /// A derived `a / b` over two additive measure metrics.
    Metrics {
        numerator: String,
        denominator: String,
    },
    /// An `avg(x)` measure: `sum(x) / count(x)`.
    Avg { argument: Expr },
}

#[derive(Debug, Clone)]
pub struct KpiInfo {
    /// Declared drivers, or the metrics of `decomposition`, or of the KPI
    /// metric's own expression.
    pub drivers: Vec<String>,
    /// The identity over metrics that equals the KPI's metric, which
    /// driver changes are attributed over: `decomposition`, or the KPI
    /// metric's own expression when it is derived.
    pub identity: Option<Expr>,
    /// Every metric whose values the KPI needs (its metric, drivers, their
    /// inputs), in dependency order.
    pub metrics: Vec<String>,
    /// Sources of the KPI's metric (its period range starts at their data).
    pub sources: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct SemanticModel {
    pub project: Project,
    pub sources: SourceMap,
    pub schemas: Schemas,
    pub metrics: HashMap<String, MetricInfo>,
    pub kpis: HashMap<String, KpiInfo>,
}

/// Analyzes a project. Returns the model even with errors so `check` can
/// report them all; callers must not plan a model whose diagnostics have
/// errors.
pub fn analyze(
    project: Project,
    sources: SourceMap,
    catalog: &mut dyn Catalog,
) -> (SemanticModel, Diagnostics) {
    let mut diags = Diagnostics::new();
    check_names(&project, &mut diags);
    let schemas = describe_sources(&project, catalog, &mut diags);
    check_sources(&project, &schemas, &sources, &mut diags);
    let metrics = expr::analyze_metrics(&project, &schemas, &sources, &mut diags);
    let kpis = expr::analyze_kpis(&project, &schemas, &sources, &metrics, &mut diags);
    hygiene(&project, &metrics, &mut diags);
    (
        SemanticModel {
            project,
            sources,
            schemas,
            metrics,
            kpis,
        },
        diags,
    )
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_names(project: &Project, diags: &mut Diagnostics) {
    let kinds: [(&str, Vec<(&String, Span)>); 3] = [
        (
            "source",
            project
                .sources
                .iter()
                .map(|s| (&s.name.value, s.name.span))
                .collect(),
        ),
        (
            "metric",
            project
                .metrics
                .iter()
                .map(|m| (&m.name.value, m.name.span))
                .collect(),
        ),
        (
            "KPI",
            project
                .kpis
                .iter()
                .map(|k| (&k.name.value, k.name.span))
                .collect(),
        ),
    ];
    for (kind, names) in kinds {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (name, span) in names {
            if !valid_name(name) {
                diags.push(
                    Diagnostic::new(Code::InvalidName, format!("invalid {kind} name `{name}`"))
                        .at(span, "names match [a-z][a-z0-9_]{0,62}")
                        .with_help(format!("try `{}`", suggest_name(name))),
                );
            }
            if let Some(first) = seen.get(name.as_str()) {
                diags.push(
                    Diagnostic::new(
                        Code::DuplicateName,
                        format!("{kind} `{name}` is defined twice"),
                    )
                    .at(span, "defined again here")
                    .with_secondary(*first, "first defined here")
                    .with_help("rename or remove one of them"),
                );
            } else {
                seen.insert(name, span);
            }
        }
    }
    for s in &project.sources {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for d in &s.dimensions {
            if !valid_name(&d.name.value) {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidName,
                        format!("invalid dimension name `{}`", d.name.value),
                    )
                    .at(d.name.span, "names match [a-z][a-z0-9_]{0,62}")
                    .with_help(format!(
                        "try `{}` with `expr:` for the column",
                        suggest_name(&d.name.value)
                    )),
                );
            }
            if let Some(first) = seen.get(d.name.value.as_str()) {
                diags.push(
                    Diagnostic::new(
                        Code::DuplicateDimension,
                        format!(
                            "source `{}` declares dimension `{}` twice",
                            s.name.value, d.name.value
                        ),
                    )
                    .at(d.name.span, "declared again here")
                    .with_secondary(*first, "first declared here"),
                );
            } else {
                seen.insert(&d.name.value, d.name.span);
            }
        }
    }
}

fn suggest_name(name: &str) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.insert(0, 'x');
    }
    s.truncate(63);
    s
}

fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn describe_sources(
    project: &Project,
    catalog: &mut dyn Catalog,
    diags: &mut Diagnostics,
) -> Schemas {
    let mut schemas = Schemas::new();
    for s in &project.sources {
        if let Relation::Path { path, .. } = &s.relation
            && !has_glob(&path.value)
            && !project.root.join(&path.value).exists()
        {
            diags.push(
                Diagnostic::new(
                    Code::PathNotFound,
                    format!("source `{}`: no file at `{}`", s.name.value, path.value),
                )
                .at(path.span, "this path does not exist")
                .with_help("paths are relative to the project directory"),
            );
            continue;
        }
        // A directory, FIFO or device: DuckDB would read garbage, or block
        // forever on a FIFO. (Files matched by a glob are DuckDB's to list.)
        if let Relation::Path { path, .. } = &s.relation
            && !has_glob(&path.value)
            && let Ok(meta) = std::fs::metadata(project.root.join(&path.value))
            && !meta.is_file()
        {
            let (what, help) = if meta.is_dir() {
                (
                    "a directory",
                    "name the files, e.g. with a glob such as `dir/*.parquet`",
                )
            } else {
                (
                    "a FIFO, socket or device",
                    "point at a CSV, Parquet or JSON file",
                )
            };
            diags.push(
                Diagnostic::new(
                    Code::PathNotFound,
                    format!(
                        "source `{}`: `{}` is not a file but {what}",
                        s.name.value, path.value
                    ),
                )
                .at(path.span, "not a regular file")
                .with_help(help),
            );
            continue;
        }
        match catalog.describe(project, s) {
            Ok(Some(cols)) => {
                schemas.insert(s.name.value.clone(), cols);
            }
            Ok(None) => {}
            Err(d) => diags.push(d),
        }
    }
    schemas
}

fn check_sources(
    project: &Project,
    schemas: &Schemas,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) {
    for s in &project.sources {
        let scope = Scope {
            project,
            source: s,
            schemas,
            sources,
        };
        let mut joined = HashSet::new();
        for j in &s.joins {
            let name = &j.source.value;
            if name == &s.name.value {
                diags.push(
                    Diagnostic::new(Code::InvalidJoin, format!("source `{name}` joins itself"))
                        .at(j.source.span, "a join names another source"),
                );
                continue;
            }
            if !joined.insert(name.clone()) {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidJoin,
                        format!("source `{}` joins `{name}` twice", s.name.value),
                    )
                    .at(j.source.span, "joined again here"),
                );
            }
            let Some(target) = project.source(name) else {
                if project.broken_sources.contains(name) {
                    continue;
                }
                let hint =
                    did_you_mean(name, project.sources.iter().map(|s| s.name.value.as_str()));
                diags.push(
                    Diagnostic::new(Code::UnknownSource, format!("unknown source `{name}`")).at(
                        j.source.span,
                        hint.map_or("no source of this name".into(), |h| {
                            format!("did you mean `{h}`?")
                        }),
                    ),
                );
                continue;
            };
            match &j.on {
                crate::model::JoinOn::Column(col) => {
                    for (src, what) in [(s, "the source"), (target, "the joined source")] {
                        diags.0.extend(missing_join_column(
                            schemas, src, what, &col.value, col.span,
                        ));
                    }
                }
                crate::model::JoinOn::Expr(e) => {
                    let pairs = expr::join_pairs(e, &s.name.value, name);
                    for (base_col, joined_col) in pairs.iter().flatten() {
                        for (src, col) in [(s, base_col), (target, joined_col)] {
                            let span = resolve::locate(sources, e.span, col);
                            diags
                                .0
                                .extend(missing_join_column(schemas, src, "source", col, span));
                        }
                    }
                    if pairs.is_none() {
                        diags.push(
                            Diagnostic::new(
                                Code::InvalidJoin,
                                "a join condition must be equalities between the two sources",
                            )
                            .at(e.span, "cannot use this condition")
                            .with_help(format!(
                                "e.g. `{}.customer_id = {name}.id` (several joined with AND)",
                                s.name.value
                            )),
                        );
                    }
                }
            }
        }
        for d in &s.dimensions {
            if let Err(errs) = scope.resolve(&d.expr, false) {
                for e in errs {
                    diags.push(e);
                }
            }
            if let Some(a) = aggregates::contains_aggregate(&d.expr.expr) {
                diags.push(
                    Diagnostic::new(
                        Code::InvalidExpression,
                        format!("dimension `{}` uses the aggregate `{a}`", d.name.value),
                    )
                    .at(d.expr.span, "a dimension is a per-row expression"),
                );
            }
        }
        if let Some(t) = &s.time
            && let Err(errs) = scope.resolve(t, false)
        {
            for e in errs {
                diags.push(e);
            }
        }
    }
}

/// KPI211 when `src`'s known schema lacks the join column `col`.
fn missing_join_column(
    schemas: &Schemas,
    src: &Source,
    what: &str,
    col: &str,
    span: Span,
) -> Option<Diagnostic> {
    let cols = schemas.get(&src.name.value)?;
    if cols.iter().any(|c| c.name.eq_ignore_ascii_case(col)) {
        return None;
    }
    let hint = did_you_mean(col, cols.iter().map(|c| c.name.as_str()));
    Some(
        Diagnostic::new(
            Code::UnknownColumn,
            format!(
                "{what} `{}` has no column `{col}` to join on",
                src.name.value
            ),
        )
        .at(
            span,
            hint.map_or("unknown column".into(), |h| format!("did you mean `{h}`?")),
        ),
    )
}

fn hygiene(project: &Project, metrics: &HashMap<String, MetricInfo>, diags: &mut Diagnostics) {
    let mut by_owner: HashMap<&str, Vec<&crate::model::Kpi>> = HashMap::new();
    for k in &project.kpis {
        if let Some(o) = &k.owner {
            by_owner.entry(o.value.as_str()).or_default().push(k);
        }
        let at = Span::new(k.name.span.file, k.name.span.start, k.name.span.end);
        if k.target.is_none() && !k.target_invalid {
            let cumulative = metric_is_cumulative(project, metrics, &k.metric.value);
            if cumulative {
                diags.push(
                    Diagnostic::new(
                        Code::CumulativeWithoutTarget,
                        format!("KPI `{}` is cumulative and has no target", k.name.value),
                    )
                    .at(at, "a running total only grows")
                    .with_help("add a `target`, or make the KPI track the period's own value"),
                );
            } else {
                diags.push(
                    Diagnostic::new(
                        Code::KpiWithoutTarget,
                        format!("KPI `{}` has no target", k.name.value),
                    )
                    .at(at, "no verdict without a target")
                    .with_help("add `target:` (a number, {change, vs}, {values} or {file})"),
                );
            }
        }
        if k.owner.is_none() {
            diags.push(
                Diagnostic::new(
                    Code::KpiWithoutOwner,
                    format!("KPI `{}` has no owner", k.name.value),
                )
                .at(at, "nobody is accountable")
                .with_help("add `owner:`"),
            );
        }
        if k.action_plan.is_none() {
            diags.push(
                Diagnostic::new(
                    Code::KpiWithoutActionPlan,
                    format!("KPI `{}` has no action plan", k.name.value),
                )
                .at(at, "no Now What")
                .with_help("add `action_plan:` saying what happens when it is off track"),
            );
        }
    }
    let mut owners: Vec<_> = by_owner
        .into_iter()
        .filter(|(_, ks)| ks.len() > 5)
        .collect();
    owners.sort_by_key(|(o, _)| *o);
    for (owner, kpis) in owners {
        let Some(o) = kpis[5].owner.as_ref() else {
            continue;
        };
        diags.push(
            Diagnostic::new(
                Code::TooManyKpis,
                format!("owner `{owner}` has {} KPIs", kpis.len()),
            )
            .at(o.span, "the sixth KPI of this owner")
            .with_help("keep 3-5 KPIs per team; track the rest as diagnostic metrics"),
        );
    }
}

fn metric_is_cumulative(
    project: &Project,
    metrics: &HashMap<String, MetricInfo>,
    name: &str,
) -> bool {
    let Some(info) = metrics.get(name) else {
        return false;
    };
    info.leaves.iter().any(|leaf| {
        project.metric(leaf).is_some_and(|m| {
            matches!(
                m.kind,
                MetricKind::Measure {
                    accumulation: Accumulation::ToDate(_) | Accumulation::All,
                    ..
                }
            )
        })
    })
}
