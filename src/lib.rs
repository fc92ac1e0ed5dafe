#![doc = include_str!("../ARCHITECTURE.md")]

pub mod diagnostics;
pub mod load;
pub mod source;
