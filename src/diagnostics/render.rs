//! Rendering of diagnostics (human, JSON).
