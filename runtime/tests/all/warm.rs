//! Warmup and warm images (S-2, S-11).

use crate::common::*;
use serde_json::json;

fn fresh_cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn s2_warmup_warms_named_backends_or_all() {
    let cache = fresh_cache();
    let sb = sandbox_with(json!({"server": {"cache_dir": cache.path()}})).await;
    let status = sb.warmup_status();
    assert_eq!(status.summary.warmed_up, 0, "nothing is warm before warmup or first use");
    let out = sb.warmup(Some(&["rag".to_string()])).await;
    assert_eq!(out.status, "success");
    assert_eq!(out.results.get("rag"), Some(&true));
    let status = sb.warmup_status();
    assert!(status.backends["rag"].warmed_up && !status.backends["kv"].warmed_up);
    assert_eq!(status.backends["rag"].mode, "snapshot");
    let all = sb.warmup(Some(&[])).await;
    assert_eq!(all.summary.total, 4, "an empty list means every backend");
    assert_eq!(sb.warmup_status().summary.pending, 0);
    let unknown = sb.warmup(Some(&["nope".to_string()])).await;
    assert_eq!(unknown.status, "partial_error");
    assert!(unknown.errors.unwrap()["nope"].starts_with("Backend not found: nope."));
}

#[tokio::test]
async fn s11_first_execute_warms_the_backend() {
    let cache = fresh_cache();
    let sb = sandbox_with(json!({"server": {"cache_dir": cache.path()}})).await;
    assert!(!sb.warmup_status().backends["rag"].warmed_up);
    let data = ok(exec(&sb, &worker("s11"), "rag:search", json!({"query": "epoch interruption"})).await);
    assert!(!data["results"].as_array().unwrap().is_empty());
    assert!(sb.warmup_status().backends["rag"].warmed_up);
}

#[tokio::test]
async fn rag_warmup_runs_once_however_many_sessions_and_calls_follow() {
    let cache = fresh_cache();
    let sb = sandbox_with(json!({"server": {"cache_dir": cache.path()}})).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let sb = sb.clone();
        tasks.push(tokio::spawn(async move {
            let w = worker(&format!("once{i}"));
            if i % 2 == 0 {
                sb.create_session(&w, "rag", json!({}), None).await.unwrap();
            }
            exec(&sb, &w, "rag:search", json!({"query": "WASI preopened directories"})).await
        }));
    }
    for t in tasks {
        let data = ok(t.await.unwrap());
        assert_eq!(data["results"][0]["document"], "wasi.md");
    }
    let report = &sb.warmup_status().backends["rag"];
    assert_eq!(report.warmup_runs, 1, "{report:?}");
    assert_eq!(report.mode, "snapshot");
}

#[tokio::test]
async fn the_warm_image_is_cached_and_reused_by_the_next_start() {
    let cache = fresh_cache();
    let patch = json!({"server": {"cache_dir": cache.path()}});
    {
        let sb = sandbox_with(patch.clone()).await;
        sb.warmup(None).await;
        assert_eq!(sb.backend("rag").unwrap().report().warmup_runs, 1);
    }
    let sb = sandbox_with(patch).await;
    let report = sb.backend("kv").unwrap().report();
    assert_eq!(
        serde_json::to_value(report.component).unwrap(),
        "cached",
        "the compiled component comes from the cache"
    );
    sb.warmup(None).await;
    let rag = sb.backend("rag").unwrap().report();
    assert_eq!(serde_json::to_value(rag.image).unwrap(), "cached");
    assert_eq!(rag.warmup_runs, 0, "warm from the cached image without running warmup");
    // The index built by the first process's warmup is in the image.
    let data = ok(exec(&sb, &worker("cached"), "rag:search", json!({"query": "BM25 k1 parameter"})).await);
    assert_eq!(data["results"][0]["document"], "bm25.md");
}

#[tokio::test]
async fn stateless_calls_run_in_a_fresh_warm_instance() {
    let sb = sandbox().await;
    let w = worker("fresh");
    for _ in 0..3 {
        let data = ok(exec(&sb, &w, "faulty:fresh", json!({})).await);
        assert_eq!(data, json!({"calls": 1, "warmed": true}), "no state survives a stateless call");
    }
}

#[tokio::test]
async fn without_an_image_warmup_runs_in_every_instance() {
    let cache = fresh_cache();
    let sb =
        sandbox_with(json!({"server": {"cache_dir": cache.path()}, "resources": {"rag": {"warm_image": false}}})).await;
    sb.warmup(Some(&["rag".to_string()])).await;
    let report = sb.backend("rag").unwrap().report();
    assert_eq!(report.mode, "per_instance");
    assert!(report.reason.unwrap().contains("warm_image is off"));
    let runs = report.warmup_runs;
    for _ in 0..3 {
        ok(exec(&sb, &worker("pi"), "rag:search", json!({"query": "linear memory"})).await);
    }
    assert_eq!(sb.backend("rag").unwrap().report().warmup_runs, runs + 3);
}
