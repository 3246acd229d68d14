//! Per-device slots: how many wells a GPU runs at once, as the plan says (`GpuAssignment::slots`);
//! a GPU step holds one of its device's slots while it runs.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

/// Counting semaphores, one per device ordinal.
#[derive(Default)]
pub struct DeviceSlots {
    in_use: Mutex<HashMap<u32, usize>>,
    freed: Condvar,
}

/// A held slot; released on drop.
pub struct SlotGuard<'a> {
    slots: &'a DeviceSlots,
    device: u32,
}

impl DeviceSlots {
    /// Wait until device `device` runs fewer than `cap` wells, then take a slot.
    pub fn acquire(&self, device: u32, cap: usize) -> SlotGuard<'_> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        while in_use.get(&device).copied().unwrap_or(0) >= cap.max(1) {
            in_use = self.freed.wait(in_use).unwrap_or_else(|p| p.into_inner());
        }
        *in_use.entry(device).or_default() += 1;
        SlotGuard { slots: self, device }
    }

    /// Slots in use on `device` now.
    pub fn in_use(&self, device: u32) -> usize {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner()).get(&device).copied().unwrap_or(0)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut in_use = self.slots.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_use.get_mut(&self.device) {
            *n = n.saturating_sub(1);
        }
        self.slots.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_device_never_runs_more_wells_than_its_slots() {
        let slots = Arc::new(DeviceSlots::default());
        let peak = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                let (slots, peak) = (Arc::clone(&slots), Arc::clone(&peak));
                s.spawn(move || {
                    for _ in 0..20 {
                        let _held = slots.acquire(3, 2);
                        peak.fetch_max(slots.in_use(3), Ordering::SeqCst);
                        std::thread::yield_now();
                    }
                });
            }
        });
        assert!((1..=2).contains(&peak.load(Ordering::SeqCst)), "at most 2 at once");
        assert_eq!(slots.in_use(3), 0);
    }
}
