//! Reading the next wells' raw files ahead. A well's first steps read its raw planes; where the
//! page cache no longer holds them (a guest that hands free memory back to its host keeps a
//! plate only partly cached between runs), each read waited for the device while a core sat
//! idle. A prefetcher thread asks the kernel to read the files of each well one round of wells
//! ahead of the well threads: when well `k` starts, the files of well `k + wells at once` are
//! hinted (the first round's at the run's start), up to [`BUDGET`] bytes a well.
//! `HCS_PREFETCH=0` turns it off.

use std::sync::mpsc::Receiver;

use hcs_plan::compiler::FrozenWellPlan;
use hcs_plate::Plate;

/// The most bytes of one well's files hinted at once: a well larger than the page cache
/// would evict its own first files before they are read (the rest are read when needed).
pub const BUDGET: u64 = 1 << 30;

/// Whether the run reads wells ahead: yes unless `HCS_PREFETCH` says off (a word that is
/// neither on nor off is warned about by [`crate::settings::warn_unrecognized`]).
pub fn enabled() -> bool {
    std::env::var("HCS_PREFETCH").ok().and_then(|v| hcs_vfs::setting::switch(&v)).unwrap_or(true)
}

/// Hint the raw files of `plans` (in run order) ahead of the wells started: the first `ahead`
/// wells at once, then, as each well `k` is reported on `started`, the wells up to
/// `k + ahead`. Wells already complete in their output (a resumed run skips them) are not
/// read. Returns when `started` closes (every well thread is done).
pub fn read_ahead(plate: &Plate, plans: &[&FrozenWellPlan], ahead: usize, started: Receiver<usize>) {
    // The wells before this one have been dealt with.
    let mut next_well = 0;
    let mut hint_up_to = |end: usize| {
        while next_well < end.min(plans.len()) {
            let plan = plans[next_well];
            next_well += 1;
            // The record alone decides here: reading a complete well's files back to verify
            // them is the well thread's, which would otherwise read them a second time.
            if crate::output::recorded_complete(&plan.output_root, plan, plate.inputs_fingerprint(plan.well)) {
                continue;
            }
            let done = plate.prefetch_well(plan.well, BUDGET);
            let mib = done.bytes as f64 / 1_048_576.0;
            let (hinted, left, refused) = (done.hinted, done.left, done.refused);
            match &done.first_refusal {
                // The step that reads a missing or unreadable file reports it: here it is noted.
                Some(why) => tracing::debug!(
                    well = %plan.well,
                    hinted,
                    mib,
                    left,
                    refused,
                    "raw files read ahead, some could not be: {why}"
                ),
                None => tracing::debug!(well = %plan.well, hinted, mib, left, "raw files read ahead"),
            }
        }
    };
    hint_up_to(ahead);
    for k in started {
        hint_up_to(k.saturating_add(1).saturating_add(ahead));
    }
}
