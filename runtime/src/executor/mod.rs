//! The local executor, `block_on`, wakers and the poll loop (issue: runtime core).
