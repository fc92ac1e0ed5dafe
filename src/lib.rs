#![doc = include_str!("../ARCHITECTURE.md")]

// The modules that run DuckDB need the `engine` feature (on by default);
// the compile path below builds without it (see fuzz/).
#[cfg(feature = "engine")]
pub mod cli;
pub mod dbt;
pub mod diagnostics;
#[cfg(feature = "engine")]
pub mod exec;
#[cfg(feature = "engine")]
pub mod explain;
pub mod import;
pub mod load;
pub mod model;
pub mod plan;
#[cfg(feature = "engine")]
pub mod report;
#[cfg(feature = "engine")]
pub mod scaffold;
pub mod semantic;
pub mod source;
pub mod sql;

use std::path::Path;

/// load → model → semantic for the project at `root`. The model is
/// returned even when the diagnostics have errors, so every problem can be
/// reported; do not plan such a model.
pub fn analyze_project(
    root: &Path,
    catalog: &mut dyn semantic::Catalog,
) -> (semantic::SemanticModel, diagnostics::Diagnostics) {
    analyze_project_with(root, catalog, &dbt::DbtOptions::default())
}

/// [`analyze_project`] with the command line's dbt options.
pub fn analyze_project_with(
    root: &Path,
    catalog: &mut dyn semantic::Catalog,
    dbt: &dbt::DbtOptions,
) -> (semantic::SemanticModel, diagnostics::Diagnostics) {
    let mut sources = source::SourceMap::new();
    let (raw, mut diags) = load::load_project(root, &mut sources);
    let (project, model_diags) = model::model_from_raw_with(&raw, &sources, root, &diags, dbt);
    diags.extend(model_diags);
    let (model, semantic_diags) = semantic::analyze(project, sources, catalog);
    diags.extend(semantic_diags);
    (model, diags)
}
