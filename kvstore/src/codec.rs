//! Byte layouts of the records kept in redb.
//!
//! Hand-written rather than serde: these sit on the write path of every put,
//! and a fixed little-endian layout is both the fastest and the easiest to
//! keep stable across versions.
//!
//! - key record: `create_revision, mod_revision, version, lease` as i64 LE,
//!   then the value bytes.
//! - history entry: a sequence of events, each `kind u8, key_len u32, key,
//!   record_len u32, record, has_prev u8, [prev_len u32, prev_record]`.

use crate::{
    error::StoreError,
    types::{Event, EventKind, KeyValue},
};

const HEADER: usize = 32;

/// Encodes the stored part of a key (everything but the key itself).
pub(crate) fn encode_record(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + kv.value.len());
    put_record(&mut out, kv);
    out
}

fn put_record(out: &mut Vec<u8>, kv: &KeyValue) {
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.version.to_le_bytes());
    out.extend_from_slice(&kv.lease.to_le_bytes());
    out.extend_from_slice(&kv.value);
}

/// Decodes a key record written by [`encode_record`].
pub(crate) fn decode_record(key: &[u8], bytes: &[u8]) -> Result<KeyValue, StoreError> {
    if bytes.len() < HEADER {
        return Err(corrupt("key record shorter than its header"));
    }
    let field = |i: usize| {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        i64::from_le_bytes(raw)
    };
    Ok(KeyValue {
        key: key.to_vec(),
        create_revision: field(0),
        mod_revision: field(1),
        version: field(2),
        lease: field(3),
        value: bytes[HEADER..].to_vec(),
    })
}

/// Encodes the events of one revision.
pub(crate) fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        out.push(match event.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        put_bytes(&mut out, &event.kv.key);
        put_bytes(&mut out, &encode_record(&event.kv));
        match &event.prev_kv {
            Some(prev) => {
                out.push(1);
                put_bytes(&mut out, &encode_record(prev));
            }
            None => out.push(0),
        }
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Decodes the events written by [`encode_events`].
pub(crate) fn decode_events(mut bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    let mut events = Vec::new();
    while let Some((&kind, rest)) = bytes.split_first() {
        bytes = rest;
        let kind = match kind {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            _ => return Err(corrupt("unknown event kind in history")),
        };
        let key = take_bytes(&mut bytes)?;
        let kv = decode_record(key, take_bytes(&mut bytes)?)?;
        let (&has_prev, rest) = bytes
            .split_first()
            .ok_or_else(|| corrupt("history entry truncated"))?;
        bytes = rest;
        let prev_kv = if has_prev == 1 {
            Some(decode_record(key, take_bytes(&mut bytes)?)?)
        } else {
            None
        };
        events.push(Event { kind, kv, prev_kv });
    }
    Ok(events)
}

fn take_bytes<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    if bytes.len() < 4 {
        return Err(corrupt("history entry truncated"));
    }
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[..4]);
    let len = u32::from_le_bytes(raw) as usize;
    let rest = &bytes[4..];
    if rest.len() < len {
        return Err(corrupt("history entry truncated"));
    }
    let (value, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(value)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Storage(format!("corrupt data directory: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_and_without_prev() {
        let kv = KeyValue {
            key: b"/a".to_vec(),
            value: b"v2".to_vec(),
            create_revision: 3,
            mod_revision: 9,
            version: 2,
            lease: 7,
        };
        let events = vec![
            Event {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev_kv: Some(KeyValue {
                    value: b"v1".to_vec(),
                    mod_revision: 3,
                    version: 1,
                    ..kv.clone()
                }),
            },
            Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: b"/b".to_vec(),
                    ..KeyValue::default()
                },
                prev_kv: None,
            },
        ];
        let decoded = decode_events(&encode_events(&events)).expect("decodes");
        assert_eq!(decoded, events);
    }

    #[test]
    fn truncated_history_is_an_error_not_a_panic() {
        let bytes = encode_events(&[Event {
            kind: EventKind::Put,
            kv: KeyValue::default(),
            prev_kv: None,
        }]);
        for cut in 1..bytes.len() {
            assert!(decode_events(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
