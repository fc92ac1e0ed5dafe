//! The raw definitions: what the YAML files say, structurally checked
//! (known keys, right shapes) but not interpreted. Every scalar is kept as
//! text with its span; `model` gives it a type. Produced by
//! [`super::load_project`].

use crate::source::{FileId, Span, Spanned};

/// Text of a scalar with its span.
pub type Text = Spanned<String>;

/// A YAML node with its span, as parsed (aliases already expanded).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null`, or an empty value.
    Null,
    /// Any other scalar. `quoted` is true for '…' / "…" / block scalars,
    /// which are always strings (YAML 1.2 core schema).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order.
    Map(Vec<(Node, Node)>),
}

/// Everything `load` read from a project directory.
#[derive(Debug, Clone, Default)]
pub struct RawProject {
    /// kpic.yml, when present.
    pub config: Option<RawConfig>,
    /// One entry per YAML file under the model dirs, in path order.
    pub files: Vec<RawFile>,
    /// Macro files under the macro dirs, in path order.
    pub macros: Vec<MacroFile>,
    /// Target files named by KPIs (`target: {file: …}`), by path as
    /// written: the file's text in the source map, or `None` when it could
    /// not be read (already reported).
    pub target_files: std::collections::BTreeMap<String, Option<FileId>>,
}

#[derive(Debug, Clone)]
pub struct MacroFile {
    pub file: FileId,
    /// Name for minijinja (path relative to the macro dir).
    pub name: String,
}

/// kpic.yml.
#[derive(Debug, Clone)]
pub struct RawConfig {
    pub file: FileId,
    pub name: Option<Text>,
    pub models: Option<Spanned<Vec<Text>>>,
    pub macros: Option<Spanned<Vec<Text>>>,
    pub target: Option<Text>,
    pub warehouse: Option<RawWarehouse>,
    pub as_of: Option<Text>,
    /// `vars:` as given (any YAML value per key).
    pub vars: Vec<(Text, Node)>,
    pub dbt: Option<RawDbt>,
    pub memory_limit: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct RawWarehouse {
    pub span: Span,
    pub dialect: Option<Text>,
    pub database: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct RawDbt {
    pub span: Span,
    pub project_dir: Option<Text>,
    pub manifest: Option<Text>,
}

/// One model YAML file: its `sources`, `metrics` and `kpis` lists.
#[derive(Debug, Clone)]
pub struct RawFile {
    pub file: FileId,
    pub sources: Vec<RawSource>,
    pub metrics: Vec<RawMetric>,
    pub kpis: Vec<RawKpi>,
}

#[derive(Debug, Clone)]
pub struct RawSource {
    /// The whole mapping.
    pub span: Span,
    pub name: Option<Text>,
    pub label: Option<Text>,
    pub description: Option<Text>,
    pub path: Option<Text>,
    pub table: Option<Text>,
    pub sql: Option<Text>,
    pub dbt_ref: Option<Text>,
    pub time: Option<Text>,
    pub dimensions: Vec<RawDimension>,
    pub joins: Vec<RawJoin>,
}

/// `- channel` (name only) or `- {name, expr, label, description}`.
#[derive(Debug, Clone)]
pub struct RawDimension {
    pub span: Span,
    pub name: Option<Text>,
    pub expr: Option<Text>,
    pub label: Option<Text>,
    pub description: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct RawJoin {
    pub span: Span,
    pub source: Option<Text>,
    pub on: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct RawMetric {
    pub span: Span,
    pub name: Option<Text>,
    pub label: Option<Text>,
    pub description: Option<Text>,
    pub source: Option<Text>,
    pub measure: Option<Text>,
    pub filter: Option<Text>,
    pub expr: Option<Text>,
    pub format: Option<Text>,
    pub window: Option<Text>,
    pub to_date: Option<Text>,
    pub period_agg: Option<Text>,
    pub fill_null: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct RawKpi {
    pub span: Span,
    pub name: Option<Text>,
    pub metric: Option<Text>,
    pub label: Option<Text>,
    pub description: Option<Text>,
    pub objective: Option<Text>,
    pub owner: Option<Text>,
    pub grain: Option<Text>,
    pub direction: Option<Text>,
    pub indicator: Option<Text>,
    pub target: Option<RawTarget>,
    pub tolerance: Option<Text>,
    pub filter: Option<Text>,
    pub drivers: Option<Spanned<Vec<Text>>>,
    pub decomposition: Option<Text>,
    pub breakdowns: Option<Spanned<Vec<Text>>>,
    pub related: Option<Spanned<Vec<Text>>>,
    pub rationale: Option<Text>,
    pub measurement: Option<Text>,
    pub review: Option<Text>,
    pub action_plan: Option<Text>,
}

/// The five target forms, structurally.
#[derive(Debug, Clone)]
pub enum RawTarget {
    /// `target: 1200000`
    Absolute(Text),
    /// `target: {change: +15%, vs: last_year}`
    Change {
        span: Span,
        change: Option<Text>,
        vs: Option<Text>,
    },
    /// `target: {values: {2026-Q1: 1.0e6}}`
    Values {
        span: Span,
        values: Vec<(Text, Text)>,
    },
    /// `target: {file: fixtures/targets.csv}`
    File { span: Span, path: Text },
}
