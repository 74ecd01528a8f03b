//! Validation of a parsed configuration: every error names its field.

use super::*;

impl Config {
    /// Checks everything serde cannot: ranges, names, paths, hashes and references.
    pub(super) fn validate(&self) -> Result<()> {
        let s = &self.server;
        check_seconds("server.session_ttl", s.session_ttl)?;
        let l = &s.limits;
        if l.max_instances == 0 {
            return Err(Error::Config("server.limits.max_instances: must be at least 1".into()));
        }
        if l.memory_mb == 0 || l.memory_mb > 4096 {
            return Err(Error::Config("server.limits.memory_mb: must be between 1 and 4096".into()));
        }
        if let Some(r) = l.memory_reservation_mb
            && (r < l.memory_mb || r > 4096)
        {
            return Err(Error::Config(format!(
                "server.limits.memory_reservation_mb: {r} must be between memory_mb ({}) and 4096",
                l.memory_mb
            )));
        }
        check_seconds("server.limits.call_timeout_s", l.call_timeout_s)?;
        check_seconds("server.limits.warmup_timeout_s", l.warmup_timeout_s)?;
        let snap = &s.snapshots;
        check_seconds("server.snapshots.retention_s", snap.retention_s)?;
        if snap.checkpoint_interval_s != 0.0 {
            check_seconds(
                "server.snapshots.checkpoint_interval_s (0 turns checkpoints off)",
                snap.checkpoint_interval_s,
            )?;
        }
        if snap.orphan_grace_s != 0.0 {
            check_seconds("server.snapshots.orphan_grace_s", snap.orphan_grace_s)?;
        }
        if snap.url.is_some() && snap.dir.is_some() {
            return Err(Error::Config("server.snapshots: give dir or url, not both".into()));
        }
        if snap.url.is_none() && !snap.options.is_empty() {
            return Err(Error::Config("server.snapshots.options: they configure a url store; no url is given".into()));
        }
        if let Some(node) = snap.node.as_deref().filter(|n| !super::valid_node(n)) {
            return Err(Error::Config(format!(
                "server.snapshots.node: '{node}' is not a node name (1-64 of A-Z, a-z, 0-9, _ and -)"
            )));
        }
        let c = &s.cluster;
        if c.enabled {
            check_seconds("server.cluster.lease_s", c.lease_s)?;
            if !(snap.enabled && snap.keep_on_shutdown) {
                return Err(Error::Config(
                    "server.cluster: a node keeps its sandboxes in the shared store; turn server.snapshots.enabled and keep_on_shutdown on".into(),
                ));
            }
            if let Some(a) = c.advertise.as_deref().filter(|a| !a.starts_with("http://") && !a.starts_with("https://"))
            {
                return Err(Error::Config(format!(
                    "server.cluster.advertise: '{a}' is not an http:// or https:// URL"
                )));
            }
        }
        if snap.max_fork == 0 {
            return Err(Error::Config("server.snapshots.max_fork: must be at least 1".into()));
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(Error::Config("server.tls_cert and server.tls_key: give both, or neither".into()));
        }
        let b = &s.sandboxes;
        if b.default_timeout_s == 0 || b.max_timeout_s < b.default_timeout_s || b.files_quota_mb == 0 {
            return Err(Error::Config(
                "server.sandboxes: default_timeout_s must be above 0 and at most max_timeout_s, files_quota_mb above 0"
                    .into(),
            ));
        }
        for (name, r) in &self.resources {
            if name.is_empty() || !name.chars().all(crate::config::is_name_char) {
                return Err(Error::Config(format!(
                    "resources.{name}: a resource name uses only letters, digits, '_' and '-'"
                )));
            }
            match r.memory_mb {
                Some(0) => return Err(Error::Config(format!("resources.{name}.memory_mb: must be above 0"))),
                Some(m) if m > self.server.limits.memory_mb => {
                    return Err(Error::Config(format!(
                        "resources.{name}.memory_mb: {m} is above server.limits.memory_mb ({}), the most an instance may have",
                        self.server.limits.memory_mb
                    )));
                }
                _ => {}
            }
            if !r.config.is_object() {
                return Err(Error::Config(format!("resources.{name}.config: must be a JSON object")));
            }
            if let Some(scratch) = &r.grants.scratch
                && (!scratch.guest.starts_with('/') || scratch.quota_mb == 0)
            {
                return Err(Error::Config(format!(
                    "resources.{name}.grants.scratch: needs an absolute guest path and a quota_mb above 0"
                )));
            }
            for (i, d) in r.grants.dirs.iter().enumerate() {
                if !d.guest.starts_with('/') {
                    return Err(Error::Config(format!(
                        "resources.{name}.grants.dirs[{i}].guest: must be an absolute guest path"
                    )));
                }
            }
        }
        self.validate_tenants()?;
        for (i, origin) in s.cors_origins.iter().enumerate() {
            let ok = origin == "*"
                || (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.trim_end_matches('/').contains(|c: char| c.is_whitespace())
                    && origin.split("://").nth(1).is_some_and(|h| !h.is_empty() && !h.contains('/'));
            if !ok {
                return Err(Error::Config(format!(
                    "server.cors_origins[{i}]: '{origin}' is not an origin (scheme://host[:port], or \"*\")"
                )));
            }
        }
        if s.cors_origins.len() > 1 && s.cors_origins.iter().any(|o| o == "*") {
            return Err(Error::Config("server.cors_origins: \"*\" stands alone".into()));
        }
        for (i, key) in s.admin_keys.iter().enumerate() {
            keys::parse_hash(key).map_err(|m| Error::Config(format!("server.admin_keys[{i}]: {m}")))?;
        }
        for name in &self.warmup.resources {
            if !self.resources.contains_key(name) {
                return Err(Error::Config(format!("warmup.resources: unknown resource '{name}'")));
            }
        }
        Ok(())
    }

    /// The tenants: ids, key hashes, resources and quotas.
    fn validate_tenants(&self) -> Result<()> {
        let l = &self.server.limits;
        for (id, tenant) in &self.tenants {
            if id.is_empty() || !id.chars().all(crate::config::is_name_char) {
                return Err(Error::Config(format!("tenants.{id}: a tenant id uses only letters, digits, '_' and '-'")));
            }
            if tenant.keys.is_empty() {
                return Err(Error::Config(format!("tenants.{id}.keys: a tenant needs at least one key hash")));
            }
            for (i, key) in tenant.keys.iter().enumerate() {
                keys::parse_hash(key).map_err(|m| Error::Config(format!("tenants.{id}.keys[{i}]: {m}")))?;
            }
            for r in tenant.resources.iter().flatten() {
                if !self.resources.contains_key(r) {
                    return Err(Error::Config(format!("tenants.{id}.resources: unknown resource '{r}'")));
                }
            }
            if let Some(t) = tenant.quotas.call_timeout_s {
                check_seconds(&format!("tenants.{id}.quotas.call_timeout_s"), t)?;
            }
            if let Some(m) = tenant.quotas.memory_mb
                && m > l.memory_mb
            {
                return Err(Error::Config(format!(
                    "tenants.{id}.quotas.memory_mb: {m} is above server.limits.memory_mb ({})",
                    l.memory_mb
                )));
            }
        }
        Ok(())
    }
}

/// Checks that `field` is a positive number of seconds, at most [`MAX_SECONDS`].
fn check_seconds(field: &str, v: f64) -> Result<()> {
    if v > 0.0 && v <= MAX_SECONDS {
        Ok(())
    } else {
        Err(Error::Config(format!("{field}: must be a positive number of seconds, at most {MAX_SECONDS} (a year)")))
    }
}
