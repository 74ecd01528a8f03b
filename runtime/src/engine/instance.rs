//! One live instance of a backend: a store, its bindings, and guarded calls into it.
//!
//! Every call arms the deadline (checked on each epoch tick, where a long guest also yields
//! to other tasks) and a wall-clock backstop for time spent waiting in host calls. Errors
//! are classified into [`Fault`]s; after a fault the instance is marked dead and refuses
//! further calls without entering the guest.
//!
//! JSON arguments are `&String` because the generated bindings take `&Json` (a `String`).

use crate::engine::bindings::{Backend as Bindings, guest, types};
use crate::engine::fault::Fault;
use crate::engine::host::HostState;
use crate::engine::overlay::Overlays;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap};

/// Extra wall-clock time granted over a deadline before the call's future is dropped;
/// guests that compute are interrupted at the deadline by the epoch, this catches guests
/// blocked in a host wait.
const BACKSTOP_GRACE: Duration = Duration::from_millis(250);

/// A guest's coded error (a tool or hook returned `err`).
#[derive(Debug, Clone, PartialEq)]
pub struct GuestError {
    /// The code.
    pub code: i32,
    /// The message.
    pub message: String,
    /// Details, parsed from JSON when they parse.
    pub data: Option<serde_json::Value>,
}

impl From<types::Error> for GuestError {
    fn from(e: types::Error) -> Self {
        let data = e.data.map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d)));
        GuestError { code: e.code, message: e.message, data }
    }
}

/// What a guarded call can end in, beyond success.
#[derive(Debug)]
pub enum CallError {
    /// The guest returned an error; the instance is fine.
    Guest(GuestError),
    /// The call faulted; the instance is dead.
    Fault(Fault),
}

impl From<Fault> for CallError {
    fn from(f: Fault) -> Self {
        CallError::Fault(f)
    }
}

/// A live instance.
pub struct Instance {
    store: Store<HostState>,
    /// The component instance (its exports beyond the world's: snapshot accessors).
    handle: wasmtime::component::Instance,
    bindings: Bindings,
    /// Set after a fault: the instance may not be entered again.
    dead: Option<Fault>,
    fuel: Option<u64>,
    memory_mb: u64,
    /// Set while a call is inside the guest. Still set when the next call arms, it means the
    /// previous call's future was dropped midway: the component cannot be entered again.
    entered: bool,
    /// Snapshot pages mapped into the memories by a restore; the fresh image goes back over
    /// them before the store (and its pool slot) is released.
    overlays: Overlays,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if !self.overlays.is_empty() {
            // SAFETY: the store is alive (it drops after this) and unused: `self` is being
            // dropped. Pooled memories never move.
            #[allow(unsafe_code)]
            unsafe {
                self.overlays.undo()
            };
        }
    }
}

impl Instance {
    /// Wraps a freshly instantiated store.
    pub fn new(
        store: Store<HostState>,
        handle: wasmtime::component::Instance,
        bindings: Bindings,
        fuel: Option<u64>,
        memory_mb: u64,
    ) -> Instance {
        Instance { store, handle, bindings, dead: None, fuel, memory_mb, entered: false, overlays: Overlays::default() }
    }

    /// The store, for capturing and writing its state between calls, and the record of
    /// pages a restore maps into it.
    pub(crate) fn parts(&mut self) -> (&mut Store<HostState>, &wasmtime::component::Instance, &mut Overlays) {
        (&mut self.store, &self.handle, &mut self.overlays)
    }

    /// The fault that killed this instance, if any.
    pub fn dead(&self) -> Option<&Fault> {
        self.dead.as_ref()
    }

    fn arm(&mut self, timeout: Duration) -> Result<(), Fault> {
        if self.entered && self.dead.is_none() {
            self.dead = Some(Fault::Trap(
                "the previous call was abandoned midway; the instance cannot be entered again".into(),
            ));
        }
        if let Some(fault) = &self.dead {
            return Err(fault.clone());
        }
        self.store.data_mut().deadline = Instant::now() + timeout;
        self.store.set_epoch_deadline(1);
        if let Some(fuel) = self.fuel {
            self.store.set_fuel(fuel).map_err(|e| Fault::Trap(format!("{e}")))?;
        }
        Ok(())
    }

    fn classify(&mut self, error: wasmtime::Error, timeout: Duration) -> Fault {
        let fault = if self.store.data().limiter.hit {
            Fault::MemoryLimit { limit_mb: self.memory_mb, detail: format!("{error}") }
        } else {
            match error.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => Fault::Timeout(timeout),
                Some(Trap::OutOfFuel) => Fault::FuelExhausted,
                Some(Trap::StackOverflow) => Fault::StackOverflow,
                Some(trap) => Fault::Trap(trap.to_string()),
                None => Fault::Trap(format!("{error}")),
            }
        };
        self.dead = Some(fault.clone());
        fault
    }

    fn timed_out(&mut self, timeout: Duration) -> Fault {
        let fault = Fault::Timeout(timeout);
        self.dead = Some(fault.clone());
        fault
    }
}

/// Runs one guarded export call: arms the deadline, awaits with a backstop, classifies.
macro_rules! guarded {
    ($self:ident, $timeout:expr, |$g:ident, $store:ident| $call:expr) => {{
        let timeout: Duration = $timeout;
        $self.arm(timeout)?;
        $self.entered = true;
        let result = {
            let $g = $self.bindings.cella_backend_guest();
            let $store = &mut $self.store;
            tokio::time::timeout(timeout + BACKSTOP_GRACE, $call).await
        };
        $self.entered = false;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err($self.classify(error, timeout)),
            Err(_elapsed) => Err($self.timed_out(timeout)),
        }
    }};
}

impl Instance {
    /// Calls `describe`.
    pub async fn describe(&mut self, timeout: Duration) -> Result<guest::Manifest, Fault> {
        guarded!(self, timeout, |g, store| g.call_describe(store))
    }

    /// Calls `warmup(backend_config)`.
    #[allow(clippy::ptr_arg)]
    pub async fn warmup(&mut self, config: &String, timeout: Duration) -> Result<(), CallError> {
        let result = guarded!(self, timeout, |g, store| g.call_warmup(store, config))?;
        result.map_err(|e| CallError::Guest(e.into()))
    }

    /// Calls `initialize(worker_id, session_config)`; returns the session data.
    #[allow(clippy::ptr_arg)]
    pub async fn initialize(
        &mut self,
        worker_id: &str,
        config: &String,
        timeout: Duration,
    ) -> Result<serde_json::Value, CallError> {
        let result = guarded!(self, timeout, |g, store| g.call_initialize(store, worker_id, config))?;
        let text = result.map_err(|e| CallError::Guest(e.into()))?;
        parse_json(&text).map_err(|m| CallError::Fault(Fault::Contract(format!("initialize returned {m}"))))
    }

    /// Calls `cleanup`.
    pub async fn cleanup(&mut self, timeout: Duration) -> Result<(), CallError> {
        let result = guarded!(self, timeout, |g, store| g.call_cleanup(store))?;
        result.map_err(|e| CallError::Guest(e.into()))
    }

    /// Calls `shutdown`.
    pub async fn shutdown(&mut self, timeout: Duration) -> Result<(), Fault> {
        guarded!(self, timeout, |g, store| g.call_shutdown(store))
    }

    /// Sends the output the guest streams (`host.emit`) during the following calls to
    /// `sink`, or drops it (`None`).
    pub fn watch(&mut self, sink: Option<crate::engine::host::OutputSink>) {
        let state = self.store.data_mut();
        state.output = sink;
        state.streamed = 0;
    }

    /// Calls a tool; returns its result data.
    #[allow(clippy::ptr_arg)]
    pub async fn call(
        &mut self,
        tool: &str,
        params: &String,
        context: &types::CallContext,
        timeout: Duration,
    ) -> Result<serde_json::Value, CallError> {
        let result = guarded!(self, timeout, |g, store| g.call_call(store, tool, params, context))?;
        let text = result.map_err(|e| CallError::Guest(e.into()))?;
        parse_json(&text).map_err(|m| CallError::Fault(Fault::Contract(format!("{tool} returned {m}"))))
    }
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
}
