//! Warm images: run a backend's `warmup` once inside wasmtime-wizer and keep the snapshot.
//!
//! The snapshot is a component whose memories start out as warmup left them, so every
//! instance made from it is warm at once (its memory mapped copy-on-write from the image).

use crate::config::Grants;
use crate::engine::host::HostState;
use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Linker, Val};
use wasmtime_wizer::Wizer;

/// The exported warmup function, as wizer names it.
const WARMUP_EXPORT: &str = "cella:backend/guest.warmup@0.1.0";

/// How long wizer may take to compile the instrumented component before warmup starts.
const COMPILE_ALLOWANCE: Duration = Duration::from_secs(900);

/// Beyond twice the warmup deadline, how long wizer may take to write the snapshot.
const SNAPSHOT_ALLOWANCE: Duration = Duration::from_secs(300);

/// Why no snapshot was made.
#[derive(Debug)]
pub enum SnapshotError {
    /// The guest's warmup returned an error or trapped: warmup itself failed.
    Guest(String),
    /// The component cannot be snapshotted (the runtime falls back to warmup per instance).
    Unsupported(String),
}

/// A warm image: the snapshot component, and how many preopened directories warmup left the
/// guest holding (wasi-libc keeps them once it has touched a file), which every instance
/// made from the image must be handed again ([`crate::engine::preopens::replay_preopens`]).
pub struct Image {
    /// The snapshot component.
    pub wasm: Vec<u8>,
    /// The directories the guest holds, host table indices `0..preopens`.
    pub preopens: u32,
}

/// Runs `warmup(config)` in `store` under wizer and returns the snapshot.
pub async fn snapshot(
    mut store: Store<HostState>,
    linker: &Linker<HostState>,
    wasm: &[u8],
    config: &str,
    timeout: Duration,
) -> Result<Image, SnapshotError> {
    let mut wizer = Wizer::new();
    wizer.init_func(format!("{WARMUP_EXPORT}({})", wave_string(config)));
    // The world requires the warmup export to stay.
    wizer.keep_init_func(true);
    // The deadline counts the guest's time only: wizer compiles the instrumented component
    // first (about a minute for a 100 MB interpreter on 2 cores), and that is not warmup.
    let guest_started: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    store.data_mut().deadline = Instant::now() + COMPILE_ALLOWANCE + timeout;
    store.set_epoch_deadline(1);
    let run = wizer.run_component(&mut store, wasm, async |store, component| {
        store.data_mut().deadline = Instant::now() + timeout;
        *guest_started.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        linker.instantiate_async(store, component).await
    });
    let watchdog = async {
        // The epoch deadline stops guest code; this stops a guest parked in a host call, and
        // a compile that never ends. Snapshotting after warmup gets as long again.
        let begun = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let guest = *guest_started.lock().unwrap_or_else(|e| e.into_inner());
            let over = match guest {
                Some(at) => at.elapsed() > timeout * 2 + SNAPSHOT_ALLOWANCE,
                None => begun.elapsed() > COMPILE_ALLOWANCE,
            };
            if over {
                return guest.is_some();
            }
        }
    };
    let outcome = tokio::select! {
        done = run => Ok(done),
        guest_ran = watchdog => Err(guest_ran),
    };
    let (image, results) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            let text = format!("{e:#}");
            return Err(
                if e.downcast_ref::<wasmtime::Trap>().is_some() || text.contains("initialization function trapped") {
                    SnapshotError::Guest(format!("warmup trapped: {text}"))
                } else {
                    SnapshotError::Unsupported(text)
                },
            );
        }
        Err(true) => {
            return Err(SnapshotError::Guest(format!("warmup timed out after {}s", timeout.as_secs_f64())));
        }
        Err(false) => {
            return Err(SnapshotError::Unsupported(format!(
                "compiling the component for warmup took over {}s",
                COMPILE_ALLOWANCE.as_secs()
            )));
        }
    };
    match results.first() {
        Some(Val::Result(Err(err))) => Err(SnapshotError::Guest(describe_error(err.as_deref()))),
        _ => {
            // The preview 1 adapter's handles are forgotten: each instance takes its own.
            match crate::engine::wasi_state::forget_adapter_state(&image) {
                Ok(Some(reset)) => return Ok(Image { wasm: reset, preopens: 0 }),
                Ok(None) => {}
                Err(e) => return Err(SnapshotError::Unsupported(format!("reading the warm image: {e:#}"))),
            }
            // Any handle but the preopened directories would dangle in every instance.
            let preopens = crate::engine::preopens::held_preopens(&mut store)
                .map_err(|e| SnapshotError::Unsupported(format!("warmup left handles open: {e}")))?;
            Ok(Image { wasm: image, preopens })
        }
    }
}

/// The message of a WIT `error` record returned by warmup.
fn describe_error(err: Option<&Val>) -> String {
    let Some(Val::Record(fields)) = err else {
        return "warmup failed".into();
    };
    let code = fields.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("code", Val::S32(c)) => Some(*c),
        _ => None,
    });
    let message = fields.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("message", Val::String(m)) => Some(m.clone()),
        _ => None,
    });
    format!("warmup failed (code {}): {}", code.unwrap_or(0), message.unwrap_or_default())
}

/// Encodes `s` as a WAVE string literal.
pub fn wave_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A fingerprint of what the granted directories hold (paths, sizes, modification times),
/// so a warm image built from files is rebuilt when they change.
pub fn grants_fingerprint(grants: &Grants, base: &Path) -> String {
    let mut entries = Vec::new();
    for dir in &grants.dirs {
        let host = dir.host_path(base);
        entries.push(format!("{}={}", dir.guest, host.display()));
        collect(&host, &mut entries);
    }
    for (k, v) in &grants.env {
        entries.push(format!("env:{k}={v}"));
    }
    entries.join("\n")
}

/// Every file under `dir` (9 levels at most, 10,000 entries in all), in name order, as
/// `path:size:mtime`.
fn collect(dir: &Path, out: &mut Vec<String>) {
    let files = walkdir::WalkDir::new(dir).max_depth(9).sort_by_file_name().into_iter().filter_map(Result::ok);
    for entry in files.filter(|e| !e.file_type().is_dir()) {
        if out.len() > 10_000 {
            return;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        out.push(format!("{}:{}:{}", entry.path().display(), meta.len(), mtime));
    }
}

#[cfg(test)]
mod tests {
    use super::wave_string;

    #[test]
    fn wave_strings_escape_quotes_and_non_ascii() {
        assert_eq!(wave_string(r#"{"a":"b\c"}"#), r#""{\"a\":\"b\\c\"}""#);
        assert_eq!(wave_string("é\n"), "\"\\u{e9}\\u{a}\"");
    }
}
