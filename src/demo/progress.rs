//! The apply's progress while the first cycle makes its changes: a bar on a terminal, a line per 10% on a pipe.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::reconcile::ProgressFn;

use super::print::Out;

/// A progress bar on a terminal; a line per 10% otherwise; nothing with `--json`.
pub(super) fn progress(out: Out) -> (Option<ProgressFn>, Option<ProgressBar>) {
    if out.json {
        return (None, None);
    }
    if std::io::stdout().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("  [{bar:40}] {pos}/{len} changes, {per_sec}, {eta} left")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let handle = bar.clone();
        let f: ProgressFn = Arc::new(move |done, total| {
            handle.set_length(total);
            handle.set_position(done);
        });
        (Some(f), Some(bar))
    } else {
        let last = AtomicU64::new(0);
        let f: ProgressFn = Arc::new(move |done, total| {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if tenth > last.fetch_max(tenth, Ordering::SeqCst) {
                println!("  {:>3}%  {done} of {total} changes", tenth * 10);
            }
        });
        (Some(f), None)
    }
}
