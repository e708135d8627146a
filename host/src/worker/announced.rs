//! Announcements of new jobs that the fresh lane has not answered yet
//! (see `Worker::fresh_lane`): how many, and whose.
//!
//! An announcement names the tenant whose jobs were made to wait when they
//! were one tenant's (an enqueue, a workflow's step), and no one otherwise
//! (several tenants' jobs in one statement, a released lease, a missed
//! notification). The lane claims the named tenants' jobs only, as many as
//! were announced: its few permits then go to the new jobs, never to a
//! backlog's. An announcement that names no one gets a claim of one job of
//! whichever tenant's turn is oldest, as before tenants were named.

use super::{FRESH_HEADROOM, FRESH_LANE_CLAIM};

/// What the lane owes, at most [`FRESH_HEADROOM`] jobs (it can hold no
/// more than that): counted, so that a burst arriving during one of its
/// claims is not folded into one.
#[derive(Debug, Default)]
pub(super) struct Announced {
    /// Jobs announced and not yet claimed for.
    count: usize,
    /// Announcements that named no tenant, or named one more than
    /// `tenants` keeps.
    anyone: usize,
    /// The distinct tenants named, at most [`FRESH_HEADROOM`].
    tenants: Vec<String>,
}

/// One claim the lane owes: `jobs` jobs of `tenants` (of anyone when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Owed {
    pub(super) jobs: usize,
    pub(super) tenants: Option<Vec<String>>,
}

impl Announced {
    /// Count an announcement of `tenant`'s jobs (of anyone's when none).
    pub(super) fn add(&mut self, tenant: Option<String>) {
        if self.count == FRESH_HEADROOM {
            return;
        }
        self.count += 1;
        match tenant {
            Some(tenant) if self.tenants.contains(&tenant) => {}
            Some(tenant) if self.tenants.len() < FRESH_HEADROOM => self.tenants.push(tenant),
            _ => self.anyone += 1,
        }
    }

    /// Whether anything is owed.
    pub(super) fn any(&self) -> bool {
        self.count > 0
    }

    /// Forget everything owed (the claim loop, or a claim that found
    /// nothing, answered it).
    pub(super) fn clear(&mut self) {
        *self = Announced::default();
    }

    /// The next claim to make with at most `free` permits, taken off what
    /// is owed: one job of anyone's for each announcement that named no
    /// one, first; then every named tenant's announced jobs in one claim.
    pub(super) fn next(&mut self, free: usize) -> Option<Owed> {
        if free == 0 || self.count == 0 {
            return None;
        }
        if self.anyone > 0 {
            let jobs = FRESH_LANE_CLAIM.min(self.anyone).min(free);
            self.anyone -= jobs;
            self.count -= jobs;
            return Some(Owed {
                jobs,
                tenants: None,
            });
        }
        let jobs = self.count.min(free);
        self.count -= jobs;
        // Tenants stay named while jobs are still owed (more were announced
        // than there were permits for).
        let tenants = if self.count == 0 {
            std::mem::take(&mut self.tenants)
        } else {
            self.tenants.clone()
        };
        Some(Owed {
            jobs,
            tenants: Some(tenants),
        })
    }

    /// Owe a claim again (it found nothing while the claim loop held its
    /// tenants).
    pub(super) fn put_back(&mut self, owed: Owed) {
        let jobs = owed.jobs.min(FRESH_HEADROOM - self.count);
        self.count += jobs;
        let mut kept = true;
        for tenant in owed.tenants.iter().flatten() {
            if self.tenants.contains(tenant) {
                continue;
            }
            if self.tenants.len() < FRESH_HEADROOM {
                self.tenants.push(tenant.clone());
            } else {
                kept = false;
            }
        }
        // Owed to anyone when no tenant was named, or one could not be
        // kept (the named ones filled up meanwhile).
        if owed.tenants.is_none() || !kept {
            self.anyone += jobs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(tenants: &[&str]) -> Option<Vec<String>> {
        Some(tenants.iter().map(|t| t.to_string()).collect())
    }

    #[test]
    fn named_tenants_are_claimed_for_together_and_anyone_one_job_at_a_time() {
        let mut owed = Announced::default();
        owed.add(Some("a".into()));
        owed.add(Some("b".into()));
        owed.add(Some("a".into()));
        owed.add(None);
        assert_eq!(
            owed.next(8),
            Some(Owed {
                jobs: 1,
                tenants: None
            })
        );
        assert_eq!(
            owed.next(8),
            Some(Owed {
                jobs: 3,
                tenants: named(&["a", "b"])
            })
        );
        assert!(!owed.any());
        assert_eq!(owed.next(8), None);
    }

    #[test]
    fn what_is_owed_is_bounded_by_the_headroom_and_the_free_permits() {
        let mut owed = Announced::default();
        for i in 0..100 {
            owed.add(Some(format!("t{i}")));
        }
        assert_eq!(owed.count, FRESH_HEADROOM);
        assert_eq!(owed.tenants.len(), FRESH_HEADROOM);
        assert_eq!(owed.next(0), None);
        let first = owed.next(3).expect("owed");
        assert_eq!(first.jobs, 3);
        assert_eq!(first.tenants.as_ref().map(Vec::len), Some(FRESH_HEADROOM));
        // The tenants stay named for the rest.
        let rest = owed.next(8).expect("owed");
        assert_eq!(rest.jobs, FRESH_HEADROOM - 3);
        assert_eq!(rest.tenants, first.tenants);
        assert!(!owed.any());
        owed.put_back(rest.clone());
        assert_eq!(owed.next(8), Some(rest));
    }

    #[test]
    fn a_tenant_past_the_named_ones_counts_as_anyone() {
        let mut owed = Announced::default();
        for i in 0..FRESH_HEADROOM {
            owed.add(Some(format!("t{i}")));
        }
        // Three owed jobs are claimed for; the eight tenants stay named.
        assert_eq!(owed.next(3).map(|o| o.jobs), Some(3));
        owed.add(Some("late".into()));
        assert_eq!(
            owed.next(8),
            Some(Owed {
                jobs: 1,
                tenants: None
            })
        );
        assert_eq!(owed.next(8).map(|o| o.jobs), Some(FRESH_HEADROOM - 3));
        // Put back while eight other tenants are named: owed to anyone.
        for i in 0..FRESH_HEADROOM {
            owed.add(Some(format!("u{i}")));
        }
        assert_eq!(
            owed.next(FRESH_HEADROOM - 1).map(|o| o.jobs),
            Some(FRESH_HEADROOM - 1)
        );
        owed.put_back(Owed {
            jobs: 1,
            tenants: named(&["late"]),
        });
        assert_eq!(
            owed.next(8),
            Some(Owed {
                jobs: 1,
                tenants: None
            })
        );
        owed.add(None);
        owed.clear();
        assert!(!owed.any());
    }
}
