//! canvas-sim: a Canvas REST simulator that follows `canvas-api-facts.md`, quirks included.
