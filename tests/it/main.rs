mod common;
mod execute;
