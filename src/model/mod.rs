//! Model: raw definitions → typed [`Project`]. Renders every SQL field
//! through the [`template`] stage and parses it with sqlparser; gives enums,
//! numbers and dates their types; reads target files.
//!
//! In: [`RawProject`] + [`SourceMap`]. Out: a [`Project`] holding every
//! definition that could be typed, plus diagnostics for the ones that could
//! not (so the semantic stage can still report the rest in the same run).

pub mod period;
pub mod sql_field;
pub mod template;
pub mod types;

use std::path::Path;

use chrono::NaiveDate;

pub use types::*;

use crate::dbt::DbtOptions;
use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::load::raw::{
    RawConfig, RawDimension, RawJoin, RawKpi, RawMetric, RawProject, RawSource, RawTarget, Text,
};
use crate::source::{SourceMap, Span, Spanned};
use template::Templater;

/// Types a raw project. Never fails as a whole: definitions that cannot be
/// typed are left out and reported.
pub fn model_from_raw(
    raw: &RawProject,
    sources: &SourceMap,
    root: &Path,
    earlier: &Diagnostics,
) -> (Project, Diagnostics) {
    model_from_raw_with(raw, sources, root, earlier, &DbtOptions::default())
}

/// [`model_from_raw`] with the command line's dbt options (`--dbt-project`,
/// refs kept as Jinja for `kpic dbt emit`).
pub fn model_from_raw_with(
    raw: &RawProject,
    sources: &SourceMap,
    root: &Path,
    earlier: &Diagnostics,
    dbt_options: &DbtOptions,
) -> (Project, Diagnostics) {
    let mut diags = Diagnostics::new();
    let dbt = crate::dbt::load(raw.config.as_ref(), root, dbt_options, &mut diags)
        .map(std::sync::Arc::new);
    // Where load already found errors: a key it refused is not "missing".
    let reported: Vec<Span> = earlier
        .iter()
        .filter(|d| d.is_error())
        .filter_map(|d| d.primary.as_ref().map(|l| l.span))
        .collect();
    let templater = Templater::with_dbt(raw, sources, &mut diags, dbt.clone());
    let mut cx = Cx {
        reported,
        sources,
        templater: &templater,
        diags: &mut diags,
        target_files: &raw.target_files,
        kpi_names: raw
            .files
            .iter()
            .flat_map(|f| &f.kpis)
            .filter_map(|k| k.name.as_ref().map(|n| n.value.clone()))
            .collect(),
        rows_checked: Default::default(),
    };
    let mut config = cx.config(raw.config.as_ref());
    if let Some(dbt) = &dbt {
        cx.dbt_dialect(&mut config, raw.config.as_ref(), dbt);
        config.dbt = Some(dbt.clone());
    }
    let mut project = Project {
        root: root.to_path_buf(),
        config,
        sources: Vec::new(),
        metrics: Vec::new(),
        kpis: Vec::new(),
        broken_sources: Default::default(),
        broken_metrics: Default::default(),
    };
    for file in &raw.files {
        for s in &file.sources {
            match cx.source(s) {
                Some(s) => project.sources.push(s),
                None => project
                    .broken_sources
                    .extend(s.name.as_ref().map(|n| n.value.clone())),
            }
        }
        for m in &file.metrics {
            match cx.metric(m) {
                Some(m) => project.metrics.push(m),
                None => project
                    .broken_metrics
                    .extend(m.name.as_ref().map(|n| n.value.clone())),
            }
        }
    }
    for file in &raw.files {
        for k in &file.kpis {
            if let Some(k) = cx.kpi(k) {
                project.kpis.push(k);
            }
        }
    }
    (project, diags)
}

struct Cx<'a> {
    reported: Vec<Span>,
    sources: &'a SourceMap,
    templater: &'a Templater,
    diags: &'a mut Diagnostics,
    target_files: &'a std::collections::BTreeMap<String, Option<crate::source::FileId>>,
    /// Every KPI name written, valid or not: a target file row naming
    /// another one is reported (KPI257).
    kpi_names: Vec<String>,
    /// Target files whose `kpi` column was checked: a file several KPIs
    /// read is reported once.
    rows_checked: std::collections::HashSet<String>,
}

/// A free text field; the final line break of a YAML block scalar (`|`) is
/// not part of the text.
fn text(t: &Option<Text>) -> Option<String> {
    t.as_ref().map(|t| t.value.trim_end().to_string())
}

impl Cx<'_> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Whether load already reported an error inside `span`.
    fn already_reported(&self, span: Span) -> bool {
        self.reported
            .iter()
            .any(|r| r.file == span.file && r.start >= span.start && r.end <= span.end)
    }

    fn required<'t>(
        &mut self,
        value: &'t Option<Text>,
        key: &str,
        what: &str,
        span: Span,
    ) -> Option<&'t Text> {
        if value.is_none() && !self.already_reported(span) {
            self.error(
                Diagnostic::new(Code::MissingKey, format!("{what} has no `{key}`"))
                    .at(
                        Span::new(span.file, span.start, span.start),
                        format!("add `{key}:` here"),
                    )
                    .with_help(format!("every {what} needs `{key}`")),
            );
        }
        value.as_ref()
    }

    fn expr(&mut self, field: &Text) -> Option<SqlExpr> {
        self.expr_with(field, |text| text)
    }

    /// A derived metric's `expr`: `offset(metric, N unit)` is not SQL, so
    /// `N unit` is rewritten to `N*unit` (same length: spans stay exact)
    /// before parsing; semantic reads it back.
    fn derived_expr(&mut self, field: &Text) -> Option<SqlExpr> {
        self.expr_with(field, sql_field::rewrite_offsets)
    }

    fn expr_with(&mut self, field: &Text, prepare: impl Fn(String) -> String) -> Option<SqlExpr> {
        let rendered = prepare(self.reported(self.templater.render(field))?);
        let mut e = self.reported(sql_field::parse_expr(&rendered, field.span, self.sources))?;
        self.templater.substitute_sql(&mut e.expr);
        e.text = self.templater.substitute_text(e.text);
        Some(e)
    }

    /// The value, or `None` with its diagnostic recorded.
    fn reported<T>(&mut self, result: Result<T, Diagnostic>) -> Option<T> {
        result.map_err(|d| self.error(d)).ok()
    }

    fn one_of<T: Copy>(&mut self, field: &Text, what: &str, options: &[(&str, T)]) -> Option<T> {
        let v = field.value.trim();
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v) {
            return Some(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let label = match did_you_mean(v, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", names.join(", ")),
        };
        self.error(
            Diagnostic::new(Code::InvalidValue, format!("invalid {what} `{v}`"))
                .at(field.span, label)
                .with_help(format!("{what} is one of: {}", names.join(", "))),
        );
        None
    }

    fn config(&mut self, raw: Option<&RawConfig>) -> Config {
        let mut config = Config {
            name: "kpic_project".into(),
            dialect: Spanned::new("duckdb".into(), Span::new(crate::source::FileId(0), 0, 0)),
            database: "target/kpic.duckdb".into(),
            target_dir: "target".into(),
            as_of: AsOf::Latest,
            memory_limit: None,
            dbt: None,
        };
        let Some(raw) = raw else { return config };
        if let Some(n) = &raw.name {
            config.name = n.value.clone();
        }
        if let Some(t) = &raw.target {
            config.target_dir = t.value.clone();
            config.database = format!("{}/kpic.duckdb", t.value.trim_end_matches('/'));
        }
        if let Some(w) = &raw.warehouse {
            if let Some(d) = &w.dialect {
                let names: Vec<(&str, ())> =
                    crate::sql::DIALECTS.iter().map(|n| (*n, ())).collect();
                if self.one_of(d, "dialect", &names).is_some() {
                    config.dialect = d.clone();
                }
            }
            if let Some(db) = &w.database {
                config.database = db.value.clone();
            }
        }
        if let Some(m) = &raw.memory_limit {
            config.memory_limit = Some(m.value.clone());
        }
        if let Some(a) = &raw.as_of {
            match parse_as_of(&a.value) {
                Some(v) => config.as_of = v,
                None => self.error(
                    Diagnostic::new(Code::InvalidValue, format!("invalid as_of `{}`", a.value))
                        .at(a.span, "expected `latest`, `today` or a date")
                        .with_help("write a date as YYYY-MM-DD"),
                ),
            }
        }
        config
    }

    /// The dialect of the dbt project's adapter, unless kpic.yml sets
    /// `warehouse.dialect`.
    fn dbt_dialect(
        &mut self,
        config: &mut Config,
        raw: Option<&RawConfig>,
        dbt: &crate::dbt::DbtContext,
    ) {
        if raw
            .and_then(|r| r.warehouse.as_ref())
            .is_some_and(|w| w.dialect.is_some())
        {
            return;
        }
        let Some(adapter) = dbt.manifest.adapter_type.as_deref() else {
            return;
        };
        let span = dbt.span.unwrap_or(config.dialect.span);
        match crate::dbt::dialect_for_adapter(adapter) {
            Some(d) => config.dialect = Spanned::new(d.to_string(), span),
            None => {
                let mut d = Diagnostic::new(
                    Code::DbtAdapterUnknown,
                    format!("the dbt project's adapter `{adapter}` has no kpic dialect"),
                )
                .with_help(format!(
                    "set `warehouse: {{dialect: …}}` in kpic.yml; dialects: {}",
                    crate::sql::DIALECTS.join(", ")
                ));
                if let Some(s) = dbt.span {
                    d = d.at(s, "the dbt project is configured here");
                }
                self.error(d);
            }
        }
    }

    fn source(&mut self, raw: &RawSource) -> Option<Source> {
        let name = self
            .required(&raw.name, "name", "a source", raw.span)?
            .clone();
        let relation = self.relation(raw, &name)?;
        let time = raw.time.as_ref().and_then(|t| self.expr(t));
        let dimensions = raw
            .dimensions
            .iter()
            .filter_map(|d| self.dimension(d))
            .collect();
        let joins = raw.joins.iter().filter_map(|j| self.join(j)).collect();
        Some(Source {
            name,
            span: raw.span,
            label: text(&raw.label),
            description: text(&raw.description),
            relation,
            time,
            dimensions,
            joins,
        })
    }

    fn relation(&mut self, raw: &RawSource, name: &Text) -> Option<Relation> {
        let given: Vec<(&str, &Text)> = [
            ("path", &raw.path),
            ("table", &raw.table),
            ("sql", &raw.sql),
            ("ref", &raw.dbt_ref),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let keys: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
        let ok_combo = matches!(keys.as_slice(), [_] | ["path", "table"]);
        if !ok_combo {
            let mut d = Diagnostic::new(
                Code::SourceRelation,
                format!(
                    "source `{}` needs exactly one of `path`, `table`, `sql`, `ref`{}",
                    name.value,
                    if keys.is_empty() {
                        String::new()
                    } else {
                        format!(" (it has {})", keys.join(", "))
                    }
                ),
            )
            .with_help("`path` and `table` may be given together: path on DuckDB, table elsewhere");
            d = match given.get(1) {
                Some((k, v)) => d.at(v.span, format!("`{k}` conflicts with `{}`", given[0].0)),
                None => d.at(name.span, "this source has no relation"),
            };
            self.error(d);
            return None;
        }
        let object_name =
            |cx: &mut Self, t: &Text| -> Option<Spanned<sqlparser::ast::ObjectName>> {
                let rendered = cx.reported(cx.templater.render(t))?;
                let mut name =
                    cx.reported(sql_field::parse_object_name(&rendered, t.span, cx.sources))?;
                cx.templater.substitute_sql(&mut name);
                Some(Spanned::new(name, t.span))
            };
        if let Some(path) = &raw.path {
            let table = match &raw.table {
                Some(t) => Some(object_name(self, t)?),
                None => None,
            };
            let rendered = self.reported(self.templater.render(path))?;
            let rendered = self.templater.substitute_text(rendered);
            return Some(Relation::Path {
                path: Spanned::new(rendered, path.span),
                table,
            });
        }
        if let Some(t) = &raw.table {
            return object_name(self, t).map(Relation::Table);
        }
        if let Some(r) = &raw.dbt_ref {
            // Through the manifest: the relation name verbatim, as one
            // identifier the printer copies as it is.
            if let Some(resolved) = self.templater.resolve_ref_key(r) {
                let relation = self.reported(resolved)?;
                let name =
                    sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(relation)]);
                return Some(Relation::DbtRef(Spanned::new(name, r.span)));
            }
            return object_name(self, r).map(Relation::DbtRef);
        }
        let sql = raw.sql.as_ref()?;
        let rendered = self.reported(self.templater.render(sql))?;
        let mut query = self.reported(sql_field::parse_query(&rendered, sql.span, self.sources))?;
        self.templater.substitute_sql(&mut query);
        Some(Relation::Sql(Spanned::new(query, sql.span)))
    }

    fn dimension(&mut self, raw: &RawDimension) -> Option<Dimension> {
        let name = self
            .required(&raw.name, "name", "a dimension", raw.span)?
            .clone();
        let expr = match &raw.expr {
            Some(e) => self.expr(e)?,
            None => SqlExpr {
                expr: sqlparser::ast::Expr::Identifier(sqlparser::ast::Ident::new(
                    name.value.clone(),
                )),
                text: name.value.clone(),
                span: name.span,
            },
        };
        Some(Dimension {
            name,
            label: text(&raw.label),
            description: text(&raw.description),
            expr,
        })
    }

    fn join(&mut self, raw: &RawJoin) -> Option<Join> {
        let source = self
            .required(&raw.source, "source", "a join", raw.span)?
            .clone();
        let on = self.required(&raw.on, "on", "a join", raw.span)?;
        let simple = on
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !on.value.is_empty();
        let on = if simple {
            JoinOn::Column(on.clone())
        } else {
            JoinOn::Expr(self.expr(on)?)
        };
        Some(Join {
            source,
            span: raw.span,
            on,
        })
    }

    fn metric(&mut self, raw: &RawMetric) -> Option<Metric> {
        let name = self
            .required(&raw.name, "name", "a metric", raw.span)?
            .clone();
        let format = match &raw.format {
            Some(f) => self.one_of(
                f,
                "format",
                &[
                    ("number", Format::Number),
                    ("currency", Format::Currency),
                    ("percent", Format::Percent),
                ],
            )?,
            None => Format::Number,
        };
        let fill_null = match &raw.fill_null {
            Some(f) => Some(self.number(f, "fill_null")?),
            None => None,
        };
        let kind = match (&raw.measure, &raw.expr) {
            (Some(_), Some(e)) => {
                self.error(
                    Diagnostic::new(
                        Code::MetricKind,
                        format!("metric `{}` has both `measure` and `expr`", name.value),
                    )
                    .at(e.span, "a metric is a measure or derived, not both")
                    .with_help("keep `measure` (with `source`) or `expr`"),
                );
                return None;
            }
            (None, Some(e)) => {
                for (key, v) in [
                    ("source", &raw.source),
                    ("filter", &raw.filter),
                    ("window", &raw.window),
                    ("to_date", &raw.to_date),
                ] {
                    if let Some(v) = v {
                        self.error(
                            Diagnostic::new(
                                Code::MetricKind,
                                format!("derived metric `{}` cannot have `{key}`", name.value),
                            )
                            .at(v.span, format!("`{key}` applies to measure metrics only"))
                            .with_help("put it on the measure metrics this expression uses"),
                        );
                    }
                }
                MetricKind::Derived {
                    expr: self.derived_expr(e)?,
                }
            }
            (Some(m), None) => {
                let Some(source) = raw.source.clone() else {
                    self.error(
                        Diagnostic::new(
                            Code::MissingKey,
                            format!("measure metric `{}` has no `source`", name.value),
                        )
                        .at(name.span, "add `source:` to this metric")
                        .with_help("a measure is computed over the rows of one source"),
                    );
                    return None;
                };
                let measure = self.expr(m);
                let filter = raw.filter.as_ref().and_then(|f| self.expr(f));
                let accumulation = self.accumulation(raw)?;
                MetricKind::Measure {
                    source,
                    measure: measure?,
                    filter,
                    accumulation,
                }
            }
            (None, None) => {
                if self.already_reported(raw.span) {
                    return None;
                }
                if let Some(source) = &raw.source {
                    self.error(
                        Diagnostic::new(
                            Code::MetricKind,
                            format!("metric `{}` has a `source` but no `measure`", name.value),
                        )
                        .at(source.span, "a measure metric needs `measure:`")
                        .with_help("add e.g. `measure: count(*)`, or make it derived with `expr:`"),
                    );
                    return None;
                }
                self.error(
                    Diagnostic::new(
                        Code::MissingKey,
                        format!("metric `{}` has neither `measure` nor `expr`", name.value),
                    )
                    .at(name.span, "this metric computes nothing")
                    .with_help(
                        "add `source` + `measure: sum(col)`, or `expr: a / b` over other metrics",
                    ),
                );
                return None;
            }
        };
        let period_agg = match &raw.period_agg {
            None => PeriodAgg::Last,
            Some(p) => {
                let rolling = matches!(
                    &kind,
                    MetricKind::Measure { accumulation, .. } if *accumulation != Accumulation::None
                );
                if !rolling {
                    self.error(
                        Diagnostic::new(
                            Code::MetricKind,
                            format!(
                                "metric `{}` has `period_agg` but no `window` or `to_date`",
                                name.value
                            ),
                        )
                        .at(p.span, "period_agg picks a daily value of a rolling metric")
                        .with_help("remove it, or add `window:` or `to_date:`"),
                    );
                    return None;
                }
                self.one_of(
                    p,
                    "period_agg",
                    &[
                        ("last", PeriodAgg::Last),
                        ("first", PeriodAgg::First),
                        ("average", PeriodAgg::Average),
                    ],
                )?
            }
        };
        Some(Metric {
            name,
            span: raw.span,
            label: text(&raw.label),
            description: text(&raw.description),
            format,
            fill_null,
            kind,
            period_agg,
        })
    }

    fn accumulation(&mut self, raw: &RawMetric) -> Option<Accumulation> {
        match (&raw.window, &raw.to_date) {
            (Some(w), Some(_)) => {
                self.error(
                    Diagnostic::new(
                        Code::MetricKind,
                        "a metric cannot have both `window` and `to_date`",
                    )
                    .at(w.span, "remove `window` or `to_date`"),
                );
                None
            }
            (Some(w), None) => {
                let v = w.value.trim().to_ascii_lowercase();
                if v == "all" {
                    return Some(Accumulation::All);
                }
                let mut parts = v.split_whitespace();
                let n = parts.next().and_then(|n| n.parse::<u32>().ok());
                let unit = parts.next();
                let days = match (n, unit, parts.next()) {
                    (Some(n), Some("day" | "days"), None) if n > 0 => Some(n),
                    (Some(n), Some("week" | "weeks"), None) if n > 0 => n.checked_mul(7),
                    _ => None,
                };
                match days {
                    Some(days) if days <= 36_600 => Some(Accumulation::Window { days }),
                    _ => {
                        self.error(
                            Diagnostic::new(
                                Code::InvalidValue,
                                format!("invalid window `{}`", w.value),
                            )
                            .at(w.span, "expected `N days`, `N weeks` or `all`")
                            .with_help("e.g. `window: 30 days`"),
                        );
                        None
                    }
                }
            }
            (None, Some(t)) => self
                .one_of(
                    t,
                    "to_date grain",
                    &[
                        ("week", Grain::Week),
                        ("month", Grain::Month),
                        ("quarter", Grain::Quarter),
                        ("year", Grain::Year),
                    ],
                )
                .map(Accumulation::ToDate),
            (None, None) => Some(Accumulation::None),
        }
    }

    fn number(&mut self, t: &Text, what: &str) -> Option<f64> {
        match t.value.trim().replace('_', "").parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.error(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("{what} `{}` is not a number", t.value),
                    )
                    .at(t.span, "expected a number"),
                );
                None
            }
        }
    }

    /// `10%` or `0.1` (the same thing); `+15%` / `-0.3` for changes.
    fn fraction(&mut self, t: &Text, what: &str) -> Option<f64> {
        let v = t.value.trim();
        let parsed = match v.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().ok().map(|p| p / 100.0),
            None => v.parse::<f64>().ok(),
        };
        match parsed {
            Some(p) if p.is_finite() => Some(p),
            _ => {
                self.error(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("{what} `{v}` is not a percentage"),
                    )
                    .at(t.span, "expected e.g. `10%` or `0.1`"),
                );
                None
            }
        }
    }

    fn list(&mut self, l: &Option<Spanned<Vec<Text>>>) -> Vec<Spanned<String>> {
        l.as_ref().map(|l| l.value.clone()).unwrap_or_default()
    }

    fn kpi(&mut self, raw: &RawKpi) -> Option<Kpi> {
        let name = self.required(&raw.name, "name", "a KPI", raw.span)?.clone();
        let metric = self
            .required(&raw.metric, "metric", "a KPI", raw.span)
            .cloned();
        let grain = match &raw.grain {
            Some(g) => self.one_of(
                g,
                "grain",
                &[
                    ("day", Grain::Day),
                    ("week", Grain::Week),
                    ("month", Grain::Month),
                    ("quarter", Grain::Quarter),
                    ("year", Grain::Year),
                ],
            ),
            None => {
                self.required(&raw.grain, "grain", "a KPI", raw.span);
                None
            }
        };
        let direction = match &raw.direction {
            Some(d) => self.one_of(
                d,
                "direction",
                &[
                    ("higher_is_better", Direction::HigherIsBetter),
                    ("lower_is_better", Direction::LowerIsBetter),
                ],
            ),
            // Most KPIs are "more is better"; say so in kpi_definitions.
            None => Some(Direction::HigherIsBetter),
        };
        let indicator = match &raw.indicator {
            Some(i) => Some(self.one_of(
                i,
                "indicator",
                &[
                    ("leading", Indicator::Leading),
                    ("lagging", Indicator::Lagging),
                ],
            )?),
            None => None,
        };
        let tolerance = match &raw.tolerance {
            Some(t) => {
                let v = self.fraction(t, "tolerance")?;
                if !(0.0..1.0).contains(&v) {
                    self.error(
                        Diagnostic::new(
                            Code::InvalidValue,
                            format!("tolerance `{}` is outside [0, 1)", t.value),
                        )
                        .at(t.span, "expected e.g. `10%` or `0.1`")
                        .with_help("tolerance is the at_risk band below (or above) the target"),
                    );
                    return None;
                }
                v
            }
            None => 0.1,
        };
        let target = match (&raw.target, grain) {
            (Some(t), Some(g)) => self.target(t, g, &name),
            _ => None,
        };
        let target_invalid = raw.target.is_some() && target.is_none();
        let filter = raw.filter.as_ref().and_then(|f| self.expr(f));
        let decomposition = raw.decomposition.as_ref().and_then(|d| self.expr(d));
        let drivers = raw.drivers.as_ref().map(|d| d.value.clone());
        let breakdowns = self.list(&raw.breakdowns);
        let related = self.list(&raw.related);
        Some(Kpi {
            target_invalid,
            name,
            span: raw.span,
            metric: metric?,
            label: text(&raw.label),
            description: text(&raw.description),
            objective: text(&raw.objective),
            owner: raw.owner.clone(),
            grain: grain?,
            direction: direction?,
            indicator,
            target,
            tolerance,
            filter,
            drivers,
            decomposition,
            breakdowns,
            related,
            rationale: text(&raw.rationale),
            measurement: text(&raw.measurement),
            review: text(&raw.review),
            action_plan: text(&raw.action_plan),
        })
    }

    fn target(&mut self, raw: &RawTarget, grain: Grain, kpi: &Text) -> Option<Spanned<Target>> {
        match raw {
            RawTarget::Absolute(t) => {
                let v = self.number(t, "target")?;
                Some(Spanned::new(Target::Absolute(v), t.span))
            }
            RawTarget::Change { span, change, vs } => {
                let change_t = self.required(change, "change", "a relative target", *span)?;
                let vs_t = self.required(vs, "vs", "a relative target", *span)?;
                let change = self.fraction(change_t, "change")?;
                let vs = self.one_of(
                    vs_t,
                    "comparison",
                    &[
                        ("previous", Compare::Previous),
                        ("last_year", Compare::LastYear),
                    ],
                )?;
                Some(Spanned::new(Target::Change { change, vs }, *span))
            }
            RawTarget::Values { span, values } => {
                let mut out = Vec::new();
                for (label, value) in values {
                    let (Some(label), Some(v)) = (
                        self.period_label(label, grain),
                        self.number(value, "target"),
                    ) else {
                        continue;
                    };
                    out.push((label, v));
                }
                Some(Spanned::new(Target::Values(out), *span))
            }
            RawTarget::File { span, path } => {
                let values = self.target_file(path, grain, kpi)?;
                Some(Spanned::new(Target::Values(values), *span))
            }
        }
    }

    /// Checks a period label against the KPI's grain; returns it normalized.
    fn period_label(&mut self, t: &Text, grain: Grain) -> Option<String> {
        match period::parse_label(&t.value) {
            Some((g, start)) if g == grain => Some(period::label(g, start)),
            Some((g, _)) => {
                self.error(
                    Diagnostic::new(
                        Code::TargetLabel,
                        format!(
                            "target label `{}` is a {} but the KPI's grain is {}",
                            t.value,
                            g.as_str(),
                            grain.as_str()
                        ),
                    )
                    .at(
                        t.span,
                        format!(
                            "expected a {} label like `{}`",
                            grain.as_str(),
                            period::example_label(grain)
                        ),
                    ),
                );
                None
            }
            None => {
                self.error(
                    Diagnostic::new(Code::TargetLabel, format!("`{}` is not a period label", t.value))
                        .at(t.span, format!("expected a {} label like `{}`", grain.as_str(), period::example_label(grain)))
                        .with_help("labels: 2026-03-15 (day), 2026-W05 (week), 2026-03 (month), 2026-Q1 (quarter), 2026 (year)"),
                );
                None
            }
        }
    }

    /// Reads `period,target[,kpi]` rows; rows for other KPIs are skipped,
    /// and a row naming no KPI of the project is a warning (KPI257, once
    /// per file and name, at its first row). The file was read by `load`
    /// (size, regular file and UTF-8 checked); problems point at its lines,
    /// with the KPI's `file:` as context.
    fn target_file(&mut self, path: &Text, grain: Grain, kpi: &Text) -> Option<Vec<(String, f64)>> {
        let Some(loaded) = self.target_files.get(&path.value) else {
            // Not read by `load` (a project assembled in memory).
            self.error(
                Diagnostic::new(
                    Code::TargetFile,
                    format!("target file `{}` was not loaded", path.value),
                )
                .at(path.span, "this target file"),
            );
            return None;
        };
        // `None`: unreadable, already reported.
        let id = (*loaded)?;
        let file = self.sources.get(id);
        let text = file.text.as_str();
        // The span of the line holding byte `at` of the CSV.
        let line_at = |at: usize| {
            let at = at.min(text.len());
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find(['\n', '\r']).map_or(text.len(), |i| at + i);
            Span::new(id, start, end)
        };
        let fail = |cx: &mut Self, msg: String, at: usize, label: &str| {
            cx.error(
                Diagnostic::new(Code::TargetFile, msg)
                    .at(line_at(at), label.to_string())
                    .with_secondary(path.span, format!("target file of KPI `{}`", kpi.value))
                    .with_help(
                        "a target file is a CSV with columns period, target (and optionally kpi)",
                    ),
            );
            None
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
            Err(e) => {
                let at = e.position().map_or(0, |p| p.byte() as usize);
                return fail(
                    self,
                    format!("target file `{}` is not CSV: {e}", path.value),
                    at,
                    "not CSV",
                );
            }
        };
        let col = |n: &str| headers.iter().position(|h| h == n);
        let (Some(pi), Some(ti)) = (col("period"), col("target")) else {
            // The file as a whole is wrong: point at the KPI's `file:`.
            self.error(
                Diagnostic::new(
                    Code::TargetFile,
                    format!(
                        "target file `{}` lacks a `period` or `target` column (it has: {})",
                        path.value,
                        headers.join(", ")
                    ),
                )
                .at(path.span, "this target file")
                .with_secondary(line_at(0), "its header")
                .with_help(
                    "a target file is a CSV with columns period, target (and optionally kpi)",
                ),
            );
            return None;
        };
        let ki = col("kpi");
        let check_names = ki.is_some() && self.rows_checked.insert(path.value.clone());
        // Unknown KPI names: (name, first row's byte, line, rows).
        let mut unknown: Vec<(String, usize, u64, usize)> = Vec::new();
        let mut out = Vec::new();
        for rec in reader.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let at = e.position().map_or(text.len(), |p| p.byte() as usize);
                    let line = e.position().map_or(0, |p| p.line());
                    return fail(
                        self,
                        format!("target file `{}` line {line}: {e}", path.value),
                        at,
                        "not a CSV row",
                    );
                }
            };
            let (at, line) = rec
                .position()
                .map_or((0, 0), |p| (p.byte() as usize, p.line()));
            if let Some(ki) = ki {
                let named = rec.get(ki).map_or("", str::trim);
                if named != kpi.value {
                    if check_names && !self.kpi_names.iter().any(|k| k == named) {
                        match unknown.iter_mut().find(|u| u.0 == named) {
                            Some(u) => u.3 += 1,
                            None => unknown.push((named.to_string(), at, line, 1)),
                        }
                    }
                    continue;
                }
            }
            let label = rec.get(pi).unwrap_or("").trim();
            let value = rec.get(ti).unwrap_or("").trim();
            let parsed = period::parse_label(label);
            match (parsed, value.parse::<f64>()) {
                (Some((g, start)), Ok(v)) if g == grain && v.is_finite() => {
                    out.push((period::label(g, start), v))
                }
                (Some((g, _)), Ok(_)) if g != grain => {
                    self.error(
                        Diagnostic::new(
                            Code::TargetLabel,
                            format!(
                                "target file `{}` line {line}: label `{label}` is a {} but the KPI's grain is {}",
                                path.value,
                                g.as_str(),
                                grain.as_str()
                            ),
                        )
                        .at(
                            line_at(at),
                            format!(
                                "expected a {} label like `{}`",
                                grain.as_str(),
                                period::example_label(grain)
                            ),
                        )
                        .with_secondary(path.span, format!("target file of KPI `{}`", kpi.value)),
                    );
                }
                _ => {
                    return fail(
                        self,
                        format!(
                            "target file `{}` line {line}: `{label}`, `{value}` is not a period label and a number",
                            path.value,
                        ),
                        at,
                        "expected a period label and a number",
                    );
                }
            }
        }
        for (named, at, line, rows) in unknown {
            self.unknown_target_kpi(path, &named, line_at(at), line, rows);
        }
        Some(out)
    }

    /// KPI257: rows of target file `path` name `named`, which is no KPI of
    /// the project; `span` is the first such row (line `line`).
    fn unknown_target_kpi(&mut self, path: &Text, named: &str, span: Span, line: u64, rows: usize) {
        let what = if named.is_empty() {
            "names no KPI".to_string()
        } else {
            format!("names `{named}`, which is not a KPI")
        };
        let mut d = Diagnostic::new(
            Code::TargetFileUnknownKpi,
            format!(
                "target file `{}` line {line} {what}: the row is ignored",
                path.value
            ),
        );
        d = match did_you_mean(named, self.kpi_names.iter().map(String::as_str)) {
            Some(h) => d.at(span, format!("did you mean `{h}`?")),
            None => d.at(span, "no KPI of this name").with_note(format!(
                "KPIs: {}",
                self.kpi_names
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        if rows > 1 {
            d = d.with_note(format!("{rows} rows name it; this is the first"));
        }
        self.diags
            .push(d.with_secondary(path.span, "target file named here"));
    }
}

pub fn parse_as_of(s: &str) -> Option<AsOf> {
    match s.trim() {
        "latest" => Some(AsOf::Latest),
        "today" => Some(AsOf::Today),
        d => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .ok()
            .map(AsOf::Date),
    }
}
