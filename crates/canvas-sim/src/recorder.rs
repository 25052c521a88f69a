//! Request recording shared by both simulators (canvas-sim's `server.rs`, openedx-sim's `openedx/server.rs`): every
//! request becomes a [`RequestRecord`] when it finishes, or when the client hangs up (status 499), so tests can count
//! calls per route template whatever happened to them.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::http::StatusCode;

use super::server::lock;

/// One request the simulator served (throttled, faulted and abandoned ones included).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    /// The route template, e.g. `/api/v1/courses/:id/enrollments`, or `(unmatched)`.
    pub route: String,
    pub path_and_query: String,
    /// 499 when the client hung up before the answer was ready.
    pub status: u16,
    pub started: Instant,
    pub finished: Instant,
    pub user_agent: Option<String>,
    pub throttled: bool,
}

/// The finished requests of one simulator, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    records: Mutex<Vec<(u64, RequestRecord)>>,
    next_seq: AtomicU64,
}

impl Recorder {
    /// Starts recording a request; the record is kept when the guard is finished or dropped.
    pub fn start(self: &Arc<Self>, record: RequestRecord) -> RecordGuard {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        RecordGuard {
            recorder: self.clone(),
            seq,
            record: Some(record),
        }
    }

    /// Every finished request, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        let mut records = lock(&self.records).clone();
        records.sort_by_key(|(seq, _)| *seq);
        records.into_iter().map(|(_, record)| record).collect()
    }

    /// How many finished requests had this method and route template.
    pub fn count(&self, method: &str, route: &str) -> usize {
        lock(&self.records)
            .iter()
            .filter(|(_, r)| r.method.eq_ignore_ascii_case(method) && r.route == route)
            .count()
    }

    pub fn reset(&self) {
        lock(&self.records).clear();
    }
}

/// Records the request when dropped, finished or not (status 499 when the client went away).
pub(crate) struct RecordGuard {
    recorder: Arc<Recorder>,
    seq: u64,
    record: Option<RequestRecord>,
}

impl RecordGuard {
    pub fn finish(mut self, status: StatusCode, throttled: bool) {
        if let Some(record) = self.record.as_mut() {
            record.status = status.as_u16();
            record.throttled = throttled;
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.finished = Instant::now();
            lock(&self.recorder.records).push((self.seq, record));
        }
    }
}
