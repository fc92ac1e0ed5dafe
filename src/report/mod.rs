//! The HTML KPI report (`kpic report`): one self-contained file, inline
//! CSS and SVG.
