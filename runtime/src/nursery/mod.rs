//! Nursery machinery: children stored inside their parent, woken one at a time.
