//! A run session's snapshot verbs: fork it into new run sessions, pause it, resume it, and
//! snapshot it into the store. A run session is a worker with one session per language it
//! has used; each verb applies to every one of them.

use super::{RUN_PREFIX, Runner, describe, fail};
use crate::envelope::Envelope;
use crate::sandbox::SnapshotInfo;
use serde_json::{Value, json};
use std::sync::Arc;

impl Runner {
    /// The languages (resource types) a run session has sessions of.
    fn languages(
        &self,
        tenant: &Arc<str>,
        session_id: &str,
    ) -> Result<(crate::sandbox::Caller, Vec<String>), Envelope> {
        let caller = self.existing(tenant, session_id)?;
        let languages = self.sandbox.list_sessions(&caller).into_iter().map(|s| s.resource_type).collect();
        Ok((caller, languages))
    }

    /// Forks a run session into `count` new run sessions, each with a copy of every
    /// language's state and files; returns them. The source goes on unaffected.
    pub async fn fork(&self, tenant: &Arc<str>, session_id: &str, count: usize) -> Result<Vec<Value>, Envelope> {
        let (caller, languages) = self.languages(tenant, session_id)?;
        let workers: Vec<String> =
            (0..count).map(|_| format!("{RUN_PREFIX}{}", uuid::Uuid::new_v4().simple())).collect();
        for rt in &languages {
            if let Err(r) = self.sandbox.fork_session(&caller, rt, count, workers.clone()).await {
                // Copies of the languages forked so far are ended: no half run session stays.
                for worker in &workers {
                    self.sandbox.disconnect(&Runner::caller(tenant, worker)).await;
                }
                return Err(fail(r.code, r.message, r.data));
            }
        }
        Ok(workers.iter().map(|w| describe(w, &self.sandbox.list_sessions(&Runner::caller(tenant, w)))).collect())
    }

    /// Pauses every language session of a run session; its next run resumes them.
    pub async fn pause(&self, tenant: &Arc<str>, session_id: &str) -> Result<Value, Envelope> {
        let (caller, languages) = self.languages(tenant, session_id)?;
        for rt in &languages {
            self.sandbox.pause_session(&caller, rt).await.map_err(|r| fail(r.code, r.message, r.data))?;
        }
        Ok(describe(&caller.worker_id, &self.sandbox.list_sessions(&caller)))
    }

    /// Resumes every paused language session of a run session now.
    pub async fn resume(&self, tenant: &Arc<str>, session_id: &str) -> Result<Value, Envelope> {
        let (caller, languages) = self.languages(tenant, session_id)?;
        for rt in &languages {
            self.sandbox.resume_session(&caller, rt).await.map_err(|r| fail(r.code, r.message, r.data))?;
        }
        Ok(describe(&caller.worker_id, &self.sandbox.list_sessions(&caller)))
    }

    /// Snapshots every language session of a run session into the store; each snapshot
    /// restores into a new session with `POST /api/v1/snapshots/{id}/restore`.
    pub async fn snapshot(&self, tenant: &Arc<str>, session_id: &str) -> Result<Vec<SnapshotInfo>, Envelope> {
        let (caller, languages) = self.languages(tenant, session_id)?;
        let mut taken = Vec::with_capacity(languages.len());
        for rt in &languages {
            match self.sandbox.snapshot_session(&caller, rt).await {
                Ok(info) => taken.push(info),
                Err(r) => return Err(fail(r.code, r.message, json!({"taken": taken, "details": r.data}))),
            }
        }
        Ok(taken)
    }
}
