//! `kpic init [DIR] --from-csv FILE...`: a starter project over local CSV
//! files.

use std::path::{Path, PathBuf};

use super::{Ctx, Outcome};

pub(super) fn init_from_csv(_ctx: &Ctx, _dir: Option<&Path>, _files: &[PathBuf]) -> Outcome {
    eprintln!("error: `kpic init --from-csv` is not built yet");
    Outcome::Failure
}
