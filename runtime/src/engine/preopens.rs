//! Preopened directories across a snapshot: the one kind of host handle a guest may hold
//! between calls and still be captured (wasi-libc takes them on its first file access). A
//! capture counts them; a restore hands the new instance the same directories at the same
//! handle indices before its memory is written.

use crate::engine::access::functions::Access;
use crate::engine::host::HostState;
use crate::engine::snapshot::{CaptureError, PAGE, access, borrow, write};
use wasmtime::Store;

/// Set in a held count when the guest holds the three stdio streams before its directories
/// (what wasi-libc's preview 1 adapter takes at its first use of any file descriptor).
pub(crate) const WITH_STDIO: u32 = 1 << 31;

/// How many preopened directories the guest holds, when they are all it holds and it took
/// them first (host table indices 0..n), or right after the three stdio streams (then with
/// [`WITH_STDIO`]); refuses anything else it holds.
pub(crate) fn held_preopens(store: &mut Store<HostState>) -> Result<u32, CaptureError> {
    if store.data().holds_no_resources() {
        return Ok(0);
    }
    let held = store.data_mut().held_resources();
    let granted = store.data().preopens;
    let in_order = |skip: usize| {
        held.iter()
            .enumerate()
            .all(|(i, (index, kind))| *index as usize == i && *kind == if i < skip { "other" } else { "directory" })
    };
    if held.len() == granted && in_order(0) {
        return Ok(granted as u32);
    }
    if held.len() == granted + 3 && in_order(3) {
        return Ok(granted as u32 | WITH_STDIO);
    }
    let names: Vec<String> = held.iter().map(|(i, kind)| format!("{kind} #{i}")).collect();
    Err(CaptureError::HoldsHandles(names.join(", ")))
}

/// Hands a fresh instance its preopened directories as the snapshot's guest held them: the
/// first handles it takes. `get-directories` writes its answer at address 0 of the first
/// memory, whose first page is put back afterwards.
pub(crate) async fn replay_preopens(
    store: &mut Store<HostState>,
    fns: &Access,
    wanted: u32,
) -> Result<(), CaptureError> {
    let replay = if wanted & WITH_STDIO != 0 { &fns.replay_stdio } else { &fns.replay };
    let (Some(replay), Some(memory)) = (replay, fns.memories.first()) else {
        return Err(CaptureError::Mismatch(
            "the session held directories; this component cannot be handed them".into(),
        ));
    };
    if !store.data().holds_no_resources() {
        return Err(CaptureError::Mismatch("the new instance already holds resources".into()));
    }
    let page = borrow(store, memory, 0, PAGE).await?.as_le_slice(&*store).to_vec();
    replay.call_async(&mut *store, ()).await.map_err(access)?;
    memory.dest.call_async(&mut *store, (0,)).await.map_err(access)?;
    write(store, &memory.write, &page).await?;
    let now = held_preopens(store)?;
    if now != wanted {
        let count = |n: u32| {
            format!("{} directories{}", n & !WITH_STDIO, if n & WITH_STDIO != 0 { " after stdio" } else { "" })
        };
        return Err(CaptureError::Mismatch(format!(
            "the session held {}; this server grants {}",
            count(wanted),
            count(now)
        )));
    }
    Ok(())
}

/// The file beside a cached warm image that says how many directories its guest holds.
fn count_path(cache: &crate::engine::cache::ComponentCache, key: &str) -> std::path::PathBuf {
    cache.dir().join(format!("{key}.preopens"))
}

/// Records that the warm image `key` holds `count` directories (nothing when none).
pub(crate) fn save_count(cache: &crate::engine::cache::ComponentCache, key: &str, count: u32) {
    let path = count_path(cache, key);
    let written = if count == 0 {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    } else {
        std::fs::write(&path, count.to_string())
    };
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "could not record the warm image's directories");
    }
}

/// How many directories the cached warm image `key` holds (0 when it says nothing).
pub(crate) fn load_count(cache: &crate::engine::cache::ComponentCache, key: &str) -> u32 {
    std::fs::read_to_string(count_path(cache, key)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// Hands a new instance of a warm image the `count` directories its guest held at warmup.
pub(crate) async fn replay_into(
    store: &mut Store<HostState>,
    instance: &wasmtime::component::Instance,
    count: u32,
) -> Result<(), CaptureError> {
    let fns = crate::engine::access::functions::Exports::first_memory(store, instance)?.functions(store, instance)?;
    replay_preopens(store, &fns, count).await
}
