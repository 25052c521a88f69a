//! The hasher of the decision's hot maps (the plan's indexes, duplicate resolution, the brake's counts) and of the
//! interner ([`super::Ids`]).
//!
//! std's default SipHash-1-3 costs more than the rest of the plan at a million enrollments (issue 14, S4 profile).
//! These maps use foldhash instead: several times faster on the small fixed-size keys they hold (interned ids, role
//! ids) and on the id strings the interner hashes. It is not a cryptographic hash, so HashDoS was weighed:
//! - every key comes from the district's own SIS database and its own Canvas account (read with an admin token),
//!   both operated by the district, not typed in by the public; a user id, course id or section id is assigned by
//!   the SIS or Canvas, not chosen by a student;
//! - `foldhash::fast::RandomState` is still seeded at random per process and per map, so colliding inputs cannot be
//!   prepared offline: an attacker would have to recover this process's seed first (foldhash's "minimally
//!   DoS-resistant");
//! - a cycle is a batch with a deadline (`reconcile.cycle_deadline_secs`); the worst case is a slow cycle, never a
//!   wrong decision (a hash map's result does not depend on its hasher).
//!
//! Iteration order of these maps is as unspecified as with std's `RandomState`; nothing that is decided or
//! recorded depends on it (the plan is sorted before it is returned).

pub use foldhash::fast::RandomState;

/// A `HashMap` with [`RandomState`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, RandomState>;
/// A `HashSet` with [`RandomState`].
pub type FastSet<K> = std::collections::HashSet<K, RandomState>;

/// An empty map with room for `n` entries.
pub fn map_with_capacity<K, V>(n: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(n, RandomState::default())
}

/// An empty set with room for `n` entries.
pub fn set_with_capacity<K>(n: usize) -> FastSet<K> {
    FastSet::with_capacity_and_hasher(n, RandomState::default())
}
