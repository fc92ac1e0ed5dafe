//! Load: find the project's files, read them into the [`SourceMap`] and turn
//! YAML into [`raw`] definitions.
//!
//! In: a project directory. Out: a [`raw::RawProject`] (kpic.yml, one
//! [`raw::RawFile`] per model file, the macro files) and the diagnostics of
//! every file, so one run reports all problems. Nothing here interprets a
//! value: names, SQL, numbers and periods are checked by `model`.
//!
//! [`SourceMap`]: crate::source::SourceMap

mod convert;
mod discover;
pub mod raw;
pub mod yaml;

pub use discover::{MAX_FILE_BYTES, load_project};

use crate::diagnostics::Diagnostics;
use crate::source::FileId;

/// Parses and converts the text of one model file already in the source
/// map (for tests and tools that build projects in memory).
pub fn parse_model_file(file: FileId, text: &str, diags: &mut Diagnostics) -> raw::RawFile {
    let root = yaml::parse(text, file, diags);
    convert::model_file(file, root.as_ref(), diags)
}

/// Parses and converts the text of a kpic.yml already in the source map.
pub fn parse_config_file(file: FileId, text: &str, diags: &mut Diagnostics) -> raw::RawConfig {
    let root = yaml::parse(text, file, diags);
    convert::config_file(file, root.as_ref(), diags)
}
