//! Warming backends (S-2, S-11) and their warm state.

use super::*;

impl Sandbox {
    /// Warms the named backends, or all when `None` or empty (S-2). Already warm backends
    /// are skipped; a failed one is tried again.
    pub async fn warmup(&self, names: Option<&[String]>) -> WarmupOutcome {
        let targets: Vec<String> = match names {
            Some(n) if !n.is_empty() => n.to_vec(),
            _ => self.inner.backends.keys().cloned().collect(),
        };
        let mut results = BTreeMap::new();
        let mut errors = BTreeMap::new();
        // Backends warm side by side; the results are read in the order asked.
        let warming: Vec<_> = targets
            .iter()
            .map(|name| {
                let backend = self.inner.backends.get(name).cloned();
                backend.map(|b| tokio::spawn(async move { b.warm_up(true).await }))
            })
            .collect();
        for (name, warm) in targets.iter().zip(warming) {
            match warm {
                Some(task) => match task.await.unwrap_or_else(|e| Err(format!("its warmup stopped: {e}"))) {
                    Ok(()) => {
                        results.insert(name.clone(), true);
                    }
                    Err(e) => {
                        results.insert(name.clone(), false);
                        errors.insert(name.clone(), e);
                    }
                },
                None => {
                    results.insert(name.clone(), false);
                    let available: Vec<&String> = self.inner.backends.keys().collect();
                    errors
                        .insert(name.clone(), format!("Backend not found: {name}. Available backends: {available:?}"));
                }
            }
        }
        let warmed = results.values().filter(|v| **v).count();
        WarmupOutcome {
            status: if errors.is_empty() { "success".into() } else { "partial_error".into() },
            summary: WarmupSummary { total: results.len(), warmed_up: warmed, pending: results.len() - warmed },
            results,
            errors: (!errors.is_empty()).then_some(errors),
        }
    }

    /// The warm state of every backend.
    pub fn warmup_status(&self) -> WarmupStatus {
        let backends: BTreeMap<String, WarmReport> =
            self.inner.backends.iter().map(|(n, b)| (n.clone(), b.report())).collect();
        let warmed = backends.values().filter(|r| r.warmed_up).count();
        WarmupStatus {
            summary: WarmupSummary { total: backends.len(), warmed_up: warmed, pending: backends.len() - warmed },
            backends,
        }
    }
}
