//! A snapshot's content as stored: the instance state and the session's files, named by the
//! 128-bit xxh3 hash of the stored bytes. (xxh3 runs at memory speed where sha256 took 60 ms
//! for a 30 MB snapshot; blobs are never shared between tenants, so a tenant cannot make its
//! record point at another's content by crafting a collision.)
//!
//! Format 3 (written since 2026-12-01):
//!
//! | bytes | what |
//! |---|---|
//! | 8 | [`MAGIC`] |
//! | 8 + 8 | the head's stored and plain sizes (little-endian) |
//! | … | the head: postcard, zstd-compressed: the state without its pages, where each memory's pages are, the files |
//! | … | zeros to the next 4 KiB |
//! | … | each memory's changed pages, starting on a 4 KiB boundary: zstd-compressed when that saves a fifth or more, else as they are |
//!
//! Pages kept as they are can be mapped copy-on-write straight from a local store's file into
//! the restored instance ([`Pages::slice`]), so restoring them costs the checksum and a few
//! `mmap`s rather than a read, a decompression and a copy. Random or already-compressed data
//! gains nothing from zstd and is stored this way; memory that compresses well is compressed.
//!
//! Format 2 (before): the same content, all postcard-encoded and zstd-compressed behind an
//! 8-byte plain size. It is still read.

use super::{Files, StoreError, io};
// The content hash of a format-2 blob (and of a format-3 blob's piece hashes): xxh3-128, hex,
// as the component cache checks its files.
pub(super) use crate::engine::cache::checksum_hex as checksum;
use crate::engine::pages::Pages;
use crate::engine::snapshot::{CHUNK, Captured, MemoryImage, StateImage};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io::Read;

/// The blob format this build writes; it also reads [`FORMAT_2`].
pub(super) const FORMAT: u32 = 3;

/// The format written before 2026-12-01.
const FORMAT_2: u32 = 2;

/// The first bytes of a format-3 blob. (A format-2 blob starts with its plain size, which is
/// far below these bytes read as a number; a build that reads only format 2 refuses them.)
const MAGIC: [u8; 8] = *b"CELLA\0\x03\0";

/// Page data starts on multiples of this in the blob, so that it can be mapped.
const ALIGN: usize = 4096;

/// More plain content than any session can hold (memories of 4 GiB at most, and files).
const MAX_PLAIN: u64 = 64 << 30;

/// The zstd level: 1, the fastest of the standard levels.
const LEVEL: i32 = 1;

/// Pages are compressed when that keeps at most this share of them (in fifths)…
const WORTH: usize = 4;

/// …judged, for memories larger than `SAMPLES` × `SAMPLE` bytes, from that many samples.
const SAMPLE: usize = 32 << 10;
const SAMPLES: usize = 8;

/// Zeros, to pad with.
static ZEROS: [u8; ALIGN] = [0; ALIGN];

/// A session's scratch file in a blob.
#[derive(Debug, Serialize, Deserialize)]
struct StoredFile {
    /// The path, relative to the session's directory.
    path: String,
    /// The contents.
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

/// Where a memory's pages are in a format-3 blob.
#[derive(Debug, Serialize, Deserialize)]
struct Place {
    /// From the start of the page data (a multiple of [`ALIGN`]).
    at: u64,
    /// Bytes stored there.
    stored: u64,
    /// zstd-compressed, or as they are.
    zstd: bool,
}

/// A format-3 head: the state with no pages, where they are, and the files.
#[derive(Debug, Serialize, Deserialize)]
struct Head {
    /// [`FORMAT`], checked before the rest is decoded.
    format: u32,
    image: StateImage,
    places: Vec<Place>,
    files: Vec<StoredFile>,
}

/// A format-2 blob's content.
#[derive(Debug, Deserialize)]
struct Body2 {
    _format: u32,
    image: StateImage,
    files: Vec<StoredFile>,
}

/// An encoded blob: its parts in order (the pages shared with the capture, not copied) and
/// its size.
#[derive(Debug)]
pub struct Packed {
    /// The bytes, in order.
    pub parts: Vec<Bytes>,
    /// Their total length.
    pub len: u64,
}

impl Packed {
    /// The checksum of its bytes (a part of the blob's name): a few ms for a Python
    /// session's, which a local store spends while it writes the blob.
    pub fn checksum(&self) -> String {
        tree_checksum(&self.parts.iter().map(|p| &p[..]).collect::<Vec<_>>())
    }
}

/// Encodes `captured` with `files`: pages that compress well are compressed, the rest are
/// shared as they are.
pub fn encode(captured: &Captured, files: Files) -> Result<Packed, StoreError> {
    let mut places = Vec::new();
    let mut data = Vec::new();
    let mut at = 0;
    for memory in &captured.image.memories {
        let (part, zstd) = match compressed(&memory.data)? {
            Some(packed) => (Bytes::from(packed), true),
            None => (Bytes::from_owner(memory.data.clone()), false),
        };
        let stored = part.len();
        places.push(Place { at: at as u64, stored: stored as u64, zstd });
        data.push(part);
        let pad = stored.next_multiple_of(ALIGN) - stored;
        data.push(Bytes::from_static(&ZEROS[..pad]));
        at += stored + pad;
    }
    let image = StateImage {
        preopens: captured.image.preopens,
        memories: captured
            .image
            .memories
            .iter()
            .map(|m| MemoryImage { bytes: m.bytes, runs: m.runs.clone(), data: Pages::default() })
            .collect(),
        globals: captured.image.globals.clone(),
    };
    let files = files.into_iter().map(|(path, bytes)| StoredFile { path, bytes }).collect();
    let head = postcard::to_stdvec(&Head { format: FORMAT, image, places, files }).map_err(io)?;
    let packed_head = zstd::bulk::compress(&head, LEVEL).map_err(io)?;
    let mut lead = Vec::with_capacity((24 + packed_head.len()).next_multiple_of(ALIGN));
    lead.extend_from_slice(&MAGIC);
    lead.extend_from_slice(&(packed_head.len() as u64).to_le_bytes());
    lead.extend_from_slice(&(head.len() as u64).to_le_bytes());
    lead.extend_from_slice(&packed_head);
    lead.resize(lead.len().next_multiple_of(ALIGN), 0);
    let parts: Vec<Bytes> = std::iter::once(Bytes::from(lead)).chain(data).filter(|p| !p.is_empty()).collect();
    let len = parts.iter().map(|p| p.len() as u64).sum();
    Ok(Packed { parts, len })
}

/// `data` compressed, when that keeps at most [`WORTH`] fifths of it.
fn compressed(data: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    if data.is_empty() {
        return Ok(None);
    }
    if data.len() > SAMPLE * SAMPLES {
        // A look at a few pieces first: compressing 32 MiB of random bytes to learn that they
        // do not compress took longer than storing them.
        let step = data.len() / SAMPLES;
        let mut kept = 0;
        for i in 0..SAMPLES {
            kept += zstd::bulk::compress(&data[i * step..i * step + SAMPLE], LEVEL).map_err(io)?.len();
        }
        if kept * 5 > SAMPLE * SAMPLES * WORTH {
            return Ok(None);
        }
    }
    let packed = zstd::bulk::compress(data, LEVEL).map_err(io)?;
    Ok((packed.len() * 5 <= data.len() * WORTH).then_some(packed))
}

/// A blob as read: bytes, or (from a local store) its file mapped.
pub enum Blob {
    /// Read into memory.
    Bytes(Bytes),
    /// A local store's file, mapped.
    #[cfg(target_os = "linux")]
    File(std::sync::Arc<crate::engine::pages::FileBytes>),
}

impl std::ops::Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Blob::Bytes(bytes) => bytes,
            #[cfg(target_os = "linux")]
            Blob::File(file) => file,
        }
    }
}

/// Checks `blob` against `content` (its name) and decodes it; `id` names the snapshot in
/// errors.
pub fn decode(id: &str, content: &str, blob: &Blob) -> Result<(StateImage, Files), StoreError> {
    let corrupted = |why: String| StoreError::Corrupted(id.to_string(), why);
    let format_3 = blob.starts_with(&MAGIC);
    let sum = if format_3 { tree_checksum(&[blob]) } else { checksum(blob) };
    if sum != content {
        return Err(corrupted("the content does not match its checksum".into()));
    }
    let (image, files) = if format_3 { decode_3(blob, &corrupted)? } else { decode_2(blob, &corrupted)? };
    Ok((image, files.into_iter().map(|f| (f.path, f.bytes)).collect()))
}

/// A little-endian u64 at `at`.
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    bytes.get(at..at + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_le_bytes)
}

fn written_by_another(corrupted: &dyn Fn(String) -> StoreError) -> StoreError {
    corrupted("it was written by another version of Cella (blob format)".into())
}

fn decode_3(
    blob: &Blob,
    corrupted: &dyn Fn(String) -> StoreError,
) -> Result<(StateImage, Vec<StoredFile>), StoreError> {
    let (Some(stored), Some(plain)) = (word(blob, 8), word(blob, 16)) else {
        return Err(corrupted("it is cut short".into()));
    };
    if plain > MAX_PLAIN {
        return Err(corrupted(format!("it claims {plain} bytes of content")));
    }
    let end = 24usize.saturating_add(stored as usize);
    let frame = blob.get(24..end).ok_or_else(|| corrupted("it is cut short".into()))?;
    let head =
        zstd::bulk::decompress(frame, plain as usize).map_err(|e| corrupted(format!("cannot decompress: {e}")))?;
    if postcard::take_from_bytes::<u32>(&head).map_err(|_| written_by_another(corrupted))?.0 != FORMAT {
        return Err(written_by_another(corrupted));
    }
    let Head { mut image, places, files, .. } =
        postcard::from_bytes(&head).map_err(|e| corrupted(format!("cannot decode: {e}")))?;
    if places.len() != image.memories.len() {
        return Err(corrupted("its memories and their pages do not match".into()));
    }
    let data = end.next_multiple_of(ALIGN);
    for (memory, place) in image.memories.iter_mut().zip(places) {
        let len = memory.runs.iter().try_fold(0u64, |n, r| n.checked_add(u64::from(r.1) * CHUNK as u64));
        let len = len
            .filter(|n| *n <= memory.bytes.min(MAX_PLAIN))
            .ok_or_else(|| corrupted("its runs of pages do not fit their memory".into()))? as usize;
        let from = usize::try_from(place.at).ok().and_then(|at| at.checked_add(data));
        let to = from.and_then(|f| f.checked_add(usize::try_from(place.stored).ok()?));
        let (Some(from), Some(to)) = (from, to) else {
            return Err(corrupted("its pages are not where it says".into()));
        };
        let bytes = blob.get(from..to).ok_or_else(|| corrupted("its pages are not where it says".into()))?;
        memory.data = if place.zstd {
            inflate(bytes, len).map_err(|e| corrupted(format!("cannot decompress pages: {e}")))?
        } else if bytes.len() != len {
            return Err(corrupted("its pages are not where it says".into()));
        } else {
            as_pages(blob, from, len).map_err(io)?
        };
    }
    Ok((image, files))
}

/// `len` bytes of `blob` from `from` as pages: the file's own (mapped, shared) when it is a
/// local file and they are aligned, else a copy.
fn as_pages(blob: &Blob, from: usize, len: usize) -> std::io::Result<Pages> {
    #[cfg(target_os = "linux")]
    if let Blob::File(file) = blob
        && from.is_multiple_of(ALIGN)
    {
        return Pages::slice(file, from, len);
    }
    Pages::copy_of(&blob[from..from + len])
}

/// Decompresses `frame`, which must hold exactly `len` bytes, into pages.
fn inflate(frame: &[u8], len: usize) -> std::io::Result<Pages> {
    let mut pages = Pages::writer(len, Some(crate::engine::pages::SNAPSHOT_FILE));
    let mut decoder = zstd::stream::read::Decoder::with_buffer(frame)?;
    let mut buffer = vec![0; len.clamp(1, 1 << 20)];
    let mut at = 0;
    loop {
        let n = decoder.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        if at + n > len {
            return Err(std::io::Error::other("more bytes than its runs hold"));
        }
        pages.write_at(at, &buffer[..n])?;
        at += n;
    }
    if at != len {
        return Err(std::io::Error::other("fewer bytes than its runs hold"));
    }
    pages.finish()
}

fn decode_2(
    packed: &[u8],
    corrupted: &dyn Fn(String) -> StoreError,
) -> Result<(StateImage, Vec<StoredFile>), StoreError> {
    let (size, frame) = packed.split_at_checked(8).unwrap_or((&[], &[]));
    let size = <[u8; 8]>::try_from(size).map(u64::from_le_bytes).unwrap_or(0);
    if size > MAX_PLAIN {
        return Err(corrupted(format!("it claims {size} bytes of content")));
    }
    let plain =
        zstd::bulk::decompress(frame, size as usize).map_err(|e| corrupted(format!("cannot decompress: {e}")))?;
    if postcard::take_from_bytes::<u32>(&plain).map_err(|_| written_by_another(corrupted))?.0 != FORMAT_2 {
        return Err(written_by_another(corrupted));
    }
    let body: Body2 = postcard::from_bytes(&plain).map_err(|e| corrupted(format!("cannot decode: {e}")))?;
    Ok((body.image, body.files))
}

/// Pieces of a format-3 blob hashed apart, side by side.
const PIECE: usize = 4 << 20;

/// A format-3 blob's checksum: the xxh3-128 of the xxh3-128s (little-endian) of each
/// [`PIECE`] bytes of `parts` (the blob, in order), hex. The pieces are hashed on as many
/// threads as there are cores: hashing a 32 MiB blob on one took half of its restore.
pub(super) fn tree_checksum(parts: &[&[u8]]) -> String {
    let mut pieces: Vec<Vec<&[u8]>> = Vec::new();
    let mut room = 0;
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            if room == 0 {
                pieces.push(Vec::new());
                room = PIECE;
            }
            let (head, tail) = rest.split_at(room.min(rest.len()));
            pieces.last_mut().into_iter().for_each(|p| p.push(head));
            room -= head.len();
            rest = tail;
        }
    }
    let hash = |piece: &Vec<&[u8]>| match piece[..] {
        // One slice: the one-shot function, twice as fast as feeding the streaming hasher.
        [slice] => xxhash_rust::xxh3::xxh3_128(slice),
        _ => {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            piece.iter().for_each(|s| hasher.update(s));
            hasher.digest128()
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(pieces.len() / 2).max(1);
    let sums: Vec<u128> = if threads == 1 {
        pieces.iter().map(hash).collect()
    } else {
        let per = pieces.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let running: Vec<_> =
                pieces.chunks(per).map(|some| scope.spawn(move || some.iter().map(hash).collect::<Vec<_>>())).collect();
            running.into_iter().flat_map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        })
    };
    let all: Vec<u8> = sums.iter().flat_map(|s| s.to_le_bytes()).collect();
    checksum(&all)
}

#[cfg(test)]
#[path = "blob_tests.rs"]
mod tests;
