//! Session snapshots through the facade: fork, pause and resume, restore, refusals. Real
//! components (kv, the Python and JavaScript interpreters), the real engine.

use crate::common::*;
use cella_runtime::codes;
use cella_runtime::{Caller, Sandbox};
use serde_json::{Value, json};

/// kv, Python (with a scratch directory at /work, as served) and JavaScript.
async fn interpreters() -> Sandbox {
    sandbox_with(json!({
        "server": {"limits": {"memory_mb": 256}},
        "resources": {
            "python": {"component": "builtin:python", "config": {"workdir": "/work"},
                       "grants": {"scratch": {"guest": "/work", "quota_mb": 16}}},
            "javascript": {"component": "builtin:javascript"}
        }
    }))
    .await
}

async fn py(sb: &Sandbox, w: &Caller, code: &str) -> Value {
    let data = ok(exec(sb, w, "python:run", json!({"code": code})).await);
    assert!(data["error"].is_null(), "{code}: {data}");
    data
}

/// Flips a byte in the middle of every blob the default tenant has in the store at `store`.
fn corrupt_blobs(store: &std::path::Path) {
    let blobs = store.join("tenants").join("default").join("blobs");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len() / 2;
        bytes[n] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
}

async fn js(sb: &Sandbox, w: &Caller, code: &str) -> Value {
    let data = ok(exec(sb, w, "javascript:run", json!({"code": code})).await);
    assert!(data["error"].is_null(), "{code}: {data}");
    data
}

/// A kv session forked three times: every copy has the keys, and each then goes its own way.
#[tokio::test]
async fn a_forked_kv_session_copies_its_keys_and_diverges() {
    let sb = sandbox().await;
    let w = worker("fork-kv");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &w, "kv:set", json!({"key": "a", "value": 1})).await);
    let copies = sb.fork_session(&w, "kv", 3, vec![]).await.unwrap();
    assert_eq!(copies.len(), 3);
    for (k, (fork, _)) in copies.iter().enumerate() {
        let target = Caller::new(fork.clone());
        assert_eq!(ok(exec(&sb, &target, "kv:get", json!({"key": "a"})).await)["value"], 1);
        ok(exec(&sb, &target, "kv:set", json!({"key": "copy", "value": k})).await);
    }
    assert_eq!(ok(exec(&sb, &w, "kv:keys", json!({})).await)["keys"], json!(["a"]), "the source is unaffected");
    for (k, (fork, _)) in copies.iter().enumerate() {
        let target = Caller::new(fork.clone());
        assert_eq!(ok(exec(&sb, &target, "kv:get", json!({"key": "copy"})).await)["value"], k);
    }
}

/// Python: variables, an imported module, a function and a written file survive a fork; the
/// copies and the source diverge.
#[tokio::test]
async fn a_forked_python_session_keeps_variables_imports_functions_and_files() {
    let sb = interpreters().await;
    let w = worker("fork-py");
    sb.create_session(&w, "python", json!({}), None).await.unwrap();
    py(&sb, &w, "import fractions\nx = [1, 2, 3]\ndef f(n): return n * 10\nopen('note.txt', 'w').write('hello')").await;
    let copies = sb.fork_session(&w, "python", 3, vec![]).await.unwrap();
    for (k, (fork, _)) in copies.iter().enumerate() {
        let target = Caller::new(fork.clone());
        let out = py(&sb, &target, "(sum(x), f(4), str(fractions.Fraction(1, 3)), open('note.txt').read())").await;
        assert_eq!(out["result"], "(6, 40, '1/3', 'hello')", "copy {k}");
        py(&sb, &target, &format!("x.append({k})")).await;
    }
    assert_eq!(py(&sb, &w, "x").await["result"], "[1, 2, 3]", "the source is unaffected");
    for (k, (fork, _)) in copies.iter().enumerate() {
        let target = Caller::new(fork.clone());
        assert_eq!(py(&sb, &target, "x[-1]").await["result"], k.to_string());
    }
}

/// JavaScript globals survive a fork.
#[tokio::test]
async fn a_forked_javascript_session_keeps_its_globals() {
    let sb = interpreters().await;
    let w = worker("fork-js");
    sb.create_session(&w, "javascript", json!({}), None).await.unwrap();
    js(&sb, &w, "globalThis.total = 41; function add(a) { return total + a; }").await;
    let copies = sb.fork_session(&w, "javascript", 2, vec![]).await.unwrap();
    for (fork, _) in &copies {
        let target = Caller::new(fork.clone());
        assert_eq!(js(&sb, &target, "add(1)").await["result"], "42");
    }
}

/// Pause frees the instance; the next call resumes with the state; an explicit resume too.
#[tokio::test]
async fn pause_frees_the_instance_and_the_next_call_resumes() {
    let sb = interpreters().await;
    let w = worker("pause");
    sb.create_session(&w, "python", json!({}), None).await.unwrap();
    py(&sb, &w, "y = 'kept'").await;
    let snap = sb.pause_session(&w, "python").await.unwrap();
    assert_eq!(snap.reason, "pause");
    let listed = sb.list_sessions(&w);
    assert_eq!(listed[0].status, "paused");
    assert_eq!(py(&sb, &w, "y").await["result"], "'kept'");
    assert_eq!(sb.list_sessions(&w)[0].status, "active");
    assert!(
        sb.list_snapshots("default").await.iter().all(|s| s.snapshot_id != snap.snapshot_id),
        "a pause snapshot goes with the resume"
    );
}

/// A stored snapshot restores into a new session; a corrupted one and another tenant's are
/// refused with their codes.
#[tokio::test]
async fn snapshots_restore_and_refuse_what_they_must() {
    let store = tempfile::tempdir().unwrap();
    let sb = sandbox_with(json!({"server": {"snapshots": {"dir": store.path()}}})).await;
    let w = worker("snap");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &w, "kv:set", json!({"key": "k", "value": "v"})).await);
    let snap = sb.snapshot_session(&w, "kv").await.unwrap();
    assert!(snap.changed_bytes > 0 && snap.stored_bytes > 0, "{snap:?}");
    let other = worker("snap-restored");
    let restored = sb.restore_snapshot(&other, &snap.snapshot_id).await.unwrap();
    assert_eq!(restored.status, "active");
    assert_eq!(ok(exec(&sb, &other, "kv:get", json!({"key": "k"})).await)["value"], "v");
    let stranger = Caller::of_tenant("someone-else", "w");
    assert_eq!(sb.restore_snapshot(&stranger, &snap.snapshot_id).await.unwrap_err().code, codes::SNAPSHOT_NOT_FOUND);
    assert_eq!(
        sb.delete_snapshot("someone-else", &snap.snapshot_id).await.unwrap_err().code,
        codes::SNAPSHOT_NOT_FOUND
    );
    // Corrupt the stored content: refused, nothing restored.
    corrupt_blobs(store.path());
    let third = worker("snap-corrupt");
    let err = sb.restore_snapshot(&third, &snap.snapshot_id).await.unwrap_err();
    assert_eq!(err.code, codes::SNAPSHOT_INVALID, "{err:?}");
    assert!(sb.list_sessions(&third).is_empty());
    sb.delete_snapshot("default", &snap.snapshot_id).await.unwrap();
}

/// A fork of one copy registers the copy before it captures the source: when it is refused,
/// into a worker that has a session already (that session stays as it was) or because the
/// source cannot be captured (a paused session whose stored state is corrupted), no copy is
/// left behind.
#[tokio::test]
async fn a_refused_fork_of_one_leaves_no_copy() {
    let store = tempfile::tempdir().unwrap();
    let sb = sandbox_with(json!({"server": {"snapshots": {"dir": store.path()}}})).await;
    let w = worker("fork-refused");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &w, "kv:set", json!({"key": "k", "value": "v"})).await);
    let taken = worker("fork-refused-taken");
    sb.create_session(&taken, "kv", json!({}), None).await.unwrap();
    ok(exec(&sb, &taken, "kv:set", json!({"key": "mine", "value": 1})).await);
    let err = sb.fork_session(&w, "kv", 1, vec![taken.worker_id.clone()]).await.unwrap_err();
    assert_eq!(err.code, codes::INVALID_INPUT, "{err:?}");
    assert_eq!(ok(exec(&sb, &taken, "kv:keys", json!({})).await)["keys"], json!(["mine"]));
    sb.pause_session(&w, "kv").await.unwrap();
    corrupt_blobs(store.path());
    let copy = worker("fork-refused-copy");
    let err = sb.fork_session(&w, "kv", 1, vec![copy.worker_id.clone()]).await.unwrap_err();
    assert_eq!(err.code, codes::SNAPSHOT_INVALID, "{err:?}");
    assert!(sb.list_sessions(&copy).is_empty(), "the copy registered before the capture is gone");
    sb.create_session(&copy, "kv", json!({}), None).await.expect("the copy's worker is free");
}

/// A fork asked for while a call runs waits for the call: the copies see its result, never a
/// torn state.
#[tokio::test]
async fn a_fork_during_a_call_waits_for_it() {
    let sb = interpreters().await;
    let w = worker("fork-busy");
    sb.create_session(&w, "python", json!({}), None).await.unwrap();
    let long = {
        let (sb, w) = (sb.clone(), w.clone());
        tokio::spawn(async move {
            py(&sb, &w, "import time\nstart = time.monotonic()\nn = 0\nwhile time.monotonic() - start < 0.5:\n    n += 1\ndone = True").await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let copies = sb.fork_session(&w, "python", 1, vec![]).await.unwrap();
    long.await.unwrap();
    let target = Caller::new(copies[0].0.clone());
    assert_eq!(py(&sb, &target, "done and n > 0").await["result"], "True");
}

/// A snapshot taken from another version of the component (another warm image) is refused
/// with 7011, and nothing is restored.
#[tokio::test]
async fn a_snapshot_of_another_component_version_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let sb = sandbox_with(json!({"server": {"snapshots": {"dir": store.path()}}})).await;
    let w = worker("version");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    let snap = sb.snapshot_session(&w, "kv").await.unwrap();
    let record = store.path().join("tenants").join("default").join(format!("{}.json", snap.snapshot_id));
    let mut value: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    value["image_key"] = json!("warm-of-an-older-kv");
    std::fs::write(&record, serde_json::to_vec(&value).unwrap()).unwrap();
    let other = worker("version-restored");
    let err = sb.restore_snapshot(&other, &snap.snapshot_id).await.unwrap_err();
    assert_eq!(err.code, codes::SNAPSHOT_INVALID, "{err:?}");
    assert!(err.message.contains("another version"), "{}", err.message);
    assert!(sb.list_sessions(&other).is_empty());
}

/// Pausing frees the session's pool slot: with the pool full, a new session is refused until
/// one is paused.
#[tokio::test]
async fn pause_frees_a_pool_slot() {
    let store = tempfile::tempdir().unwrap();
    let sb =
        sandbox_with(json!({"server": {"limits": {"max_instances": 2}, "snapshots": {"dir": store.path()}}})).await;
    // Warm the backend and its snapshot baseline first, so neither needs a slot later.
    let first = worker("slots");
    sb.create_session(&first, "kv", json!({}), None).await.unwrap();
    sb.snapshot_session(&first, "kv").await.unwrap();
    let mut held = vec![first];
    let refused = loop {
        let w = worker("slots");
        match sb.create_session(&w, "kv", json!({}), None).await {
            Ok(_) => held.push(w),
            Err(r) => break r,
        }
        assert!(held.len() < 100, "the pool never filled");
    };
    assert_eq!(refused.code, codes::CAPACITY_EXHAUSTED, "{refused:?}");
    sb.pause_session(&held[0], "kv").await.unwrap();
    let next = worker("slots");
    sb.create_session(&next, "kv", json!({}), None).await.expect("the paused session's slot is free");
}

/// Mappings of this process's files named `name` (Linux's `/proc/self/maps`).
#[cfg(target_os = "linux")]
fn mapped_files(name: &str) -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |maps| maps.lines().filter(|l| l.contains(name)).count())
}

/// A fork's copies map the source's large runs of pages copy-on-write (engine::overlay), or,
/// when there is one copy, have them moved into their memory. When a copy ends, its pool slot must hold the fresh image again: sessions made after it in
/// the same slots start from exactly the state a session made before any fork had, and the
/// copies never see each other's writes.
#[tokio::test]
async fn sessions_after_forked_ones_start_fresh() {
    let store = tempfile::tempdir().unwrap();
    let sb =
        sandbox_with(json!({"server": {"limits": {"max_instances": 3}, "snapshots": {"dir": store.path()}}})).await;
    let fresh_changed = |sb: Sandbox| async move {
        let w = worker("fresh");
        sb.create_session(&w, "kv", json!({}), None).await.unwrap();
        assert_eq!(ok(exec(&sb, &w, "kv:keys", json!({})).await)["keys"], json!([]));
        let changed = sb.snapshot_session(&w, "kv").await.unwrap().changed_bytes;
        sb.destroy_session(&w, "kv").await.unwrap();
        changed
    };
    let before = fresh_changed(sb.clone()).await;

    let source = worker("cow-source");
    sb.create_session(&source, "kv", json!({}), None).await.unwrap();
    // 1 MiB in one value: a run of pages long enough to be mapped, not copied.
    let big = "s".repeat(1 << 20);
    ok(exec(&sb, &source, "kv:set", json!({"key": "big", "value": big})).await);
    // Two copies share the captured pages (mapped from a memfd); one copy takes them (moved).
    for (round, count) in [2, 1, 2].into_iter().enumerate() {
        // (Which of the two a fork did is asserted in a server of its own, where no other
        // test's forks map memfds: cli_restores::one_copy_takes_the_pages_several_map_them.)
        let copies = sb.fork_session(&source, "kv", count, vec![]).await.unwrap();
        for (k, (fork, _)) in copies.iter().enumerate() {
            let copy = Caller::new(fork.clone());
            assert_eq!(
                ok(exec(&sb, &copy, "kv:get", json!({"key": "big"})).await)["value"].as_str().map(str::len),
                Some(1 << 20)
            );
            ok(exec(&sb, &copy, "kv:set", json!({"key": "big", "value": format!("copy {k}")})).await);
        }
        for (k, (fork, _)) in copies.iter().enumerate() {
            let copy = Caller::new(fork.clone());
            assert_eq!(ok(exec(&sb, &copy, "kv:get", json!({"key": "big"})).await)["value"], format!("copy {k}"));
            sb.destroy_session(&copy, "kv").await.unwrap();
        }
        assert_eq!(fresh_changed(sb.clone()).await, before, "round {round}: a new session starts from the fresh image");
        // Every byte of new instances in the slots the copies used (and more), grown past
        // the copies' memory, is the fresh image's.
        let kv = sb.backend("kv").unwrap();
        kv.verify_fresh_instances(16, 64).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    let kept = ok(exec(&sb, &source, "kv:get", json!({"key": "big"})).await);
    assert_eq!(kept["value"].as_str().map(str::len), Some(1 << 20), "the source is unaffected");
}

/// A sandbox serving Python with a store of its own (`max_instances` slots) and one session
/// of `name` holding 4 MiB of random bytes (`data`) and their sha256 (`digest`).
async fn python_holding_random_data(max_instances: u32, name: &str) -> (tempfile::TempDir, Sandbox, Caller) {
    let store = tempfile::tempdir().unwrap();
    let sb = sandbox_with(json!({
        "server": {"limits": {"max_instances": max_instances, "memory_mb": 256}, "snapshots": {"dir": store.path()}},
        "resources": {"python": {"component": "builtin:python"}}
    }))
    .await;
    let source = worker(name);
    sb.create_session(&source, "python", json!({}), None).await.unwrap();
    let made = "import random, hashlib\ndata = random.randbytes(4 << 20)\ndigest = hashlib.sha256(data).hexdigest()";
    py(&sb, &source, made).await;
    (store, sb, source)
}

/// A stored snapshot's pages that do not compress are kept as they are and mapped from the
/// store's file into the restored session (not read and copied); the restored session sees
/// them and diverges on its own, the file is no longer mapped once it ends, and its pool
/// slot holds the fresh image again.
#[tokio::test]
async fn a_restore_maps_the_stored_file_and_the_slot_starts_fresh_after() {
    let (store, sb, source) = python_holding_random_data(3, "mapped-source").await;
    let snap = sb.snapshot_session(&source, "python").await.unwrap();
    assert!(snap.stored_bytes >= 4 << 20, "random bytes are stored as they are: {snap:?}");
    let in_store = store.path().to_str().unwrap().to_string();
    assert_eq!(mapped_files(&in_store), 0, "nothing maps the store yet");

    let restored = worker("mapped-restored");
    sb.restore_snapshot(&restored, &snap.snapshot_id).await.unwrap();
    #[cfg(target_os = "linux")]
    assert!(mapped_files(&in_store) > 0, "the restored session maps the stored file");
    assert_eq!(py(&sb, &restored, "hashlib.sha256(data).hexdigest() == digest").await["result"], "True");
    py(&sb, &restored, "data = b'mine'").await;
    assert_eq!(py(&sb, &source, "len(data)").await["result"], (4 << 20).to_string(), "the source is unaffected");
    assert_eq!(py(&sb, &restored, "data").await["result"], "b'mine'");

    sb.destroy_session(&restored, "python").await.unwrap();
    sb.delete_snapshot("default", &snap.snapshot_id).await.unwrap();
    assert_eq!(mapped_files(&in_store), 0, "the file is let go with the session");
    let python = sb.backend("python").unwrap();
    python.verify_fresh_instances(4, 16).await.unwrap();
    assert_eq!(py(&sb, &source, "hashlib.sha256(data).hexdigest() == digest").await["result"], "True");
}

/// A capture skips the pages the kernel says were never written since they were mapped
/// (engine::pagemap); a restored session's mapped pages are such pages, yet they are not the
/// warm image's. Snapshotting a restored session that has not touched its data, and forking
/// a copy that has not, must keep all of it.
#[tokio::test]
async fn a_restored_session_captured_again_keeps_the_pages_it_never_wrote() {
    let (_store, sb, source) = python_holding_random_data(6, "again-source").await;
    let first = sb.snapshot_session(&source, "python").await.unwrap();
    let restored = worker("again-restored");
    sb.restore_snapshot(&restored, &first.snapshot_id).await.unwrap();
    // Snapshot the restored session before any call reads or writes its data.
    let second = sb.snapshot_session(&restored, "python").await.unwrap();
    assert!(second.changed_bytes >= 4 << 20, "the mapped pages count as changed: {second:?}");
    let again = worker("again-twice");
    sb.restore_snapshot(&again, &second.snapshot_id).await.unwrap();
    assert_eq!(py(&sb, &again, "hashlib.sha256(data).hexdigest() == digest").await["result"], "True");
    // A fork of two copies maps the capture; a copy of such a copy, forked untouched, keeps it.
    let copies = sb.fork_session(&again, "python", 2, vec![]).await.unwrap();
    let copy = Caller::new(copies[0].0.clone());
    let grandchild = sb.fork_session(&copy, "python", 1, vec![]).await.unwrap();
    let grandchild = Caller::new(grandchild[0].0.clone());
    assert_eq!(py(&sb, &grandchild, "hashlib.sha256(data).hexdigest() == digest").await["result"], "True");
    assert_eq!(py(&sb, &copy, "hashlib.sha256(data).hexdigest() == digest").await["result"], "True");
}
