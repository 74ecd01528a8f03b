//! A snapshot's content as stored: the instance state and the session's files,
//! postcard-encoded and zstd-compressed behind an 8-byte plain size, named by the 128-bit
//! xxh3 hash of the stored bytes. (xxh3 runs at memory speed where sha256 took 60 ms for a
//! 30 MB snapshot; blobs are never shared between tenants, so a tenant cannot make its record
//! point at another's content by crafting a collision.)

use super::{Files, StoreError, io};
use crate::engine::snapshot::{Captured, StateImage};
use serde::{Deserialize, Serialize};

/// The blob format this build writes and reads; a blob of another is refused as such.
pub(super) const FORMAT: u32 = 2;

/// More plain content than any session can hold (memories of 4 GiB at most, and files).
const MAX_PLAIN: u64 = 64 << 30;

/// The zstd level: 1, the fastest of the standard levels.
const LEVEL: i32 = 1;

/// A session's scratch file in a blob.
#[derive(Debug, Serialize, Deserialize)]
struct StoredFile {
    /// The path, relative to the session's directory.
    path: String,
    /// The contents.
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

/// What a blob holds.
#[derive(Debug, Deserialize)]
struct Body {
    /// [`FORMAT`], checked before the rest is decoded.
    _format: u32,
    image: StateImage,
    files: Vec<StoredFile>,
}

/// A blob as written: the state borrowed, not copied.
#[derive(Serialize)]
struct BodyRef<'a> {
    format: u32,
    image: &'a StateImage,
    files: Vec<StoredFile>,
}

/// Encodes and compresses `captured` with `files`; returns the bytes and their hash.
pub fn encode(captured: &Captured, files: Files) -> Result<(Vec<u8>, String), StoreError> {
    let files = files.into_iter().map(|(path, bytes)| StoredFile { path, bytes }).collect();
    let body = BodyRef { format: FORMAT, image: &captured.image, files };
    // Encoded straight into the compressor: no plain copy of the state.
    // The plain size leads the blob (8 bytes, little-endian), so a read allocates once.
    let mut out = Vec::with_capacity(captured.image.changed_bytes() + (1 << 16));
    out.extend_from_slice(&[0; 8]);
    let encoder = zstd::stream::Encoder::new(out, LEVEL).map_err(io)?;
    let mut counted = Counted { inner: encoder, count: 0 };
    postcard::to_io(&body, &mut counted).map_err(io)?;
    let Counted { inner: encoder, count } = counted;
    let mut packed = encoder.finish().map_err(io)?;
    packed[..8].copy_from_slice(&(count as u64).to_le_bytes());
    let sum = checksum(&packed);
    Ok((packed, sum))
}

/// Checks `packed` against `content` (its name) and decodes it; `id` names the snapshot in
/// errors.
pub fn decode(id: &str, content: &str, packed: &[u8]) -> Result<(StateImage, Files), StoreError> {
    let corrupted = |why: String| StoreError::Corrupted(id.to_string(), why);
    if checksum(packed) != content {
        return Err(corrupted("the content does not match its checksum".into()));
    }
    let (size, frame) = packed.split_at_checked(8).unwrap_or((&[], &[]));
    let size = <[u8; 8]>::try_from(size).map(u64::from_le_bytes).unwrap_or(0);
    if size > MAX_PLAIN {
        return Err(corrupted(format!("it claims {size} bytes of content")));
    }
    let plain =
        zstd::bulk::decompress(frame, size as usize).map_err(|e| corrupted(format!("cannot decompress: {e}")))?;
    let written_by_another = || corrupted("it was written by another version of Cella (blob format)".into());
    let format = postcard::take_from_bytes::<u32>(&plain).map_err(|_| written_by_another())?.0;
    if format != FORMAT {
        return Err(written_by_another());
    }
    let body: Body = postcard::from_bytes(&plain).map_err(|e| corrupted(format!("cannot decode: {e}")))?;
    Ok((body.image, body.files.into_iter().map(|f| (f.path, f.bytes)).collect()))
}

/// A writer that counts what passes through.
struct Counted<W> {
    inner: W,
    count: usize,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The content hash: xxh3-128, hex.
pub(super) fn checksum(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{GlobalValue, MemoryImage};

    #[test]
    fn a_blob_round_trips_and_a_foreign_or_lying_one_is_refused() {
        let image = StateImage {
            preopens: 1,
            memories: vec![MemoryImage { bytes: 65536, runs: vec![(1, 2)], data: vec![7; 2 * 4096].into() }],
            globals: vec![GlobalValue::I32(-3), GlobalValue::F64(0.5)],
        };
        let captured = Captured { image: image.clone(), key: "k".into() };
        let (packed, content) = encode(&captured, vec![("a/b.txt".into(), b"hi".to_vec())]).unwrap();
        let (back, files) = decode("snap_1", &content, &packed).unwrap();
        assert_eq!(back, image);
        assert_eq!(files, vec![("a/b.txt".to_string(), b"hi".to_vec())]);

        // One flipped byte: refused by its checksum.
        let mut flipped = packed.clone();
        flipped[20] ^= 1;
        let err = decode("snap_1", &content, &flipped).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");

        // Another blob format: refused as written by another version.
        let mut plain = postcard::to_stdvec(&(FORMAT + 1, 0u8)).unwrap();
        plain.extend_from_slice(&[0; 16]);
        let mut foreign = (plain.len() as u64).to_le_bytes().to_vec();
        foreign.extend(zstd::bulk::compress(&plain, 1).unwrap());
        let err = decode("snap_1", &checksum(&foreign), &foreign).unwrap_err().to_string();
        assert!(err.contains("another version of Cella"), "{err}");

        // A size prefix beyond any session is refused before anything is allocated.
        let mut lying = packed.clone();
        lying[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = decode("snap_1", &checksum(&lying), &lying).unwrap_err().to_string();
        assert!(err.contains("claims"), "{err}");
    }
}
