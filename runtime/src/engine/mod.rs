//! The engine layers: the one wasmtime [`Engine`] (component model, pooling allocator sized
//! from the limits, copy-on-write memory images, async calls, and epoch interruption driven by
//! one ticker), the component cache, warm images, backends and their instances. Nothing here
//! knows of sessions' owners, tenants' keys or HTTP.

pub mod backend;
pub mod bindings;
pub mod cache;
pub mod fault;
pub mod host;
pub mod instance;
pub mod tools;
pub mod warm;

use crate::config::Limits;
use crate::error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Deadlines are checked (and long guests yield to other
/// tasks) at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances kept free beyond `max_instances` for describe, warmup and stateless calls.
const SPARE_INSTANCES: u32 = 32;

/// The engine with its settings fingerprint and epoch ticker.
pub struct EngineHandle {
    /// The wasmtime engine shared by every backend.
    pub engine: Engine,
    /// A text naming every setting that changes compiled code; part of every cache key.
    pub fingerprint: String,
    /// Stops the ticker thread when the handle is dropped.
    stop: Arc<AtomicBool>,
}

impl EngineHandle {
    /// Builds the engine for `limits` and starts the epoch ticker.
    pub fn new(limits: &Limits) -> Result<EngineHandle> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(limits.fuel.is_some());
        config.max_wasm_stack(limits.max_wasm_stack_kb * 1024);
        // The async fiber stack must hold the wasm stack plus the host's own frames.
        config.async_stack_size(limits.max_wasm_stack_kb * 1024 + 512 * 1024);
        config.memory_init_cow(true);
        config.parallel_compilation(true);

        let memory_bytes = (limits.memory_mb as usize) * 1024 * 1024;
        let instances = limits.max_instances.saturating_add(SPARE_INSTANCES);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            // A small Rust guest has 3 core instances; interpreters have more.
            .max_core_instances_per_component(64)
            .total_core_instances(instances.saturating_mul(4))
            .max_memories_per_component(8)
            .total_memories(instances.saturating_mul(2))
            .max_tables_per_component(16)
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memory_size(memory_bytes)
            // Keep a few freed slots warm (their pages resident) for fast reuse, not all.
            .max_unused_warm_slots(256)
            // Reset the first part of a released memory with memset instead of madvise, so the
            // next instance in the slot does not page-fault on the stack, data and early heap
            // every guest touches (measured: 41 -> 25 us per new session). The cost: every slot
            // that has been used keeps this much resident.
            .linear_memory_keep_resident(limits.keep_resident_kb * 1024);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        let engine = Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let fingerprint = fingerprint(&engine);
        check_map_count(instances);

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("cella-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| Error::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(EngineHandle { engine, fingerprint, stop })
    }
}

/// The cache key part of an engine: wasmtime's own hash of everything that decides whether
/// a precompiled artefact loads into it (wasmtime's version, the target, and every setting
/// that changes code), as hex. A sha256 of what the hash writes, so it is stable across
/// builds of this binary (std's `DefaultHasher` is not).
pub fn fingerprint(engine: &Engine) -> String {
    use sha2::{Digest, Sha256};
    use std::hash::{Hash, Hasher};
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("engine-{}", hex::encode(&hasher.0.finalize()[..16]))
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Warns when Linux's `vm.max_map_count` is too low for the configured instances: each
/// pooled instance uses a few memory mappings and the failure looks like out-of-memory.
fn check_map_count(instances: u32) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        return;
    };
    let Ok(max) = text.trim().parse::<u64>() else {
        return;
    };
    let needed = u64::from(instances) * 6 + 10_000;
    if needed > max {
        tracing::warn!(
            max_map_count = max,
            needed,
            "vm.max_map_count may be too low for server.limits.max_instances; raise it with `sysctl -w vm.max_map_count={needed}`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache key follows wasmtime's compatibility hash: the same settings give the same
    /// key, a setting that changes compiled code gives another.
    #[test]
    fn the_cache_key_is_wasmtimes_compatibility_hash() {
        let small = Limits { max_instances: 4, ..Limits::default() };
        let a = EngineHandle::new(&small).expect("an engine");
        let b = EngineHandle::new(&small).expect("an engine");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert!(a.fingerprint.starts_with("engine-") && a.fingerprint.len() == "engine-".len() + 32);
        let fuel = EngineHandle::new(&Limits { fuel: Some(1_000_000), ..small }).expect("an engine");
        assert_ne!(a.fingerprint, fuel.fingerprint);
    }
}
