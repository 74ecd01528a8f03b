//! Faults: what can end a guest call abnormally, and the code each gets.
//!
//! A fault is not a tool error (which the guest returns and which leaves the instance
//! usable): after a fault the instance can never be entered again, so its session ends.

use crate::codes;
use std::time::Duration;

/// Why a guest call ended abnormally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call ran past its deadline (epoch interruption, or a host wait that outlived it).
    Timeout(Duration),
    /// The guest tried to grow its memory past the cap.
    MemoryLimit {
        /// The cap in MiB.
        limit_mb: u64,
        /// The trap that followed.
        detail: String,
    },
    /// The guest used up its fuel.
    FuelExhausted,
    /// The guest overflowed its stack.
    StackOverflow,
    /// Any other trap (unreachable, a failed bounds check, an abort...).
    Trap(String),
    /// The guest broke the contract (for example returned JSON that does not parse).
    Contract(String),
    /// No instance could be created: the pool is full.
    Capacity(String),
}

impl Fault {
    /// The result code of this fault.
    pub fn code(&self) -> i32 {
        match self {
            Fault::Timeout(_) => codes::TIMEOUT_ERROR,
            Fault::MemoryLimit { .. } => codes::MEMORY_LIMIT,
            Fault::FuelExhausted => codes::FUEL_EXHAUSTED,
            Fault::StackOverflow | Fault::Trap(_) => codes::GUEST_TRAPPED,
            Fault::Contract(_) => codes::CONTRACT_VIOLATION,
            Fault::Capacity(_) => codes::CAPACITY_EXHAUSTED,
        }
    }

    /// Whether the instance must be discarded (every fault but a capacity refusal, which
    /// never had an instance).
    pub fn ends_instance(&self) -> bool {
        !matches!(self, Fault::Capacity(_) | Fault::Contract(_))
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Timeout(d) => write!(f, "Tool execution timed out after {}s", trim_secs(*d)),
            Fault::MemoryLimit { limit_mb, .. } => {
                write!(f, "guest exceeded its memory limit of {limit_mb} MiB")
            }
            Fault::FuelExhausted => write!(f, "guest used up its fuel (instruction budget)"),
            Fault::StackOverflow => write!(f, "guest trapped: stack overflow"),
            Fault::Trap(t) => write!(f, "guest trapped: {t}"),
            Fault::Contract(m) => write!(f, "guest broke the backend contract: {m}"),
            Fault::Capacity(m) => write!(f, "no instance available: {m}"),
        }
    }
}

/// Seconds as AgentFlow prints them: `1` for whole seconds, `0.5` otherwise.
pub fn trim_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{}", s as u64) } else { format!("{s}") }
}
