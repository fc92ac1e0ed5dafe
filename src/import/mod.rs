//! Importers: kpic definitions from other tools' files.
//!
//! - [`metricflow`]: a dbt semantic layer's `semantic_manifest.json` →
//!   kpic sources and metrics YAML (`kpic import metricflow`).

pub mod metricflow;
