//! [`Node`] trees → raw definitions.
//!
//! In: the root node of a model file or of kpic.yml. Out: [`RawFile`] /
//! [`RawConfig`] plus diagnostics for unknown keys (with a "did you mean"
//! hint) and wrong shapes. Scalars stay text with their spans; presence of
//! required keys and the meaning of values are checked by `model`. Every
//! problem in a file is reported: a bad entry is skipped, the rest is read.

use crate::diagnostics::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::load::raw::{
    Node, NodeKind, RawConfig, RawDbt, RawDimension, RawFile, RawJoin, RawKpi, RawMetric,
    RawSource, RawTarget, RawWarehouse, Text,
};
use crate::source::{FileId, Span, Spanned};

const FILE_KEYS: &[&str] = &["sources", "metrics", "kpis"];
const SOURCE_KEYS: &[&str] = &[
    "name",
    "label",
    "description",
    "path",
    "table",
    "sql",
    "ref",
    "time",
    "dimensions",
    "joins",
];
const DIMENSION_KEYS: &[&str] = &["name", "expr", "label", "description"];
const JOIN_KEYS: &[&str] = &["source", "on"];
const METRIC_KEYS: &[&str] = &[
    "name",
    "label",
    "description",
    "source",
    "measure",
    "filter",
    "expr",
    "format",
    "window",
    "to_date",
    "period_agg",
    "fill_null",
];
const KPI_KEYS: &[&str] = &[
    "name",
    "metric",
    "label",
    "description",
    "objective",
    "owner",
    "grain",
    "direction",
    "indicator",
    "target",
    "tolerance",
    "filter",
    "drivers",
    "decomposition",
    "breakdowns",
    "related",
    "rationale",
    "measurement",
    "review",
    "action_plan",
];
const TARGET_KEYS: &[&str] = &["change", "vs", "values", "file"];
const CONFIG_KEYS: &[&str] = &[
    "name",
    "models",
    "macros",
    "target",
    "warehouse",
    "as_of",
    "vars",
    "dbt",
    "memory_limit",
];
const WAREHOUSE_KEYS: &[&str] = &["dialect", "database"];
const DBT_KEYS: &[&str] = &["project_dir", "manifest"];

const TARGET_FORMS: &str = "a target takes one of these forms:\n  \
     target: 1200000\n  \
     target: {change: +15%, vs: last_year}\n  \
     target: {change: -30%, vs: previous}\n  \
     target: {values: {2026-Q1: 1.0e6, 2026-Q2: 1.1e6}}\n  \
     target: {file: fixtures/targets.csv}";

/// Converts the root of a model file. `None` (no document) and an empty
/// document give a file without definitions.
pub fn model_file(file: FileId, root: Option<&Node>, diags: &mut Diagnostics) -> RawFile {
    let mut out = RawFile {
        file,
        sources: Vec::new(),
        metrics: Vec::new(),
        kpis: Vec::new(),
    };
    let Some(root) = root else { return out };
    let mut cx = Cx { diags };
    if matches!(root.kind, NodeKind::Null) {
        return out;
    }
    let Some(entries) = cx.mapping(
        root,
        root.span,
        "a model file (with `sources`, `metrics`, `kpis`)",
    ) else {
        return out;
    };
    for (key, k, v) in cx.fields(entries, FILE_KEYS, "a model file") {
        match key {
            "sources" => {
                for item in cx.list_of_mappings(k, v, "source") {
                    out.sources.push(cx.source(item));
                }
            }
            "metrics" => {
                for item in cx.list_of_mappings(k, v, "metric") {
                    out.metrics.push(cx.metric(item));
                }
            }
            "kpis" => {
                for item in cx.list_of_mappings(k, v, "KPI") {
                    out.kpis.push(cx.kpi(item));
                }
            }
            _ => {}
        }
    }
    out
}

/// Converts the root of kpic.yml (all keys optional).
pub fn config_file(file: FileId, root: Option<&Node>, diags: &mut Diagnostics) -> RawConfig {
    let mut out = RawConfig {
        file,
        name: None,
        models: None,
        macros: None,
        target: None,
        warehouse: None,
        as_of: None,
        vars: Vec::new(),
        dbt: None,
        memory_limit: None,
    };
    let Some(root) = root else { return out };
    if matches!(root.kind, NodeKind::Null) {
        return out;
    }
    let mut cx = Cx { diags };
    let Some(entries) = cx.mapping(root, root.span, "kpic.yml (project settings)") else {
        return out;
    };
    for (key, k, v) in cx.fields(entries, CONFIG_KEYS, "kpic.yml") {
        match key {
            "name" => out.name = cx.text(k, v),
            "models" => out.models = cx.text_list(k, v),
            "macros" => out.macros = cx.text_list(k, v),
            "target" => out.target = cx.text(k, v),
            "as_of" => out.as_of = cx.text(k, v),
            "memory_limit" => out.memory_limit = cx.text(k, v),
            "warehouse" => {
                if let Some(entries) = cx.optional_mapping(k, v, "`warehouse` settings") {
                    let mut w = RawWarehouse {
                        span: v.span,
                        dialect: None,
                        database: None,
                    };
                    for (key, k, v) in cx.fields(entries, WAREHOUSE_KEYS, "`warehouse`") {
                        match key {
                            "dialect" => w.dialect = cx.text(k, v),
                            "database" => w.database = cx.text(k, v),
                            _ => {}
                        }
                    }
                    out.warehouse = Some(w);
                }
            }
            "dbt" => {
                if let Some(entries) = cx.optional_mapping(k, v, "`dbt` settings") {
                    let mut d = RawDbt {
                        span: v.span,
                        project_dir: None,
                        manifest: None,
                    };
                    for (key, k, v) in cx.fields(entries, DBT_KEYS, "`dbt`") {
                        match key {
                            "project_dir" => d.project_dir = cx.text(k, v),
                            "manifest" => d.manifest = cx.text(k, v),
                            _ => {}
                        }
                    }
                    out.dbt = Some(d);
                }
            }
            "vars" => {
                // Variable names are the user's own: any key is fine, any
                // value is kept as given.
                if let Some(entries) = cx.optional_mapping(k, v, "variables (name: value)") {
                    for (vk, vv) in entries {
                        if let Some(name) = cx.key_text(vk) {
                            out.vars.push((name, vv.clone()));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// What a node is, for "expected …, found …" messages.
fn describe(node: &Node) -> &'static str {
    match &node.kind {
        NodeKind::Null => "nothing",
        NodeKind::Scalar { .. } => "text",
        NodeKind::Seq(_) => "a list",
        NodeKind::Map(_) => "a mapping",
    }
}

/// Where to point at a value: an empty value has no text of its own, so
/// its key is underlined instead.
fn value_span(key: &Node, value: &Node) -> Span {
    if matches!(value.kind, NodeKind::Null) && value.span.start == value.span.end {
        key.span
    } else {
        value.span
    }
}

struct Cx<'d> {
    diags: &'d mut Diagnostics,
}

impl Cx<'_> {
    fn wrong_type(&mut self, span: Span, expected: &str, found: &Node) -> Diagnostic {
        Diagnostic::new(
            Code::WrongType,
            format!("expected {expected}, found {}", describe(found)),
        )
        .at(span, format!("expected {expected}"))
    }

    /// The entries of a mapping, or a `WrongType` error.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        span: Span,
        expected: &str,
    ) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => {
                let d = self.wrong_type(span, expected, node);
                self.diags.push(d);
                None
            }
        }
    }

    /// A mapping value; an empty value counts as absent.
    fn optional_mapping<'n>(
        &mut self,
        key: &Node,
        value: &'n Node,
        expected: &str,
    ) -> Option<&'n [(Node, Node)]> {
        if matches!(value.kind, NodeKind::Null) {
            return None;
        }
        self.mapping(
            value,
            value_span(key, value),
            &format!("a mapping of {expected}"),
        )
    }

    /// The text of a mapping key; other keys are `WrongType` errors.
    fn key_text(&mut self, key: &Node) -> Option<Text> {
        match &key.kind {
            NodeKind::Scalar { text, .. } => Some(Spanned::new(text.clone(), key.span)),
            _ => {
                let d = self.wrong_type(key.span, "a key name", key);
                self.diags.push(d);
                None
            }
        }
    }

    /// The entries of a mapping whose keys are among `known`, as
    /// `(key, key node, value)`. Unknown keys are reported with a hint.
    fn fields<'n>(
        &mut self,
        entries: &'n [(Node, Node)],
        known: &[&'static str],
        what: &str,
    ) -> Vec<(&'static str, &'n Node, &'n Node)> {
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Some(name) = self.key_text(k) else {
                continue;
            };
            if let Some(known) = known.iter().find(|c| **c == name.value) {
                out.push((*known, k, v));
                continue;
            }
            let mut d = Diagnostic::new(
                Code::UnknownKey,
                format!("unknown key `{}` in {what}", name.value),
            );
            match did_you_mean(&name.value, known.iter().copied()) {
                Some(close) => d = d.at(k.span, format!("did you mean `{close}`?")),
                None => {
                    d = d.at(k.span, "unknown key").with_note(format!(
                        "valid keys: {}",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
            self.diags.push(d);
        }
        out
    }

    /// A scalar value as text. An empty value (`key:` or `~`) is absent.
    fn text(&mut self, key: &Node, value: &Node) -> Option<Text> {
        match &value.kind {
            NodeKind::Scalar { text, .. } => Some(Spanned::new(text.clone(), value.span)),
            NodeKind::Null => None,
            NodeKind::Seq(_) | NodeKind::Map(_) => {
                let d = self.wrong_type(value.span, "text", value).with_help(format!(
                    "`{}` takes a single value; quote it if it contains `: ` or starts with `[` or `{{`",
                    key_name(key)
                ));
                self.diags.push(d);
                None
            }
        }
    }

    /// A list of scalars; a single scalar is a one-element list.
    fn text_list(&mut self, key: &Node, value: &Node) -> Option<Spanned<Vec<Text>>> {
        match &value.kind {
            NodeKind::Null => None,
            NodeKind::Scalar { text, .. } => Some(Spanned::new(
                vec![Spanned::new(text.clone(), value.span)],
                value.span,
            )),
            NodeKind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match &item.kind {
                        NodeKind::Scalar { text, .. } => {
                            out.push(Spanned::new(text.clone(), item.span));
                        }
                        _ => {
                            let d = self.wrong_type(item.span, "a name", item);
                            self.diags.push(d);
                        }
                    }
                }
                Some(Spanned::new(out, value.span))
            }
            NodeKind::Map(_) => {
                let d = self
                    .wrong_type(value.span, "a list of names", value)
                    .with_help(format!("write `{}: [a, b]`", key_name(key)));
                self.diags.push(d);
                None
            }
        }
    }

    /// The mappings of a list of mappings (`sources:`, `joins:` …); other
    /// items are reported and skipped. An empty value is an empty list.
    fn list_of_mappings<'n>(&mut self, key: &Node, value: &'n Node, item: &str) -> Vec<&'n Node> {
        match &value.kind {
            NodeKind::Null => Vec::new(),
            NodeKind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for it in items {
                    if matches!(it.kind, NodeKind::Map(_)) {
                        out.push(it);
                    } else {
                        let d = self.wrong_type(it.span, &format!("a mapping (a {item})"), it);
                        self.diags.push(d);
                    }
                }
                out
            }
            _ => {
                let d = self
                    .wrong_type(value_span(key, value), "a list of mappings", value)
                    .with_help(format!(
                        "start each {item} with `- ` under `{}:`",
                        key_name(key)
                    ));
                self.diags.push(d);
                Vec::new()
            }
        }
    }

    fn entries(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            NodeKind::Map(e) => e,
            _ => &[],
        }
    }

    fn source(&mut self, node: &Node) -> RawSource {
        let mut s = RawSource {
            span: node.span,
            name: None,
            label: None,
            description: None,
            path: None,
            table: None,
            sql: None,
            dbt_ref: None,
            time: None,
            dimensions: Vec::new(),
            joins: Vec::new(),
        };
        for (key, k, v) in self.fields(Self::entries(node), SOURCE_KEYS, "a source") {
            match key {
                "name" => s.name = self.text(k, v),
                "label" => s.label = self.text(k, v),
                "description" => s.description = self.text(k, v),
                "path" => s.path = self.text(k, v),
                "table" => s.table = self.text(k, v),
                "sql" => s.sql = self.text(k, v),
                "ref" => s.dbt_ref = self.text(k, v),
                "time" => s.time = self.text(k, v),
                "dimensions" => s.dimensions = self.dimensions(k, v),
                "joins" => {
                    for j in self.list_of_mappings(k, v, "join") {
                        let mut join = RawJoin {
                            span: j.span,
                            source: None,
                            on: None,
                        };
                        for (key, k, v) in self.fields(Self::entries(j), JOIN_KEYS, "a join") {
                            match key {
                                "source" => join.source = self.text(k, v),
                                "on" => join.on = self.text(k, v),
                                _ => {}
                            }
                        }
                        s.joins.push(join);
                    }
                }
                _ => {}
            }
        }
        s
    }

    fn dimensions(&mut self, key: &Node, value: &Node) -> Vec<RawDimension> {
        let items = match &value.kind {
            NodeKind::Null => return Vec::new(),
            NodeKind::Seq(items) => items,
            _ => {
                let d = self
                    .wrong_type(value_span(key, value), "a list of dimensions", value)
                    .with_help("list column names (`- channel`) or mappings (`- {name: country, expr: upper(country_code)}`)");
                self.diags.push(d);
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let mut dim = RawDimension {
                span: item.span,
                name: None,
                expr: None,
                label: None,
                description: None,
            };
            match &item.kind {
                NodeKind::Scalar { text, .. } => {
                    dim.name = Some(Spanned::new(text.clone(), item.span));
                }
                NodeKind::Map(entries) => {
                    for (key, k, v) in self.fields(entries, DIMENSION_KEYS, "a dimension") {
                        match key {
                            "name" => dim.name = self.text(k, v),
                            "expr" => dim.expr = self.text(k, v),
                            "label" => dim.label = self.text(k, v),
                            "description" => dim.description = self.text(k, v),
                            _ => {}
                        }
                    }
                }
                NodeKind::Null | NodeKind::Seq(_) => {
                    let d = self.wrong_type(item.span, "a dimension name or mapping", item);
                    self.diags.push(d);
                    continue;
                }
            }
            out.push(dim);
        }
        out
    }

    fn metric(&mut self, node: &Node) -> RawMetric {
        let mut m = RawMetric {
            span: node.span,
            name: None,
            label: None,
            description: None,
            source: None,
            measure: None,
            filter: None,
            expr: None,
            format: None,
            window: None,
            to_date: None,
            period_agg: None,
            fill_null: None,
        };
        for (key, k, v) in self.fields(Self::entries(node), METRIC_KEYS, "a metric") {
            let t = self.text(k, v);
            match key {
                "name" => m.name = t,
                "label" => m.label = t,
                "description" => m.description = t,
                "source" => m.source = t,
                "measure" => m.measure = t,
                "filter" => m.filter = t,
                "expr" => m.expr = t,
                "format" => m.format = t,
                "window" => m.window = t,
                "to_date" => m.to_date = t,
                "period_agg" => m.period_agg = t,
                "fill_null" => m.fill_null = t,
                _ => {}
            }
        }
        m
    }

    fn kpi(&mut self, node: &Node) -> RawKpi {
        let mut kpi = RawKpi {
            span: node.span,
            name: None,
            metric: None,
            label: None,
            description: None,
            objective: None,
            owner: None,
            grain: None,
            direction: None,
            indicator: None,
            target: None,
            tolerance: None,
            filter: None,
            drivers: None,
            decomposition: None,
            breakdowns: None,
            related: None,
            rationale: None,
            measurement: None,
            review: None,
            action_plan: None,
        };
        for (key, k, v) in self.fields(Self::entries(node), KPI_KEYS, "a KPI") {
            match key {
                "name" => kpi.name = self.text(k, v),
                "metric" => kpi.metric = self.text(k, v),
                "label" => kpi.label = self.text(k, v),
                "description" => kpi.description = self.text(k, v),
                "objective" => kpi.objective = self.text(k, v),
                "owner" => kpi.owner = self.text(k, v),
                "grain" => kpi.grain = self.text(k, v),
                "direction" => kpi.direction = self.text(k, v),
                "indicator" => kpi.indicator = self.text(k, v),
                "target" => kpi.target = self.target(k, v),
                "tolerance" => kpi.tolerance = self.text(k, v),
                "filter" => kpi.filter = self.text(k, v),
                "drivers" => kpi.drivers = self.text_list(k, v),
                "decomposition" => kpi.decomposition = self.text(k, v),
                "breakdowns" => kpi.breakdowns = self.text_list(k, v),
                "related" => kpi.related = self.text_list(k, v),
                "rationale" => kpi.rationale = self.text(k, v),
                "measurement" => kpi.measurement = self.text(k, v),
                "review" => kpi.review = self.text(k, v),
                "action_plan" => kpi.action_plan = self.text(k, v),
                _ => {}
            }
        }
        kpi
    }

    fn target(&mut self, key: &Node, value: &Node) -> Option<RawTarget> {
        let entries = match &value.kind {
            NodeKind::Null => return None,
            NodeKind::Scalar { text, .. } => {
                return Some(RawTarget::Absolute(Spanned::new(text.clone(), value.span)));
            }
            NodeKind::Seq(_) => {
                let d = self
                    .wrong_type(value.span, "a number or a target mapping", value)
                    .with_help(TARGET_FORMS);
                self.diags.push(d);
                return None;
            }
            NodeKind::Map(entries) => entries,
        };
        let fields = self.fields(entries, TARGET_KEYS, "a target");
        let has = |name: &str| fields.iter().any(|(k, _, _)| *k == name);
        let forms = [
            (has("change") || has("vs"), "`change`/`vs`"),
            (has("values"), "`values`"),
            (has("file"), "`file`"),
        ];
        let given: Vec<&str> = forms.iter().filter(|f| f.0).map(|f| f.1).collect();
        if given.len() > 1 {
            let d = Diagnostic::new(
                Code::WrongType,
                format!("a target mixes forms: {}", given.join(" and ")),
            )
            .at(value.span, "more than one target form")
            .with_help(TARGET_FORMS);
            self.diags.push(d);
            return None;
        }
        if fields.is_empty() {
            // Unknown keys were reported already; an empty mapping is not.
            if entries.is_empty() {
                let d = Diagnostic::new(Code::WrongType, "empty target")
                    .at(value_span(key, value), "no target form")
                    .with_help(TARGET_FORMS);
                self.diags.push(d);
            }
            return None;
        }
        if has("values") {
            let mut values = Vec::new();
            for (_, k, v) in &fields {
                let map = self.mapping(
                    v,
                    value_span(k, v),
                    "a mapping of period labels to targets (`2026-Q1: 1.0e6`)",
                )?;
                for (label, target) in map {
                    let Some(label) = self.key_text(label) else {
                        continue;
                    };
                    match &target.kind {
                        NodeKind::Scalar { text, .. } => {
                            values.push((label, Spanned::new(text.clone(), target.span)))
                        }
                        _ => {
                            let span = if target.span.start == target.span.end {
                                label.span
                            } else {
                                target.span
                            };
                            let d = self.wrong_type(span, "a target number", target);
                            self.diags.push(d);
                        }
                    }
                }
            }
            return Some(RawTarget::Values {
                span: value.span,
                values,
            });
        }
        if has("file") {
            for (_, k, v) in &fields {
                match &v.kind {
                    NodeKind::Scalar { text, .. } => {
                        return Some(RawTarget::File {
                            span: value.span,
                            path: Spanned::new(text.clone(), v.span),
                        });
                    }
                    _ => {
                        let d = self.wrong_type(value_span(k, v), "a file path", v);
                        self.diags.push(d);
                    }
                }
            }
            return None;
        }
        let mut change = None;
        let mut vs = None;
        for (name, k, v) in &fields {
            match *name {
                "change" => change = self.text(k, v),
                "vs" => vs = self.text(k, v),
                _ => {}
            }
        }
        Some(RawTarget::Change {
            span: value.span,
            change,
            vs,
        })
    }
}

fn key_name(key: &Node) -> &str {
    match &key.kind {
        NodeKind::Scalar { text, .. } => text,
        _ => "this key",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml;
    use crate::source::SourceMap;
    use std::path::Path;

    fn convert(text: &str) -> (SourceMap, RawFile, Diagnostics) {
        let mut sm = SourceMap::new();
        let file = sm.add(Path::new("m.yml"), "models/m.yml".into(), text.into());
        let mut diags = Diagnostics::new();
        let root = yaml::parse(text, file, &mut diags);
        let raw = model_file(file, root.as_ref(), &mut diags);
        (sm, raw, diags)
    }

    fn config(text: &str) -> (SourceMap, RawConfig, Diagnostics) {
        let mut sm = SourceMap::new();
        let file = sm.add(Path::new("kpic.yml"), "kpic.yml".into(), text.into());
        let mut diags = Diagnostics::new();
        let root = yaml::parse(text, file, &mut diags);
        let raw = config_file(file, root.as_ref(), &mut diags);
        (sm, raw, diags)
    }

    /// (code, underlined text, label) of every diagnostic.
    fn summary(sm: &SourceMap, d: &Diagnostics) -> Vec<(String, String, String)> {
        d.iter()
            .map(|d| {
                let (text, label) = d
                    .primary
                    .as_ref()
                    .map(|l| (sm.snippet(l.span).to_string(), l.message.clone()))
                    .unwrap_or_default();
                (d.code.as_str().to_string(), text, label)
            })
            .collect()
    }

    fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    const FULL: &str = r#"
sources:
  - name: orders
    path: fixtures/orders.csv
    table: analytics.fct_orders
    time: ordered_at
    dimensions:
      - channel
      - name: country
        expr: upper(country_code)
        label: Country
    joins:
      - source: customers
        on: customer_id
metrics:
  - name: revenue
    source: orders
    measure: sum(amount)
    filter: status = 'completed'
    format: currency
  - name: aov
    expr: revenue / orders
kpis:
  - name: quarterly_revenue
    metric: revenue
    grain: quarter
    target: 1.2e6
    tolerance: 10%
    drivers: [sessions, conversion_rate, aov]
    breakdowns: channel
    action_plan: |
      Review the funnel.
"#;

    #[test]
    fn full_file() {
        let (sm, raw, d) = convert(FULL);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(raw.sources.len(), 1);
        let src = &raw.sources[0];
        assert_eq!(src.name.as_ref().map(|t| t.as_str()), Some("orders"));
        assert_eq!(
            src.table.as_ref().map(|t| t.as_str()),
            Some("analytics.fct_orders")
        );
        assert_eq!(src.dimensions.len(), 2);
        assert_eq!(
            src.dimensions[0].name.as_ref().map(|t| sm.snippet(t.span)),
            Some("channel")
        );
        assert_eq!(
            src.dimensions[1].expr.as_ref().map(|t| t.as_str()),
            Some("upper(country_code)")
        );
        assert_eq!(
            src.joins[0].on.as_ref().map(|t| t.as_str()),
            Some("customer_id")
        );
        assert_eq!(raw.metrics.len(), 2);
        assert_eq!(
            raw.metrics[1].expr.as_ref().map(|t| t.as_str()),
            Some("revenue / orders")
        );
        let kpi = &raw.kpis[0];
        match &kpi.target {
            Some(RawTarget::Absolute(t)) => assert_eq!(sm.snippet(t.span), "1.2e6"),
            other => panic!("{other:?}"),
        }
        let drivers = kpi.drivers.as_ref().expect("drivers");
        assert_eq!(
            drivers.value.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["sessions", "conversion_rate", "aov"]
        );
        let breakdowns = kpi.breakdowns.as_ref().expect("breakdowns");
        assert_eq!(breakdowns.value.len(), 1);
        assert_eq!(sm.snippet(breakdowns.value[0].span), "channel");
        assert_eq!(
            kpi.action_plan.as_ref().map(|t| t.as_str()),
            Some("Review the funnel.\n")
        );
    }

    #[test]
    fn unknown_top_level_key_has_hint() {
        let (sm, raw, d) = convert("metrcs:\n  - name: a\nkpis: []\n");
        assert_eq!(
            summary(&sm, &d),
            [s("KPI103", "metrcs", "did you mean `metrics`?")]
        );
        assert_eq!(d.0[0].message, "unknown key `metrcs` in a model file");
        assert!(raw.metrics.is_empty());
    }

    #[test]
    fn unknown_key_without_close_match_lists_valid_keys() {
        let (sm, _, d) = convert("zzz: 1\n");
        assert_eq!(summary(&sm, &d), [s("KPI103", "zzz", "unknown key")]);
        assert_eq!(d.0[0].notes, ["valid keys: `sources`, `metrics`, `kpis`"]);
    }

    #[test]
    fn all_problems_in_a_file_are_reported() {
        let text = "metrics:\n  - name: a\n    mesure: sum(x)\n  - just text\n  - name: b\n    sorce: t\nkpis:\n  - name: k\n    metrc: a\n    target: {chnge: 5%}\n";
        let (sm, raw, d) = convert(text);
        assert_eq!(
            summary(&sm, &d),
            [
                s("KPI104", "just text", "expected a mapping (a metric)"),
                s("KPI103", "mesure", "did you mean `measure`?"),
                s("KPI103", "sorce", "did you mean `source`?"),
                s("KPI103", "metrc", "did you mean `metric`?"),
                s("KPI103", "chnge", "did you mean `change`?"),
            ]
        );
        assert_eq!(raw.metrics.len(), 2);
        assert_eq!(raw.kpis.len(), 1);
    }

    #[test]
    fn wrong_shapes() {
        let (sm, _, d) = convert(
            "sources: orders\nmetrics:\n  - name: [a, b]\nkpis:\n  - name: k\n    drivers: {a: 1}\n",
        );
        assert_eq!(
            summary(&sm, &d),
            [
                s("KPI104", "orders", "expected a list of mappings"),
                s("KPI104", "[a, b]", "expected text"),
                s("KPI104", "{a: 1}", "expected a list of names"),
            ]
        );
        assert_eq!(d.0[0].message, "expected a list of mappings, found text");

        let (sm, _, d) = convert("- a\n- b\n");
        assert_eq!(
            summary(&sm, &d),
            [s(
                "KPI104",
                "- a\n- b",
                "expected a model file (with `sources`, `metrics`, `kpis`)"
            )]
        );
    }

    #[test]
    fn empty_values_are_absent() {
        let (_, raw, d) = convert("sources:\nmetrics:\n  - name:\n    label: ~\n");
        assert!(d.is_empty(), "{d:?}");
        assert!(raw.sources.is_empty());
        assert!(raw.metrics[0].name.is_none());
        assert!(raw.metrics[0].label.is_none());
        let (_, raw, d) = convert("");
        assert!(d.is_empty() && raw.metrics.is_empty());
        let (_, _, d) = convert("---\n");
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn yaml_12_keys_and_numbers_stay_text() {
        let (sm, raw, d) = convert(
            "sources:\n  - name: o\n    joins:\n      - source: c\n        on: id\nkpis:\n  - name: k\n    target: 1_000\n    tolerance: 0.1\n",
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            raw.sources[0].joins[0].on.as_ref().map(|t| t.as_str()),
            Some("id")
        );
        match &raw.kpis[0].target {
            Some(RawTarget::Absolute(t)) => {
                assert_eq!(t.as_str(), "1_000");
                assert_eq!(sm.snippet(t.span), "1_000");
            }
            other => panic!("{other:?}"),
        }
    }

    fn kpi_target(target: &str) -> (SourceMap, Option<RawTarget>, Diagnostics) {
        let (sm, mut raw, d) = convert(&format!("kpis:\n  - name: k\n    target: {target}\n"));
        let t = raw.kpis.pop().and_then(|k| k.target);
        (sm, t, d)
    }

    #[test]
    fn target_forms() {
        let (sm, t, d) = kpi_target("{change: +15%, vs: last_year}");
        assert!(d.is_empty(), "{d:?}");
        match t {
            Some(RawTarget::Change { change, vs, span }) => {
                assert_eq!(change.map(|c| c.value).as_deref(), Some("+15%"));
                assert_eq!(
                    vs.map(|c| sm.snippet(c.span).to_string()).as_deref(),
                    Some("last_year")
                );
                assert_eq!(sm.snippet(span), "{change: +15%, vs: last_year}");
            }
            other => panic!("{other:?}"),
        }

        let (sm, t, d) = kpi_target("{values: {2026-Q1: 1.0e6, 2026-Q2: 1.1e6}}");
        assert!(d.is_empty(), "{d:?}");
        match t {
            Some(RawTarget::Values { values, .. }) => {
                let v: Vec<_> = values
                    .iter()
                    .map(|(l, t)| (sm.snippet(l.span), t.as_str()))
                    .collect();
                assert_eq!(v, [("2026-Q1", "1.0e6"), ("2026-Q2", "1.1e6")]);
            }
            other => panic!("{other:?}"),
        }

        let (sm, t, d) = kpi_target("{file: fixtures/targets.csv}");
        assert!(d.is_empty(), "{d:?}");
        match t {
            Some(RawTarget::File { path, .. }) => {
                assert_eq!(sm.snippet(path.span), "fixtures/targets.csv")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn target_errors() {
        let (sm, t, d) = kpi_target("{change: 5%, file: t.csv}");
        assert!(t.is_none());
        assert_eq!(
            summary(&sm, &d),
            [s(
                "KPI104",
                "{change: 5%, file: t.csv}",
                "more than one target form"
            )]
        );
        assert!(
            d.0[0]
                .help
                .as_deref()
                .unwrap_or("")
                .contains("target: {file: fixtures/targets.csv}")
        );

        let (sm, _, d) = kpi_target("{valeus: {2026: 1}}");
        assert_eq!(
            summary(&sm, &d),
            [s("KPI103", "valeus", "did you mean `values`?")]
        );

        let (sm, _, d) = kpi_target("[1, 2]");
        assert_eq!(
            summary(&sm, &d),
            [s(
                "KPI104",
                "[1, 2]",
                "expected a number or a target mapping"
            )]
        );

        let (sm, _, d) = kpi_target("{values: {2026-Q1: [1]}}");
        assert_eq!(
            summary(&sm, &d),
            [s("KPI104", "[1]", "expected a target number")]
        );

        let (sm, _, d) = kpi_target("{values: 5}");
        assert_eq!(summary(&sm, &d)[0].1, "5");
    }

    #[test]
    fn dimension_shapes() {
        let (sm, raw, d) = convert(
            "sources:\n  - name: o\n    dimensions:\n      - a\n      - [b]\n      - {name: c, exp: x}\n",
        );
        assert_eq!(
            summary(&sm, &d),
            [
                s("KPI104", "[b]", "expected a dimension name or mapping"),
                s("KPI103", "exp", "did you mean `expr`?"),
            ]
        );
        assert_eq!(raw.sources[0].dimensions.len(), 2);
    }

    #[test]
    fn config_keys() {
        let text = "name: shop\nmodels: [models, more]\nmacros: macros\nwarehouse:\n  dialect: duckdb\n  databse: x.duckdb\nvars:\n  region: EU\n  list: [1, 2]\ndbt: {project_dir: ../dbt, manifest: target/manifest.json}\nmemory_limit: 2GB\nas_of: latest\ntarget: out\n";
        let (sm, cfg, d) = config(text);
        assert_eq!(
            summary(&sm, &d),
            [s("KPI103", "databse", "did you mean `database`?")]
        );
        assert_eq!(cfg.name.as_ref().map(|t| t.as_str()), Some("shop"));
        let models = cfg.models.as_ref().expect("models");
        assert_eq!(
            models.value.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            ["models", "more"]
        );
        assert_eq!(sm.snippet(models.value[1].span), "more");
        assert_eq!(cfg.macros.as_ref().map(|m| m.value.len()), Some(1));
        assert_eq!(
            cfg.warehouse
                .as_ref()
                .and_then(|w| w.dialect.as_ref())
                .map(|t| t.as_str()),
            Some("duckdb")
        );
        assert_eq!(cfg.vars.len(), 2);
        assert_eq!(cfg.vars[0].0.as_str(), "region");
        assert!(matches!(cfg.vars[1].1.kind, NodeKind::Seq(_)));
        assert_eq!(
            cfg.dbt
                .as_ref()
                .and_then(|d| d.manifest.as_ref())
                .map(|t| t.as_str()),
            Some("target/manifest.json")
        );
        assert_eq!(cfg.memory_limit.as_ref().map(|t| t.as_str()), Some("2GB"));
        assert_eq!(cfg.target.as_ref().map(|t| t.as_str()), Some("out"));

        let (sm, _, d) = config("modles: [x]\n");
        assert_eq!(
            summary(&sm, &d),
            [s("KPI103", "modles", "did you mean `models`?")]
        );
    }

    #[test]
    fn non_text_keys_are_wrong_type() {
        let (sm, _, d) = convert("? [a]\n: 1\n");
        assert_eq!(
            summary(&sm, &d),
            [s("KPI104", "[a]", "expected a key name")]
        );
    }
}
