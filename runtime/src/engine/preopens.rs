//! Preopened directories across a snapshot: the one kind of host handle a guest may hold
//! between calls and still be captured (wasi-libc takes them on its first file access). A
//! capture counts them; a restore hands the new instance the same directories at the same
//! handle indices before its memory is written.

use crate::engine::access::functions::Access;
use crate::engine::host::HostState;
use crate::engine::snapshot::{CaptureError, PAGE, access, borrow, write};
use wasmtime::Store;

/// How many preopened directories the guest holds, when they are all it holds and it took
/// them first (host table indices 0..n); refuses anything else it holds.
pub(crate) fn held_preopens(store: &mut Store<HostState>) -> Result<u32, CaptureError> {
    if store.data().holds_no_resources() {
        return Ok(0);
    }
    let held = store.data_mut().held_resources();
    let granted = store.data().preopens;
    let only_preopens = held.len() == granted
        && held.iter().enumerate().all(|(i, (index, kind))| *index as usize == i && *kind == "directory");
    if only_preopens {
        return Ok(granted as u32);
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
    let (Some(replay), Some(memory)) = (&fns.replay, fns.memories.first()) else {
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
        return Err(CaptureError::Mismatch(format!("the session held {wanted} directories; this server grants {now}")));
    }
    Ok(())
}
