//! Timers as a subsystem: a hierarchical timing wheel, `sleep`, `timeout`, `interval`.
