//! The single replica's write-ahead log: what makes a write durable.
//!
//! Appending one record to a preallocated file and `fdatasync`ing it is the
//! cheapest durable write there is: no file-size change, so no metadata to
//! journal, and one sequential write. Each batch of writes is appended here
//! and synced before anyone hears of it; its effect on the tables reaches
//! redb later, many batches in one transaction (see [`crate::single`]).
//!
//! The log is two files ("segments"), `wal` and `wal.1`. Appends go to one
//! until the writer moves to the other, which it may only do once every
//! record in that other segment is durable in redb; it then overwrites it
//! from the start. So while redb catches up with one segment, new records
//! go to the other.
//!
//! Record: `len u32 | crc32 u32 | seq u64 | payload` (little-endian), the
//! CRC covering seq and payload. Sequence numbers increase by one from
//! record to record across both segments. Recovery reads each segment from
//! its start while records are intact and their sequence numbers increase
//! (older records left behind an overwrite have lower ones), and replays
//! those newer than what redb durably holds; anything after the first torn
//! or stale record was never acknowledged.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::Path,
};

/// Size of each segment, written out in full once so appends never grow it.
pub(crate) const SEGMENT_SIZE: u64 = 32 << 20;
const HEADER: u64 = 16;
const SEGMENT_NAMES: [&str; 2] = ["wal", "wal.1"];

/// The log's two segment files and where the next record goes.
#[derive(Debug)]
pub(crate) struct Wal {
    segments: [Segment; 2],
    /// The segment appends go to.
    current: usize,
}

#[derive(Debug)]
struct Segment {
    file: File,
    /// Where the next record goes.
    offset: u64,
    /// Sequence number of the last record appended since the segment was
    /// last started over (0: none).
    last_seq: i64,
}

/// One record read back during recovery.
#[derive(Debug)]
pub(crate) struct Record {
    /// Its sequence number.
    pub seq: i64,
    /// What was appended.
    pub payload: Vec<u8>,
}

impl Wal {
    /// Opens (creating and preallocating if needed) the segments in `dir`
    /// and returns the intact records in them, by sequence number. Appends
    /// start at the beginning of the first segment: call this only when
    /// redb will have everything in the log before the next append (after
    /// replaying the records and writing them into redb).
    pub fn open(dir: &Path) -> io::Result<(Self, Vec<Record>)> {
        let mut records = Vec::new();
        let mut open_segment = |name: &str| -> io::Result<Segment> {
            let file = open_preallocated(&dir.join(name))?;
            records.extend(read_records(&file)?);
            Ok(Segment {
                file,
                offset: 0,
                last_seq: 0,
            })
        };
        let segments = [
            open_segment(SEGMENT_NAMES[0])?,
            open_segment(SEGMENT_NAMES[1])?,
        ];
        records.sort_by_key(|record| record.seq);
        records.dedup_by_key(|record| record.seq);
        Ok((
            Self {
                segments,
                current: 0,
            },
            records,
        ))
    }

    /// Whether a payload of `len` bytes still fits in the current segment.
    pub fn fits(&self, len: usize) -> bool {
        self.segments[self.current].offset + HEADER + len as u64 <= SEGMENT_SIZE
    }

    /// Whether a payload of `len` bytes fits in an empty segment.
    pub fn could_ever_fit(len: usize) -> bool {
        HEADER + len as u64 <= SEGMENT_SIZE
    }

    /// Bytes used in the current segment.
    pub fn used(&self) -> u64 {
        self.segments[self.current].offset
    }

    /// Appends a record and waits until it is on disk.
    pub fn append(&mut self, seq: i64, payload: &[u8]) -> io::Result<()> {
        if !self.fits(payload.len()) {
            return Err(io::Error::other("write-ahead log segment full"));
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::other("write batch larger than 4 GiB"))?;
        let mut record = Vec::with_capacity(HEADER as usize + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(seq, payload).to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(payload);
        let segment = &mut self.segments[self.current];
        segment.file.write_all_at(&record, segment.offset)?;
        segment.file.sync_data()?;
        segment.offset += record.len() as u64;
        segment.last_seq = seq;
        Ok(())
    }

    /// Moves appends to the start of the other segment, if every record in
    /// it is durable elsewhere (`durable_seq`). Returns whether it moved.
    pub fn switch(&mut self, durable_seq: i64) -> bool {
        let other = 1 - self.current;
        if self.segments[other].last_seq > durable_seq {
            return false;
        }
        self.segments[other].offset = 0;
        self.segments[other].last_seq = 0;
        self.current = other;
        true
    }
}

fn open_preallocated(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = file.metadata()?.len();
    if len < SEGMENT_SIZE {
        // Real zeros, not a sparse file: writing into holes would make
        // every fdatasync journal a block allocation.
        let chunk = vec![0u8; 1 << 20];
        let mut written = len;
        while written < SEGMENT_SIZE {
            let n = usize::try_from((SEGMENT_SIZE - written).min(chunk.len() as u64))
                .unwrap_or(chunk.len());
            file.write_all_at(&chunk[..n], written)?;
            written += n as u64;
        }
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(file)
}

fn checksum(seq: i64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn read_records(file: &File) -> io::Result<Vec<Record>> {
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut last_seq = i64::MIN;
    // Files written by earlier versions may be longer than a segment.
    let size = file.metadata()?.len();
    loop {
        let mut header = [0u8; HEADER as usize];
        if offset + HEADER > size {
            break;
        }
        file.read_exact_at(&mut header, offset)?;
        let len = u64::from(u32::from_le_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&header[8..16]);
        let seq = i64::from_le_bytes(seq_bytes);
        if len == 0 || offset + HEADER + len > size || seq <= last_seq {
            break;
        }
        let mut payload = vec![0u8; usize::try_from(len).unwrap_or(0)];
        file.read_exact_at(&mut payload, offset + HEADER)?;
        if checksum(seq, &payload) != crc {
            break;
        }
        records.push(Record { seq, payload });
        last_seq = seq;
        offset += HEADER + len;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(records: &[Record]) -> Vec<i64> {
        records.iter().map(|record| record.seq).collect()
    }

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut wal, records) = Wal::open(dir.path()).expect("open");
            assert!(records.is_empty());
            wal.append(1, b"one").expect("append");
            wal.append(2, b"two").expect("append");
        }
        // Tear the second record's payload.
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(SEGMENT_NAMES[0]))
            .expect("open");
        file.write_all_at(b"X", HEADER + 3 + HEADER + 1)
            .expect("tear");
        let (_, records) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(seqs(&records), vec![1]);
    }

    #[test]
    fn records_of_both_segments_come_back_in_order_and_stale_ones_stop_a_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (mut wal, _) = Wal::open(dir.path()).expect("open");
            wal.append(1, b"one").expect("append");
            wal.append(2, b"two").expect("append");
            // Segment 1 is empty, so the writer may always move there.
            assert!(wal.switch(0));
            wal.append(3, b"three").expect("append");
            assert!(!wal.switch(1), "segment 0 still holds record 2");
            assert!(wal.switch(2));
            // Overwrites record 1 of segment 0 exactly; record 2 is left
            // behind with a lower sequence number.
            wal.append(4, b"4th").expect("append");
        }
        let (_, records) = Wal::open(dir.path()).expect("reopen");
        assert_eq!(seqs(&records), vec![3, 4]);
    }
}
