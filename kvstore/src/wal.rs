//! The single replica's write-ahead log: what makes a write durable.
//!
//! Committing redb durably rewrites B-tree pages all over its file and
//! fsyncs them; appending one record to a preallocated file and
//! `fdatasync`ing it is far cheaper (no file-size change, so no metadata to
//! journal). So each batch of writes is appended here and synced before it
//! is applied to redb without fsync; redb is made durable (a checkpoint)
//! every so often, and the log restarts from its beginning.
//!
//! Record: `len u32 | crc32 u32 | seq u64 | payload` (little-endian), the
//! CRC covering seq and payload. Recovery reads records from the start
//! while they are intact and their sequence numbers increase, and re-applies
//! those newer than the sequence number redb durably recorded; anything
//! after the first torn or stale record was never acknowledged.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::FileExt,
    path::Path,
};

/// Size of the log file, written out in full once so appends never grow it.
pub(crate) const WAL_SIZE: u64 = 64 << 20;
const HEADER: u64 = 16;

/// The log file and where the next record goes.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    offset: u64,
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
    /// Opens (creating and preallocating if needed) the log at `path` and
    /// returns the intact records in it, oldest first.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Record>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        if len < WAL_SIZE {
            // Real zeros, not a sparse file: writing into holes would make
            // every fdatasync journal a block allocation.
            let chunk = vec![0u8; 1 << 20];
            let mut written = len;
            while written < WAL_SIZE {
                let n = usize::try_from((WAL_SIZE - written).min(chunk.len() as u64))
                    .unwrap_or(chunk.len());
                file.write_all_at(&chunk[..n], written)?;
                written += n as u64;
            }
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            file.flush()?;
        }
        let records = read_records(&file)?;
        Ok((Self { file, offset: 0 }, records))
    }

    /// Whether a payload of `len` bytes still fits before the end.
    pub fn fits(&self, len: usize) -> bool {
        self.offset + HEADER + len as u64 <= WAL_SIZE
    }

    /// Appends a record and waits until it is on disk.
    pub fn append(&mut self, seq: i64, payload: &[u8]) -> io::Result<()> {
        if !self.fits(payload.len()) {
            return Err(io::Error::other("write-ahead log full"));
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::other("write batch larger than 4 GiB"))?;
        let mut record = Vec::with_capacity(HEADER as usize + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(seq, payload).to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(payload);
        self.file.write_all_at(&record, self.offset)?;
        self.file.sync_data()?;
        self.offset += record.len() as u64;
        Ok(())
    }

    /// Starts over at the beginning (after a checkpoint made everything in
    /// the log durable elsewhere). Old records left behind have lower
    /// sequence numbers, so recovery stops at them.
    pub fn restart(&mut self) {
        self.offset = 0;
    }
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
    loop {
        let mut header = [0u8; HEADER as usize];
        if offset + HEADER > WAL_SIZE {
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
        if len == 0 || offset + HEADER + len > WAL_SIZE || seq <= last_seq {
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

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal");
        {
            let (mut wal, records) = Wal::open(&path).expect("open");
            assert!(records.is_empty());
            wal.append(1, b"one").expect("append");
            wal.append(2, b"two").expect("append");
        }
        // Tear the second record's payload.
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.write_all_at(b"X", HEADER + 3 + HEADER + 1)
            .expect("tear");
        let (mut wal, records) = Wal::open(&path).expect("reopen");
        let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1]);
        // After a restart, stale records with lower numbers are not replayed.
        wal.restart();
        wal.append(3, b"three").expect("append");
        drop(wal);
        let (_, records) = Wal::open(&path).expect("reopen");
        let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![3]);
    }
}
