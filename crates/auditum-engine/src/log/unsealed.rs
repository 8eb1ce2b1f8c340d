//! The unsealed events (the batch being sealed and the open one) indexed by tenant, so a query
//! takes a copy of its tenant's events only: copying every unsealed event (up to two batches)
//! under the log's lock, which every group commit takes, starved reads and appends alike while
//! ingest ran.

use auditum_format::event::{EventRecord, Seq};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Each tenant's unsealed events in seq order.
#[derive(Default)]
pub(super) struct UnsealedByTenant {
    tenants: HashMap<String, VecDeque<Arc<EventRecord>>>,
}

impl UnsealedByTenant {
    /// Adds an event that became durable (seqs only grow).
    pub(super) fn push(&mut self, record: &Arc<EventRecord>) {
        match self.tenants.get_mut(record.tenant_id.as_str()) {
            Some(records) => records.push_back(record.clone()),
            None => {
                self.tenants.insert(record.tenant_id.clone(), VecDeque::from([record.clone()]));
            }
        }
    }

    /// Forgets the events below `next` (sealed now).
    pub(super) fn forget_below(&mut self, next: Seq) {
        self.tenants.retain(|_, records| {
            let sealed = records.partition_point(|record| record.seq < next);
            records.drain(..sealed);
            !records.is_empty()
        });
    }

    /// A copy of one tenant's unsealed events, in seq order.
    pub(super) fn of(&self, tenant_id: &str) -> Vec<Arc<EventRecord>> {
        self.tenants.get(tenant_id).map(|records| records.iter().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, tenant: &str) -> Arc<EventRecord> {
        Arc::new(EventRecord { seq: Seq(seq), tenant_id: tenant.into(), ..Default::default() })
    }

    #[test]
    fn each_tenant_keeps_its_events_in_order_until_they_are_sealed() {
        let mut index = UnsealedByTenant::default();
        for (seq, tenant) in [(0, "a"), (1, "b"), (2, "a"), (3, "a"), (4, "b")] {
            index.push(&record(seq, tenant));
        }
        let seqs = |index: &UnsealedByTenant, tenant: &str| index.of(tenant).iter().map(|record| record.seq.0).collect::<Vec<_>>();
        assert_eq!(seqs(&index, "a"), [0, 2, 3]);
        assert_eq!(seqs(&index, "b"), [1, 4]);
        assert!(seqs(&index, "c").is_empty());
        index.forget_below(Seq(3));
        assert_eq!(seqs(&index, "a"), [3]);
        assert_eq!(seqs(&index, "b"), [4]);
        index.forget_below(Seq(5));
        assert!(index.tenants.is_empty(), "a tenant with nothing unsealed is dropped");
    }
}
