//! Importers: kpic definitions from other tools' files
//! (`kpic import metricflow`).
