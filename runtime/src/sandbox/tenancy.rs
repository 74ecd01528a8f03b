//! Tenants: who a key belongs to, what a tenant may use, and its quotas.
//!
//! Keys are never stored: the configuration holds their sha256, and a presented key is
//! hashed and compared in constant time. Quotas live here so that the Sandbox layer, which
//! every front door goes through, enforces them.

use crate::codes;
pub use crate::config::keys::{hash_key, parse_hash};
use crate::config::keys::{hash_of, same};
use crate::config::{Config, Quotas};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

/// The tenant of a server that runs without tenants.
pub const DEFAULT_TENANT: &str = "default";

/// Who presented a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The server has no tenants: everyone is the default tenant.
    Open,
    /// A tenant's key.
    Tenant(Arc<str>),
    /// An admin key.
    Admin,
}

impl Identity {
    /// The tenant requests of this identity act for, if any.
    pub fn tenant(&self) -> Option<Arc<str>> {
        match self {
            Identity::Open => Some(Arc::from(DEFAULT_TENANT)),
            Identity::Tenant(t) => Some(t.clone()),
            Identity::Admin => None,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// [`codes::UNAUTHENTICATED`], [`codes::FORBIDDEN`] or [`codes::QUOTA_EXCEEDED`].
    pub code: i32,
    /// The message.
    pub message: String,
}

struct Tenant {
    resources: Option<Vec<String>>,
    quotas: Quotas,
}

/// The tenants of a server and their limits.
pub struct Tenancy {
    tenants: HashMap<Arc<str>, Tenant>,
    /// key hash → tenant id.
    keys: Vec<([u8; 32], Arc<str>)>,
    admin: Vec<[u8; 32]>,
    /// tenant → its calls per minute and a limiter of its own, so each quota is exact (a
    /// shared limiter with per-tenant costs rounds the smaller quotas down).
    rates: HashMap<Arc<str>, (NonZeroU32, DefaultDirectRateLimiter)>,
}

impl Tenancy {
    /// The tenancy of a configuration (validated already).
    pub fn new(config: &Config) -> Tenancy {
        let mut tenants = HashMap::new();
        let mut keys = Vec::new();
        let mut rates = HashMap::new();
        for (id, t) in &config.tenants {
            let id: Arc<str> = Arc::from(id.as_str());
            for k in &t.keys {
                if let Ok(hash) = parse_hash(k) {
                    keys.push((hash, id.clone()));
                }
            }
            if let Some(per_minute) = t.quotas.calls_per_minute.and_then(NonZeroU32::new) {
                rates.insert(id.clone(), (per_minute, RateLimiter::direct(Quota::per_minute(per_minute))));
            }
            tenants.insert(id, Tenant { resources: t.resources.clone(), quotas: t.quotas.clone() });
        }
        let admin = config.server.admin_keys.iter().filter_map(|k| parse_hash(k).ok()).collect();
        Tenancy { tenants, keys, admin, rates }
    }

    /// Whether the server has tenants (and so requires keys).
    pub fn enabled(&self) -> bool {
        !self.tenants.is_empty()
    }

    /// Who holds `key`. Without tenants everyone is [`Identity::Open`] (an admin key, when
    /// configured, still identifies the admin).
    pub fn authenticate(&self, key: Option<&str>) -> Result<Identity, Denied> {
        let hash: Option<[u8; 32]> = key.map(hash_of);
        if let Some(h) = &hash {
            if self.admin.iter().any(|a| same(a, h)) {
                return Ok(Identity::Admin);
            }
            if let Some((_, tenant)) = self.keys.iter().find(|(k, _)| same(k, h)) {
                return Ok(Identity::Tenant(tenant.clone()));
            }
        }
        if !self.enabled() {
            return Ok(Identity::Open);
        }
        Err(Denied {
            code: codes::UNAUTHENTICATED,
            message: if key.is_some() {
                "unknown API key".into()
            } else {
                "an API key is required (Authorization: Bearer <key> or X-API-Key)".into()
            },
        })
    }

    /// Whether admin routes need the admin key (true once any key is configured).
    pub fn admin_required(&self) -> bool {
        self.enabled() || !self.admin.is_empty()
    }

    fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.get(id)
    }

    /// Refuses a resource the tenant may not use.
    pub fn check_resource(&self, tenant: &str, resource: &str) -> Result<(), Denied> {
        match self.tenant(tenant).and_then(|t| t.resources.as_ref()) {
            Some(allowed) if !allowed.iter().any(|r| r == resource) => Err(Denied {
                code: codes::FORBIDDEN,
                message: format!("tenant '{tenant}' may not use resource '{resource}'"),
            }),
            _ => Ok(()),
        }
    }

    /// Counts one call against the tenant's calls-per-minute quota.
    pub fn check_rate(&self, tenant: &Arc<str>) -> Result<(), Denied> {
        let Some((per_minute, limiter)) = self.rates.get(tenant) else { return Ok(()) };
        match limiter.check() {
            Ok(()) => Ok(()),
            _ => Err(Denied {
                code: codes::QUOTA_EXCEEDED,
                message: format!("tenant '{tenant}' is over its quota of {per_minute} calls per minute"),
            }),
        }
    }

    /// The tenant's live-session quota.
    pub fn max_sessions(&self, tenant: &str) -> Option<usize> {
        self.tenant(tenant).and_then(|t| t.quotas.max_sessions)
    }

    /// The tenant's memory cap in MiB, if below the server's.
    pub fn memory_mb(&self, tenant: &str) -> Option<u64> {
        self.tenant(tenant).and_then(|t| t.quotas.memory_mb)
    }

    /// The tenant's call deadline in seconds.
    pub fn call_timeout_s(&self, tenant: &str) -> Option<f64> {
        self.tenant(tenant).and_then(|t| t.quotas.call_timeout_s)
    }

    /// The tenant's snapshot storage quota in MiB.
    pub fn snapshot_mb(&self, tenant: &str) -> Option<u64> {
        self.tenant(tenant).and_then(|t| t.quotas.snapshot_mb)
    }

    /// The most copies one fork of the tenant's may make, when its quota sets it.
    pub fn max_fork(&self, tenant: &str) -> Option<u32> {
        self.tenant(tenant).and_then(|t| t.quotas.max_fork)
    }

    /// The tenant's body limit.
    pub fn max_body_bytes(&self, tenant: &str) -> Option<usize> {
        self.tenant(tenant).and_then(|t| t.quotas.max_body_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two tenants with different quotas each get exactly their own: a shared limiter with
    /// per-tenant costs gave the smaller one 2 calls of 3 here.
    #[test]
    fn each_tenant_gets_its_exact_rate() {
        let text = serde_json::json!({
            "tenants": {
                "a": {"keys": [hash_key("ka")], "quotas": {"calls_per_minute": 3}},
                "b": {"keys": [hash_key("kb")], "quotas": {"calls_per_minute": 5}},
                "c": {"keys": [hash_key("kc")]}
            }
        })
        .to_string();
        let config = Config::from_json(&text, std::path::Path::new(".")).expect("a valid config");
        let tenancy = Tenancy::new(&config);
        let allowed = |t: &str| (0..20).filter(|_| tenancy.check_rate(&Arc::from(t)).is_ok()).count();
        assert_eq!(allowed("a"), 3);
        assert_eq!(allowed("b"), 5);
        assert_eq!(allowed("c"), 20);
    }
}
