//! The component cache: corrupt or stale files are detected and rebuilt, never trusted.

use crate::common::*;
use serde_json::json;

fn cwasm_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[tokio::test]
async fn corrupt_and_stale_cache_files_are_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    let patch = json!({"server": {"cache_dir": cache.path()}, "resources": {"rag": {"enabled": false}, "notebook": {"enabled": false}, "faulty": {"enabled": false}}});
    {
        let sb = sandbox_with(patch.clone()).await;
        sb.warmup(None).await;
    }
    let files = cwasm_files(cache.path());
    assert_eq!(files.len(), 2, "the kv component and its warm image: {files:?}");
    // Corrupt one file (checksum mismatch) and make the other stale: garbage whose
    // checksum matches, which wasmtime's own header check must reject.
    std::fs::write(&files[0], b"not a compiled component").unwrap();
    let garbage = b"\x7fELF stale artefact from another engine".to_vec();
    std::fs::write(&files[1], &garbage).unwrap();
    std::fs::write(files[1].with_extension("xxh3"), cella_runtime::cache::checksum_hex(&garbage)).unwrap();

    let sb = sandbox_with(patch).await;
    let w = worker("cache");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &w, "kv:set", json!({"key": "k", "value": 1})).await);
    assert_eq!(serde_json::to_value(sb.backend("kv").unwrap().report().component).unwrap(), "compiled");
    assert!(!logs_matching("discarding an unusable cache file").is_empty());
    for f in cwasm_files(cache.path()) {
        let bytes = std::fs::read(&f).unwrap();
        let sum = std::fs::read_to_string(f.with_extension("xxh3")).unwrap();
        assert_eq!(
            sum,
            cella_runtime::cache::checksum_hex(&bytes),
            "{} was rewritten with a matching checksum",
            f.display()
        );
        assert!(bytes.len() > 1000);
    }
}
