//! The time of each stage of a run, and what to make of it (S-31).

use super::*;

pub(super) struct Clock {
    started: Instant,
    stage_started: Instant,
    stages: Vec<(String, f64)>,
}

impl Clock {
    pub(super) fn new() -> Clock {
        let now = Instant::now();
        Clock { started: now, stage_started: now, stages: Vec::new() }
    }

    pub(super) fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.stages.push((stage.to_string(), (now - self.stage_started).as_secs_f64() * 1000.0));
        self.stage_started = now;
    }

    pub(super) fn timing(&self) -> Timing {
        let total_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let stages = self
            .stages
            .iter()
            .map(|(stage, ms)| StageTime {
                stage: stage.clone(),
                ms: *ms,
                share: if total_ms > 0.0 { (ms / total_ms * 1000.0).round() / 1000.0 } else { 0.0 },
            })
            .collect();
        Timing { stages, total_ms }
    }
}

pub(super) fn insights(timing: &Timing, reused: bool, request: &RunRequest) -> Insights {
    let bottleneck =
        timing.stages.iter().max_by(|a, b| a.ms.total_cmp(&b.ms)).map(|s| s.stage.clone()).unwrap_or_default();
    let mut suggestions = Vec::new();
    match bottleneck.as_str() {
        "session" if !reused => suggestions.push(
            "creating the session took the most time: pass keep_alive and reuse session_id for the next runs".to_string(),
        ),
        "upload" => suggestions.push(
            "uploading took the most time: files the session already holds can be sent as sha256 only (see the session's files)".to_string(),
        ),
        "install" => suggestions.push(
            "installing packages took the most time: packages stay installed in a kept-alive session".to_string(),
        ),
        "run" => suggestions.push("the code itself took the most time".to_string()),
        "close" => suggestions.push("closing took the most time: keep_alive skips it between runs".to_string()),
        _ => {}
    }
    if !request.keep_alive && request.session_id.is_none() {
        suggestions.push("each run without keep_alive starts from a fresh session; state does not carry over".into());
    }
    Insights { bottleneck, suggestions }
}
