//! `kpic init [DIR] --from-csv FILE...`: a starter project over local CSV
//! files. The sniffing and the text of the project are
//! [`crate::scaffold`]'s; this writes the files, never over existing ones.

use std::path::{Path, PathBuf};

use super::{Ctx, Outcome};
use crate::scaffold::{Content, ScaffoldError, scaffold};

pub(super) fn init_from_csv(ctx: &Ctx, dir: Option<&Path>, files: &[PathBuf]) -> Outcome {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ctx.root.clone());
    if dir.exists() && !dir.is_dir() {
        return fail(&ScaffoldError::new(format!(
            "`{}` exists and is not a directory",
            dir.display()
        )));
    }
    let planned = match scaffold(&dir, files) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    // Nothing is written unless every file is new.
    for f in &planned.files {
        let target = dir.join(&f.rel);
        if target.exists() || target.is_symlink() {
            return fail(
                &ScaffoldError::new(format!(
                    "`{}` already exists; kpic init never overwrites files",
                    target.display()
                ))
                .help("choose another directory: `kpic init NEW_DIR --from-csv ...`"),
            );
        }
    }
    for f in &planned.files {
        let target = dir.join(&f.rel);
        if let Some(parent) = target.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            return fail(&ScaffoldError::new(format!(
                "cannot create `{}`: {e}",
                parent.display()
            )));
        }
        let written = match &f.content {
            Content::Text(text) => std::fs::write(&target, text),
            Content::CopyOf(from) => std::fs::copy(from, &target).map(|_| ()),
        };
        if let Err(e) = written {
            return fail(&ScaffoldError::new(format!(
                "cannot write `{}`: {e}",
                target.display()
            )));
        }
    }
    for line in &planned.summary {
        ctx.info(line);
    }
    ctx.info(&format!(
        "created a kpic project in {} ({} files); next: `kpic --project {} check`, then `run`",
        dir.display(),
        planned.files.len(),
        dir.display()
    ));
    Outcome::Ok
}

/// Every error of this command is a usage or input failure: exit 2.
fn fail(e: &ScaffoldError) -> Outcome {
    eprintln!("error: {}", e.message);
    if let Some(help) = &e.help {
        eprintln!("  = help: {help}");
    }
    Outcome::Failure
}
