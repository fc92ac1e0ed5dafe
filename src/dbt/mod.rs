//! dbt integration: reading a dbt project's `target/manifest.json` to
//! resolve `ref()`/`source()`, and emitting the output tables as dbt models.
