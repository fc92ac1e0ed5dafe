//! Load: find the project's files, read them into the [`SourceMap`] and turn
//! YAML into [`raw`] definitions.

pub mod raw;
pub mod yaml;
