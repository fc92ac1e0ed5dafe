//! `kpic init [DIR]`: writes a small copy of the example project.

use std::path::Path;

use super::{Ctx, Outcome};

/// (path, contents) of the scaffold, embedded at build time.
const FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("init_template/README.md")),
    (
        "fixtures/data/customers.csv",
        include_str!("init_template/fixtures/data/customers.csv"),
    ),
    (
        "fixtures/data/orders.csv",
        include_str!("init_template/fixtures/data/orders.csv"),
    ),
    (
        "fixtures/data/sessions.csv",
        include_str!("init_template/fixtures/data/sessions.csv"),
    ),
    ("kpic.yml", include_str!("init_template/kpic.yml")),
    (
        "macros/money.sql",
        include_str!("init_template/macros/money.sql"),
    ),
    (
        "models/kpis.yml",
        include_str!("init_template/models/kpis.yml"),
    ),
    (
        "models/metrics.yml",
        include_str!("init_template/models/metrics.yml"),
    ),
    (
        "models/sources.yml",
        include_str!("init_template/models/sources.yml"),
    ),
];

pub(super) fn init(ctx: &Ctx, dir: Option<&Path>) -> Outcome {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ctx.root.clone());
    for (path, _) in FILES {
        if dir.join(path).exists() {
            eprintln!(
                "error: `{}` already exists; kpic init never overwrites files",
                dir.join(path).display()
            );
            return Outcome::Failure;
        }
    }
    for (path, text) in FILES {
        let target = dir.join(path);
        if let Some(parent) = target.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            eprintln!("error: cannot create `{}`: {e}", parent.display());
            return Outcome::Failure;
        }
        if let Err(e) = std::fs::write(&target, text) {
            eprintln!("error: cannot write `{}`: {e}", target.display());
            return Outcome::Failure;
        }
    }
    ctx.info(&format!(
        "created a kpic project in {}; try `kpic --project {} run`",
        dir.display(),
        dir.display()
    ));
    Outcome::Ok
}
