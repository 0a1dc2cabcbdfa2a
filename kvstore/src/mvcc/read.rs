//! Reads of the state machine: ranges at the latest or an older revision,
//! and pages of history for watchers.

use crate::{
    codec,
    error::StoreError,
    overlay::{Delta, View},
    types::{Event, KeyRange, KeyValue, RangeRequest, RangeResponse, RevisionEvents},
};

use super::{META_COMPACTED, META_REVISION, Mvcc};

/// Revisions read from the history for a watcher.
pub(crate) struct HistoryPage {
    /// Revisions with events in the watcher's range.
    pub revisions: Vec<RevisionEvents>,
    /// The last revision the page looked at (matched or not).
    pub scanned_to: i64,
}

impl Mvcc {
    /// Reads keys, at the latest revision or at `req.revision`; returns
    /// them with the revision they were read at.
    pub fn range(&self, req: &RangeRequest) -> Result<(RangeResponse, i64), StoreError> {
        let view = self.view()?;
        let current = view.meta(None, META_REVISION)?;
        if req.revision == 0 || req.revision == current {
            return Ok((range_in(&view, None, req)?, current));
        }
        let at = req.revision;
        if at < 0 {
            return Err(StoreError::InvalidRequest(format!(
                "range revision {at} must not be negative"
            )));
        }
        if at > current {
            return Err(StoreError::FutureRevision {
                requested: at,
                current,
            });
        }
        let compacted = view.meta(None, META_COMPACTED)?;
        if at < compacted {
            return Err(StoreError::Compacted {
                requested: at,
                compact_revision: compacted,
            });
        }
        Ok((range_at(&view, req, at, current)?, at))
    }

    /// Reads the history of revisions `from..=to` for the keys in `range`,
    /// looking at no more than `max_revisions` revisions.
    pub fn history(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        max_revisions: usize,
    ) -> Result<HistoryPage, StoreError> {
        let view = self.view()?;
        let compacted = view.meta(None, META_COMPACTED)?;
        if from < compacted {
            return Err(StoreError::Compacted {
                requested: from,
                compact_revision: compacted,
            });
        }
        let mut page = HistoryPage {
            revisions: Vec::new(),
            scanned_to: from - 1,
        };
        let entries = view.history(from, to, max_revisions)?;
        let complete = entries.len() < max_revisions;
        for (revision, bytes) in entries {
            page.scanned_to = revision;
            let events: Vec<Event> = codec::decode_events(&bytes)?
                .into_iter()
                .filter(|event| range.contains(&event.kv.key))
                .collect();
            if !events.is_empty() {
                page.revisions.push(RevisionEvents { revision, events });
            }
        }
        if complete {
            // Fewer entries than asked for: the whole span was read.
            page.scanned_to = to;
        }
        Ok(page)
    }
}

pub(super) fn keys_in(
    view: &View,
    top: Option<&Delta>,
    range: &KeyRange,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut keys = Vec::new();
    view.kv_scan(top, range, &mut |key, _| {
        keys.push(key.to_vec());
        Ok(true)
    })?;
    Ok(keys)
}

/// Answers `req` from records visited in key order.
struct RangeCollector<'req> {
    req: &'req RangeRequest,
    limit: usize,
    response: RangeResponse,
}

impl<'req> RangeCollector<'req> {
    fn new(req: &'req RangeRequest) -> Self {
        Self {
            req,
            limit: usize::try_from(req.limit).unwrap_or(0),
            response: RangeResponse::default(),
        }
    }

    fn add(&mut self, kv: impl FnOnce() -> Result<KeyValue, StoreError>) -> Result<(), StoreError> {
        self.response.count += 1;
        if self.req.count_only {
            return Ok(());
        }
        if self.limit != 0 && self.response.kvs.len() >= self.limit {
            self.response.more = true;
            return Ok(());
        }
        let mut kv = kv()?;
        if self.req.keys_only {
            kv.value = Vec::new();
        }
        self.response.kvs.push(kv);
        Ok(())
    }
}

pub(super) fn range_in(
    view: &View,
    top: Option<&Delta>,
    req: &RangeRequest,
) -> Result<RangeResponse, StoreError> {
    let mut collector = RangeCollector::new(req);
    view.kv_scan(top, &req.range, &mut |key, record| {
        collector.add(|| codec::decode_record(key, record))?;
        Ok(true)
    })?;
    Ok(collector.response)
}

/// Reads `req` as the store was at revision `at` (`compacted <= at <
/// current`): today's records, with every change after `at` undone from
/// the history (each event carries the record it replaced).
fn range_at(
    view: &View,
    req: &RangeRequest,
    at: i64,
    current: i64,
) -> Result<RangeResponse, StoreError> {
    let mut records = std::collections::BTreeMap::new();
    view.kv_scan(None, &req.range, &mut |key, record| {
        records.insert(key.to_vec(), Some(codec::decode_record(key, record)?));
        Ok(true)
    })?;
    let mut later = view.history(at + 1, current, usize::MAX)?;
    later.reverse();
    for (_, bytes) in later {
        for event in codec::decode_events(&bytes)?.into_iter().rev() {
            if req.range.contains(&event.kv.key) {
                records.insert(event.kv.key, event.prev_kv);
            }
        }
    }
    let mut collector = RangeCollector::new(req);
    for kv in records.into_values().flatten() {
        collector.add(|| Ok(kv))?;
    }
    Ok(collector.response)
}
