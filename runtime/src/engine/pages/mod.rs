//! Immutable byte buffers for captured memory pages. On Linux they live in a sealed memfd,
//! or in a stored snapshot's file ([`FileBytes`], mapped read-only), so a restore can map them
//! copy-on-write into a linear memory ([`crate::engine::overlay`]) instead of copying them: N
//! forks of one session share its pages until each writes, and a session restored from a local
//! store shares them with the file's page cache until it writes. A fork of one copy keeps
//! them in an anonymous buffer of their own ([`Pages::movable`], [`anon`]), whose pages its
//! restore moves into the copy. Captures to be stored go to such a buffer too (not movable),
//! which comes ready from [`spares`] where one is kept; small ones, other platforms, and
//! whatever cannot get a memfd or buffer use plain heap bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Fewer bytes than this stay on the heap: a file costs four system calls, and runs this
/// short are copied, not mapped ([`crate::engine::overlay::MAP_MIN`]).
pub const FILE_MIN: usize = 64 << 10;

/// The name of the files holding a snapshot's pages.
pub const SNAPSHOT_FILE: &std::ffi::CStr = c"cella-snapshot";

/// The name of the files holding a warm image's pages.
pub const BASELINE_FILE: &std::ffi::CStr = c"cella-baseline";

/// Immutable bytes, cheap to clone (shared).
#[derive(Clone)]
pub struct Pages(Arc<Inner>);

enum Inner {
    Heap(Vec<u8>),
    #[cfg(target_os = "linux")]
    Sealed(memfd::Mapped),
    /// `len` bytes of a mapped file from byte `at`.
    #[cfg(target_os = "linux")]
    Slice(Arc<FileBytes>, usize, usize),
    /// Pages in an anonymous buffer; a restore moves them out ([`Pages::move_out`]) when
    /// they are movable (`true`).
    #[cfg(target_os = "linux")]
    Anon(anon::Buffer, bool),
}

/// A whole file mapped read-only, for [`Pages::slice`]: a stored snapshot's blob, read
/// without copying. The file must never change while mapped (a blob is written once under
/// a temporary name and renamed; it is only ever deleted).
#[cfg(target_os = "linux")]
pub struct FileBytes(memfd::Mapped);

#[cfg(target_os = "linux")]
impl FileBytes {
    /// Maps all of `file`, its pages read in at once (`MAP_POPULATE`); gives the file back
    /// with the error when it cannot be mapped, or should not be: on a network or FUSE file
    /// system, another machine may delete or change the file, and a mapped page read again
    /// after that would fault the session using it.
    pub fn try_map(file: std::fs::File) -> Result<FileBytes, (std::fs::File, std::io::Error)> {
        use std::os::fd::AsFd;
        if remote(&file) {
            return Err((file, std::io::Error::other("the file is on a network file system")));
        }
        let len = match file.metadata().map(|m| usize::try_from(m.len())) {
            Ok(Ok(len)) => len,
            Ok(Err(e)) => return Err((file, std::io::Error::other(e))),
            Err(e) => return Err((file, e)),
        };
        let fd = match file.as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(e) => return Err((file, e)),
        };
        memfd::Mapped::new(fd, len, true).map(FileBytes).map_err(|e| (file, e))
    }
}

/// Whether `file` is on a file system another machine can change (NFS, SMB/CIFS, Ceph, 9P,
/// AFS, FUSE), or one that cannot be asked.
#[cfg(target_os = "linux")]
fn remote(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    const REMOTE: [u32; 8] =
        [0x6969, 0x517B, 0xFF53_4D42, 0xFE53_4D42, 0x00C3_6400, 0x0102_1997, 0x5346_414F, 0x6573_5546];
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: a plain query on an open fd, into a buffer of the right type.
    #[allow(unsafe_code)]
    if unsafe { libc::fstatfs(file.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return true;
    }
    // SAFETY: fstatfs succeeded, so it filled the buffer.
    #[allow(unsafe_code)]
    let kind = unsafe { stat.assume_init() }.f_type as u64 as u32;
    REMOTE.contains(&kind)
}

#[cfg(target_os = "linux")]
impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.bytes()
    }
}

impl Pages {
    /// A writer of `len` bytes (all zero until written); [`Writer::finish`] makes them
    /// pages. `file` asks for a file of that name (as `/proc/*/maps` shows it), when the
    /// platform has them and `len` is worth one ([`FILE_MIN`] or more); otherwise, and
    /// whenever the file cannot be made, the bytes are on the heap, or, several MiB of them
    /// on Linux, in an anonymous buffer (a ready spare where one is kept: [`spares`]).
    pub fn writer(len: usize, file: Option<&std::ffi::CStr>) -> Writer {
        #[cfg(target_os = "linux")]
        if let Some(name) = file
            && len >= FILE_MIN
            && let Some(file) = memfd::Open::new(name, len)
        {
            return Writer(WriterInner::Memfd(file));
        }
        #[cfg(target_os = "linux")]
        if file.is_none()
            && len >= spares::HUGE_MIN
            && let Some(buffer) = anon::Buffer::new(len)
        {
            return Writer(WriterInner::Anon(buffer, false));
        }
        #[cfg(not(target_os = "linux"))]
        let _ = file;
        Writer(WriterInner::Heap(huge_vec(len), len))
    }

    /// A writer of `len` bytes whose pages a restore can move into a linear memory
    /// ([`Pages::move_out`]) rather than copy: for a capture restored exactly once. On the
    /// heap, as [`Pages::writer`]'s, when the platform cannot or `len` is below [`FILE_MIN`].
    pub fn movable(len: usize) -> Writer {
        #[cfg(target_os = "linux")]
        if len >= FILE_MIN
            && let Some(buffer) = anon::Buffer::new(len)
        {
            return Writer(WriterInner::Anon(buffer, true));
        }
        Pages::writer(len, None)
    }

    /// A mappable copy of `bytes` (a file named [`SNAPSHOT_FILE`]).
    pub fn copy_of(bytes: &[u8]) -> std::io::Result<Pages> {
        let mut writer = Pages::writer(bytes.len(), Some(SNAPSHOT_FILE));
        writer.write_at(0, bytes)?;
        writer.finish()
    }

    /// `len` bytes of `file` from byte `at` (mappable when `at` is a multiple of 4 KiB).
    #[cfg(target_os = "linux")]
    pub fn slice(file: &Arc<FileBytes>, at: usize, len: usize) -> std::io::Result<Pages> {
        if at.checked_add(len).is_none_or(|end| end > file.len()) {
            return Err(std::io::Error::other("a slice past the end of the file"));
        }
        Ok(Pages(Arc::new(Inner::Slice(file.clone(), at, len))))
    }

    /// The file holding the bytes, when they are in one, and the file offset of the first.
    #[cfg(target_os = "linux")]
    pub fn file(&self) -> Option<(std::os::fd::BorrowedFd<'_>, usize)> {
        match &*self.0 {
            Inner::Sealed(sealed) => Some((sealed.fd(), 0)),
            Inner::Slice(file, at, _) => Some((file.0.fd(), *at)),
            Inner::Heap(_) | Inner::Anon(..) => None,
        }
    }

    /// Whether the pages can be moved out ([`Pages::movable`]), and none have been yet.
    pub fn can_move(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Inner::Anon(buffer, true) = &*self.0 {
            return !buffer.moved();
        }
        false
    }

    /// Whether some of the pages were moved out: they read as zeros now, and the capture
    /// holding them cannot be restored again.
    pub fn spent(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Inner::Anon(buffer, _) = &*self.0 {
            return buffer.moved();
        }
        false
    }

    /// Moves `len` bytes from `at` to host address `to` (see [`anon::Buffer::move_out`]);
    /// `Ok(false)`, moving nothing, when these pages cannot be moved.
    ///
    /// # Safety
    ///
    /// As [`anon::Buffer::move_out`]: `to .. to + len` a writable private mapping the caller
    /// may replace, all three multiples of 4 KiB, and no one reading the moved range again.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub unsafe fn move_out(&self, at: usize, len: usize, to: usize) -> std::io::Result<bool> {
        match &*self.0 {
            // SAFETY: forwarded from the caller.
            Inner::Anon(buffer, true) => unsafe { buffer.move_out(at, len, to) }.map(|()| true),
            _ => Ok(false),
        }
    }
}

impl std::ops::Deref for Pages {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &*self.0 {
            Inner::Heap(bytes) => bytes,
            #[cfg(target_os = "linux")]
            Inner::Sealed(sealed) => sealed.bytes(),
            #[cfg(target_os = "linux")]
            Inner::Slice(file, at, len) => &file[*at..*at + *len],
            #[cfg(target_os = "linux")]
            Inner::Anon(buffer, _) => buffer.bytes(),
        }
    }
}

impl AsRef<[u8]> for Pages {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Pages {
    fn from(bytes: Vec<u8>) -> Pages {
        Pages(Arc::new(Inner::Heap(bytes)))
    }
}

impl Default for Pages {
    fn default() -> Pages {
        Pages::from(Vec::new())
    }
}

impl PartialEq for Pages {
    fn eq(&self, other: &Pages) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match &*self.0 {
            Inner::Heap(_) => "heap",
            #[cfg(target_os = "linux")]
            Inner::Sealed(_) => "memfd",
            #[cfg(target_os = "linux")]
            Inner::Slice(..) => "file",
            #[cfg(target_os = "linux")]
            Inner::Anon(..) => "anonymous",
        };
        write!(f, "Pages({} bytes, {place})", self.len())
    }
}

/// An empty vector with room for `len` bytes; on Linux, when that is several MiB, backed by
/// transparent huge pages where the system gives them on request (`madvise` mode): filling
/// 32 MiB of 4 KiB pages took 8,192 page faults and as many TLB misses.
fn huge_vec(len: usize) -> Vec<u8> {
    let bytes = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    if len >= 4 << 20 {
        let start = (bytes.as_ptr() as usize).next_multiple_of(4096);
        let end = (bytes.as_ptr() as usize + len) & !4095;
        // SAFETY: an advice on pages of this vector's own allocation, which nothing has
        // written yet; it changes how they are backed, never what they hold.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
    bytes
}

/// Fills a buffer made by [`Pages::writer`].
pub struct Writer(WriterInner);

enum WriterInner {
    /// The bytes written so far (zeros where skipped) and the length to reach: in-order
    /// writes append, with no zeroing pass first.
    Heap(Vec<u8>, usize),
    #[cfg(target_os = "linux")]
    Memfd(memfd::Open),
    /// A buffer, and whether its pages may be moved out.
    #[cfg(target_os = "linux")]
    Anon(anon::Buffer, bool),
}

impl Writer {
    /// The pages written: sealed, never to change again.
    pub fn finish(self) -> std::io::Result<Pages> {
        let inner = match self.0 {
            WriterInner::Heap(mut bytes, len) => {
                bytes.resize(len, 0);
                Inner::Heap(bytes)
            }
            #[cfg(target_os = "linux")]
            WriterInner::Memfd(file) => Inner::Sealed(file.seal()?),
            #[cfg(target_os = "linux")]
            WriterInner::Anon(buffer, movable) => Inner::Anon(buffer, movable),
        };
        Ok(Pages(Arc::new(inner)))
    }

    /// Cuts the buffer to its first `len` bytes (no more than it has).
    pub fn shrink(&mut self, len: usize) -> std::io::Result<()> {
        match &mut self.0 {
            WriterInner::Heap(buffer, most) => {
                if len > *most {
                    return Err(std::io::Error::other("cannot grow the pages"));
                }
                buffer.truncate(len);
                *most = len;
                Ok(())
            }
            #[cfg(target_os = "linux")]
            WriterInner::Memfd(file) => file.shrink(len),
            #[cfg(target_os = "linux")]
            WriterInner::Anon(buffer, _) => buffer.shrink(len),
        }
    }

    /// Writes `bytes` at `offset`; the range must lie inside the buffer.
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.0 {
            WriterInner::Heap(buffer, len) => {
                if offset.checked_add(bytes.len()).is_none_or(|end| end > *len) {
                    return Err(std::io::Error::other("a write past the end of the pages"));
                }
                if offset >= buffer.len() {
                    buffer.resize(offset, 0);
                    buffer.extend_from_slice(bytes);
                } else {
                    let inside = (buffer.len() - offset).min(bytes.len());
                    buffer[offset..offset + inside].copy_from_slice(&bytes[..inside]);
                    buffer.extend_from_slice(&bytes[inside..]);
                }
                Ok(())
            }
            #[cfg(target_os = "linux")]
            WriterInner::Memfd(file) => file.write_at(offset, bytes),
            #[cfg(target_os = "linux")]
            WriterInner::Anon(buffer, _) => buffer.write_at(offset, bytes),
        }
    }
}

impl Serialize for Pages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for Pages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Pages, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Pages;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Pages, E> {
                Pages::copy_of(bytes).map_err(E::custom)
            }

            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Pages, E> {
                Ok(Pages::from(bytes))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod memfd;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod anon;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod spares;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_pages_read_back_and_round_trip_through_postcard() {
        let mut writer = Pages::writer(FILE_MIN, Some(SNAPSHOT_FILE));
        writer.write_at(4096, &[7; 4096]).expect("written");
        writer.write_at(2 * 4096 + 10, b"abc").expect("written");
        let pages = writer.finish().expect("sealed");
        assert_eq!(pages.len(), FILE_MIN);
        assert!(pages[..4096].iter().all(|b| *b == 0));
        assert!(pages[4096..8192].iter().all(|b| *b == 7));
        assert_eq!(&pages[8202..8205], b"abc");
        #[cfg(target_os = "linux")]
        assert!(pages.file().is_some(), "Linux pages live in a memfd: {pages:?}");
        let bytes = postcard::to_allocvec(&pages).expect("encoded");
        let back: Pages = postcard::from_bytes(&bytes).expect("decoded");
        assert_eq!(back, pages);
        assert_eq!(bytes, postcard::to_allocvec(&serde_bytes::ByteBuf::from(pages.to_vec())).expect("encoded"));
    }

    #[test]
    fn writes_past_the_end_are_refused_and_empty_pages_work() {
        assert!(Pages::writer(4096, None).write_at(4000, &[1; 200]).is_err());
        let mut heap = Pages::writer(3 * 4096, None);
        heap.write_at(4096, &[5; 10]).expect("written");
        heap.write_at(0, &[6; 4096]).expect("written");
        heap.write_at(4100, &[5; 6]).expect("written");
        let heap = heap.finish().expect("finished");
        assert_eq!(heap.len(), 3 * 4096);
        assert!(heap[..4096].iter().all(|b| *b == 6) && heap[4096..4106].iter().all(|b| *b == 5));
        assert!(heap[4106..].iter().all(|b| *b == 0));
        let empty = Pages::writer(0, Some(SNAPSHOT_FILE)).finish().expect("sealed");
        assert!(empty.is_empty());
        assert_eq!(Pages::default(), empty);
    }

    #[test]
    fn a_writer_is_cut_to_what_was_written() {
        for writer in [
            Pages::writer(4 * FILE_MIN, None),
            Pages::writer(4 * FILE_MIN, Some(SNAPSHOT_FILE)),
            Pages::movable(4 * FILE_MIN),
        ] {
            let mut writer = writer;
            writer.write_at(0, &[3; FILE_MIN]).expect("written");
            writer.write_at(FILE_MIN, &[4; 4096]).expect("written");
            assert!(writer.shrink(8 * FILE_MIN).is_err(), "a writer does not grow");
            writer.shrink(FILE_MIN + 4096).expect("cut");
            assert!(writer.write_at(FILE_MIN + 4096, &[1]).is_err(), "nothing is written past the cut");
            let pages = writer.finish().expect("finished");
            assert_eq!(pages.len(), FILE_MIN + 4096, "{pages:?}");
            assert!(pages[..FILE_MIN].iter().all(|b| *b == 3) && pages[FILE_MIN..].iter().all(|b| *b == 4));
        }
    }

    /// A large capture buffer, once dropped, is made ready in the background and handed to
    /// the next capture of its size: all zeros again, whatever the last one wrote, whether
    /// its pages stayed (zeroed in place) or were moved out (faulted in again).
    #[test]
    #[cfg(target_os = "linux")]
    fn a_dropped_buffer_comes_back_zeroed_for_the_next_capture() {
        // A size no other test uses, so that the spare found is this one.
        let len = 3 * spares::HUGE_MIN + 5 * 4096;
        let mut writer = Pages::writer(len, None);
        writer.write_at(0, &vec![0xAB; len]).expect("written");
        let pages = writer.finish().expect("finished");
        assert!(format!("{pages:?}").contains("anonymous") && !pages.can_move(), "{pages:?}");
        let first = pages.as_ptr() as usize;
        let before = spares::held();
        drop(pages);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while spares::held() < before + len && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let again = Pages::writer(len, None).finish().expect("finished");
        assert_eq!(again.as_ptr() as usize, first, "the spare was reused");
        assert!(again.iter().all(|b| *b == 0), "a reused buffer reads zeros");

        // One whose pages were partly moved out comes back whole: zeros, where they left and
        // where they stayed. (Another size, so that the spare found is this one.)
        let len = 5 * spares::HUGE_MIN + 7 * 4096;
        let mut writer = Pages::movable(len);
        writer.write_at(0, &vec![0xCD; len]).expect("written");
        let pages = writer.finish().expect("finished");
        let first = pages.as_ptr() as usize;
        let target = anon::Buffer::new(FILE_MIN).expect("a mapping to move into");
        // SAFETY: the target buffer is ours to replace (no borrow of it is alive), all offsets
        // are whole pages, and the moved range of `pages` is never read again.
        #[allow(unsafe_code)]
        let moved = unsafe { pages.move_out(0, FILE_MIN, target.bytes().as_ptr() as usize) }.expect("moved");
        assert!(moved && target.bytes().iter().all(|b| *b == 0xCD));
        let before = spares::held();
        drop(pages);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while spares::held() < before + len && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let again = Pages::movable(len).finish().expect("finished");
        assert_eq!(again.as_ptr() as usize, first, "the spare was reused");
        assert!(again.iter().all(|b| *b == 0), "a reused buffer reads zeros");
        assert!(again.can_move(), "and its pages can be moved again");
    }

    /// Movable pages go to another mapping whole; the buffer reads zeros there after, and
    /// says it is spent.
    #[test]
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn movable_pages_move_out_once() {
        let mut writer = Pages::movable(2 * FILE_MIN);
        writer.write_at(0, &[9; 2 * FILE_MIN]).expect("written");
        let pages = writer.finish().expect("finished");
        assert!(pages.can_move() && !pages.spent());
        let target = anon::Buffer::new(FILE_MIN).expect("a mapping to move into");
        // SAFETY: the target buffer is ours to replace (no borrow of it is alive), all
        // offsets are whole pages, and the moved range of `pages` is read below only to
        // check that it is zeros now.
        let moved = unsafe { pages.move_out(FILE_MIN, FILE_MIN, target.bytes().as_ptr() as usize) }.expect("moved");
        assert!(moved);
        assert!(target.bytes().iter().all(|b| *b == 9), "the pages arrived");
        assert!(pages[FILE_MIN..].iter().all(|b| *b == 0), "the buffer reads zeros where they left");
        assert!(pages[..FILE_MIN].iter().all(|b| *b == 9), "the rest stays");
        assert!(pages.spent() && !pages.can_move());
    }
}
