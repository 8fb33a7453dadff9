//! Paginated LISTs being read: each keeps the result of its first page, so that later pages
//! show the cluster as the first did.

use std::collections::VecDeque;
use std::sync::Arc;

use super::object::Stored;

/// The results of paginated LISTs still being read, so that every page of one LIST shows the
/// cluster as it was at the first (the apiserver reads later pages at the first page's
/// revision). The oldest are forgotten first; continuing one then answers 410, as after an
/// etcd compaction.
#[derive(Debug, Default)]
pub(crate) struct ListSnapshots {
    next: u64,
    kept: VecDeque<(u64, Arc<[Arc<Stored>]>)>,
}

/// How many paginated LISTs can be read at once.
const SNAPSHOTS_KEPT: usize = 64;

impl ListSnapshots {
    pub fn keep(&mut self, items: Vec<Arc<Stored>>) -> (u64, Arc<[Arc<Stored>]>) {
        self.next += 1;
        if self.kept.len() >= SNAPSHOTS_KEPT {
            self.kept.pop_front();
        }
        let items: Arc<[Arc<Stored>]> = items.into();
        self.kept.push_back((self.next, items.clone()));
        (self.next, items)
    }

    pub fn get(&self, id: u64) -> Option<Arc<[Arc<Stored>]>> {
        self.kept
            .iter()
            .find(|(kept, _)| *kept == id)
            .map(|(_, items)| items.clone())
    }
}
