//! Spare buffers for captures: anonymous mappings already faulted in and zeroed, so that a
//! snapshot or a fork copies a session's pages into memory that is ready, instead of paying
//! the kernel for a fresh page (a fault, and zeroing it) per page on the request's time. On
//! this project's 2-core machine, copying 33 MiB into fresh huge pages took 13 ms, into
//! faulted-in ones 7.
//!
//! A buffer that is done with (its capture stored, or its pages moved into a fork's copy) is
//! handed to one background thread, at low priority, which zeroes what was written in place,
//! or, where pages were moved out, discards and faults them in again (`MADV_DONTNEED`, then
//! `MADV_POPULATE_WRITE`: zeros, resident), and keeps it for the next capture of about its
//! size. Spares hold at most [`set_budget`]'s bytes in all (the
//! server's `snapshots.spare_mb`) and are unmapped after [`IDLE`] unused.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// Mappings this large are backed by transparent huge pages where the system gives them on
/// request (`madvise` mode): fewer faults while they are filled.
pub const HUGE_MIN: usize = 4 << 20;

/// A spare unused this long is unmapped: the memory is the system's again.
pub const IDLE: Duration = Duration::from_secs(60);

/// Bytes spares may hold in all: 128 MiB until [`set_budget`].
static BUDGET: AtomicUsize = AtomicUsize::new(128 << 20);

/// The spares, each with when it was made ready.
static SPARES: Mutex<Vec<(Mapping, Instant)>> = Mutex::new(Vec::new());

/// Sets the bytes spares may hold in all (0: none are kept, every buffer is a fresh mapping).
pub fn set_budget(bytes: usize) {
    BUDGET.store(bytes, Ordering::Relaxed);
}

/// A private anonymous read-write mapping, unmapped on drop.
pub struct Mapping {
    /// Its first byte.
    pub map: NonNull<u8>,
    /// Its length, in whole 4 KiB pages.
    pub len: usize,
}

// SAFETY: a mapping is plain memory owned by this value alone.
unsafe impl Send for Mapping {}

impl Mapping {
    /// A new mapping of at least `len` bytes (zeros, no memory used until written), or
    /// `None` when the kernel refuses it. Large ones are a whole number of huge pages long
    /// and advised to be backed by them.
    pub fn new(len: usize) -> Option<Mapping> {
        let len = if len >= HUGE_MIN { len.next_multiple_of(2 << 20) } else { len.next_multiple_of(4096) };
        if len == 0 {
            return None;
        }
        // SAFETY: a new private anonymous mapping, placed by the kernel.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        let map = Mapping { map: NonNull::new(map.cast::<u8>())?, len };
        if len >= HUGE_MIN {
            // SAFETY: advice on this mapping's own pages: how they are backed, not what they
            // hold.
            let _ = unsafe { libc::madvise(map.map.as_ptr().cast(), len, libc::MADV_HUGEPAGE) };
        }
        Some(map)
    }

    /// Makes every page zeros and resident; false when the kernel cannot (before Linux
    /// 5.14), or has no memory for it. `written`: bytes past the first `n` were never
    /// written and every page is still there (none moved out), so zeroing those in place is
    /// enough (half the time of discarding and faulting in again); `None` when pages may
    /// have been moved out.
    fn ready(&self, written: Option<usize>) -> bool {
        let (at, len) = (self.map.as_ptr().cast::<libc::c_void>(), self.len);
        match written {
            Some(n) => {
                // SAFETY: the range lies inside this mapping, which no one else uses while it
                // is being made ready (it is owned here).
                unsafe { std::ptr::write_bytes(self.map.as_ptr(), 0, n.min(len)) };
            }
            None => {
                // SAFETY: as above; discarded private anonymous pages read as zeros.
                if unsafe { libc::madvise(at, len, libc::MADV_DONTNEED) } != 0 {
                    return false;
                }
            }
        }
        // SAFETY: as above; faulting pages in changes nothing they hold.
        unsafe { libc::madvise(at, len, libc::MADV_POPULATE_WRITE) == 0 }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by this value and unmapped once, here.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.len) };
    }
}

/// A ready spare (zeros, resident) of `len` bytes or more, but not more than twice that,
/// when one is kept; the smallest that fits.
pub fn take(len: usize) -> Option<Mapping> {
    if len < HUGE_MIN {
        return None;
    }
    let mut spares = SPARES.lock().ok()?;
    let best = spares
        .iter()
        .enumerate()
        .filter(|(_, (m, _))| (len..=2 * len).contains(&m.len))
        .min_by_key(|(_, (m, _))| m.len)
        .map(|(i, _)| i)?;
    Some(spares.swap_remove(best).0)
}

/// Hands back a mapping done with: made ready and kept, when it is large enough to be worth
/// it and the budget has room; unmapped otherwise. `written` as [`Mapping::ready`] takes it.
pub fn give(mapping: Mapping, written: Option<usize>) {
    if mapping.len < HUGE_MIN || mapping.len > BUDGET.load(Ordering::Relaxed) {
        return;
    }
    if let Some(sender) = refiller() {
        // A send fails only if the thread is gone; the mapping is then unmapped with it.
        let _ = sender.send((mapping, written));
    }
}

/// A mapping handed back, with what [`Mapping::ready`] needs to know of it.
type Returned = (Mapping, Option<usize>);

/// The background thread's queue, started on first use; `None` if it cannot start.
fn refiller() -> Option<&'static mpsc::Sender<Returned>> {
    static SENDER: OnceLock<Option<mpsc::Sender<Returned>>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            let (sender, receiver) = mpsc::channel();
            let started = std::thread::Builder::new().name("cella-spares".into()).spawn(move || refill(receiver));
            started.ok().map(|_| sender)
        })
        .as_ref()
}

/// The background thread: makes each mapping handed back ready and keeps it, within the
/// budget; unmaps spares idle for [`IDLE`].
fn refill(receiver: mpsc::Receiver<Returned>) {
    // Below the request threads: making spares ready is never more urgent than a call.
    // SAFETY: plain calls on this thread's own id.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
    loop {
        match receiver.recv_timeout(IDLE / 4) {
            Ok((mapping, written)) => {
                let held: usize = SPARES.lock().map(|s| s.iter().map(|(m, _)| m.len).sum()).unwrap_or(usize::MAX);
                if held.saturating_add(mapping.len) > BUDGET.load(Ordering::Relaxed) || !mapping.ready(written) {
                    continue;
                }
                if let Ok(mut spares) = SPARES.lock() {
                    spares.push((mapping, Instant::now()));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Unmapped after the lock is let go (`munmap` of many MiB takes a while).
                let idle: Vec<(Mapping, Instant)> = match SPARES.lock() {
                    Ok(mut spares) => {
                        let (idle, kept) = spares.drain(..).partition(|(_, since)| since.elapsed() >= IDLE);
                        *spares = kept;
                        idle
                    }
                    Err(_) => Vec::new(),
                };
                drop(idle);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Bytes the spares hold now.
pub fn held() -> usize {
    SPARES.lock().map(|s| s.iter().map(|(m, _)| m.len).sum()).unwrap_or(0)
}
