//! Timers as a subsystem: a hierarchical timing wheel, `sleep`, `timeout`, `interval`.
//!
//! Placeholder until the timing wheel lands: the runtime registers `Timers` by default.

use crate::subsystem::{ParkHint, Subsystem};
use std::time::Instant;

/// The runtime's timer subsystem.
#[derive(Debug, Default)]
pub struct Timers {}

impl Timers {
    /// An empty timer subsystem.
    pub fn new() -> Self {
        Timers {}
    }
}

impl Subsystem for Timers {
    fn poll(&self, _now: Instant) -> usize {
        0
    }
    fn waiters(&self) -> usize {
        0
    }
    fn park_hint(&self) -> ParkHint {
        ParkHint::Idle
    }
}
