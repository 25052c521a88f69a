//! The "read replica lags a write" fault (facts §4.1: GETs read `read_replica_or_default()`). A write is hidden from
//! reads until `ms` milliseconds have passed since it committed AND it has been hidden from `reads` reads; replication
//! is in commit order, so a later write never shows before an earlier one. Writes themselves read the primary.
//!
//! Off by default. While a write is pending, reads are served from a copy of the tables as they were before it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::store::Tables;

/// How far the read replica trails the primary. Both zero (the default) = no lag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaLag {
    /// A write stays invisible to reads for this long after it committed.
    #[serde(rename = "ms", with = "crate::faults::millis")]
    pub after: Duration,
    /// A write stays invisible to this many reads.
    pub reads: u32,
}

impl ReplicaLag {
    pub fn millis(ms: u64) -> Self {
        ReplicaLag {
            after: Duration::from_millis(ms),
            reads: 0,
        }
    }
    pub fn reads(reads: u32) -> Self {
        ReplicaLag {
            after: Duration::ZERO,
            reads,
        }
    }
    pub fn is_off(&self) -> bool {
        self.after.is_zero() && self.reads == 0
    }
}

#[derive(Debug)]
struct PendingWrite {
    at: Instant,
    reads: u32,
    tables: Arc<Tables>,
}

#[derive(Debug)]
pub(crate) struct Replica {
    lag: ReplicaLag,
    /// What the replica shows while writes are pending.
    visible: Option<Arc<Tables>>,
    pending: VecDeque<PendingWrite>,
}

impl Replica {
    pub fn new(lag: ReplicaLag) -> Self {
        Replica {
            lag,
            visible: None,
            pending: VecDeque::new(),
        }
    }

    pub fn set_lag(&mut self, lag: ReplicaLag) {
        self.lag = lag;
    }

    /// Whether a write must hand over the tables as they were before it.
    pub fn is_lagging(&self) -> bool {
        !self.lag.is_off()
    }

    /// A write committed: `before` is the primary before it (given when lagging), `after` the primary now.
    pub fn committed(&mut self, before: Option<Tables>, after: &Tables) {
        if self.lag.is_off() {
            return;
        }
        if self.pending.is_empty() {
            self.visible = Some(Arc::new(before.unwrap_or_else(|| after.clone())));
        }
        self.pending.push_back(PendingWrite {
            at: Instant::now(),
            reads: 0,
            tables: Arc::new(after.clone()),
        });
    }

    /// One read: the snapshot it sees (`None` = the primary), after replicating what is due.
    pub fn read(&mut self) -> Option<Arc<Tables>> {
        while let Some(front) = self.pending.front() {
            if front.at.elapsed() < self.lag.after || front.reads < self.lag.reads {
                break;
            }
            self.visible = self.pending.pop_front().map(|p| p.tables);
        }
        if self.pending.is_empty() {
            self.visible = None;
            return None;
        }
        for pending in &mut self.pending {
            pending.reads += 1;
        }
        self.visible.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openedx::store::ProgramCourseEnrollment;

    fn tables_with(n: u64) -> Tables {
        let mut tables = Tables::default();
        for id in 1..=n {
            tables.course_enrollments.insert(
                id,
                ProgramCourseEnrollment {
                    id,
                    program_enrollment_id: 0,
                    course_key: "c".into(),
                    status: "active".into(),
                },
            );
        }
        tables
    }

    #[test]
    fn a_write_is_hidden_from_n_reads_in_commit_order() {
        let mut replica = Replica::new(ReplicaLag::reads(2));
        replica.committed(Some(tables_with(0)), &tables_with(1));
        replica.committed(None, &tables_with(2));
        let seen: Vec<Option<usize>> = (0..4)
            .map(|_| replica.read().map(|t| t.course_enrollments.len()))
            .collect();
        // Reads 1-2 see neither write, read 3 sees both (the second was hidden from 2 reads too), then the primary.
        assert_eq!(seen, [Some(0), Some(0), None, None]);
    }

    #[test]
    fn a_write_is_hidden_for_a_while() {
        let mut replica = Replica::new(ReplicaLag::millis(40));
        replica.committed(Some(tables_with(0)), &tables_with(1));
        assert_eq!(replica.read().map(|t| t.course_enrollments.len()), Some(0));
        std::thread::sleep(Duration::from_millis(50));
        assert!(replica.read().is_none());
    }

    #[test]
    fn no_lag_reads_the_primary() {
        let mut replica = Replica::new(ReplicaLag::default());
        replica.committed(None, &tables_with(1));
        assert!(replica.read().is_none());
        assert!(!replica.is_lagging());
    }
}
