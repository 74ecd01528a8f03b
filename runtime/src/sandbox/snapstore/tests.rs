//! The store on a local directory: what it writes is what it reads back, per tenant.

use super::*;
use crate::engine::snapshot::{Captured, GlobalValue, MemoryImage};

fn record(id: &str, tenant: &str, content: String, stored_bytes: u64) -> Record {
    let info = SnapshotInfo {
        snapshot_id: id.into(),
        reason: "snapshot".into(),
        worker_id: "w".into(),
        resource_type: "kv".into(),
        session_id: "s".into(),
        session_name: String::new(),
        created_at: id.into(),
        stored_bytes,
        changed_bytes: 0,
        memory_bytes: 0,
        files: 0,
        ttl_remaining_s: 0.0,
        config: serde_json::Value::Null,
        data: serde_json::Value::Null,
    };
    Record {
        info,
        tenant: tenant.into(),
        image_key: "k".into(),
        content,
        blob: None,
        pause_on_timeout: false,
        mounted: false,
    }
}

fn packed() -> (Vec<u8>, String, StateImage) {
    let image = StateImage {
        preopens: 0,
        memories: vec![MemoryImage { bytes: 65536, runs: vec![(0, 1)], data: vec![9; 4096].into() }],
        globals: vec![GlobalValue::I64(5)],
    };
    let packed = encode(&Captured { image: image.clone(), key: "k".into() }, Vec::new()).unwrap();
    (packed.parts.concat(), packed.checksum(), image)
}

/// A sandbox snapshot's manifest for `tenant` with two bytes of files.
fn manifest(id: &str, tenant: &str) -> SandboxManifest {
    SandboxManifest {
        id: id.into(),
        names: vec!["n".into()],
        tenant: tenant.into(),
        source: "s".into(),
        created_at: "now".into(),
        template: "base".into(),
        metadata: Default::default(),
        env: Default::default(),
        home: "/home/user".into(),
        packages: Vec::new(),
        files_bytes: 2,
        contexts: Vec::new(),
    }
}

/// Records as written today: each names its own blob, which goes with it.
#[tokio::test]
async fn a_record_owns_its_blob_and_takes_it_along() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(dir.path()).unwrap();
    let (bytes, content, image) = packed();
    let size = bytes.len() as u64;
    for id in ["snap_a", "snap_b"] {
        let mut r = record(id, "t1", content.clone(), size);
        r.blob = Some(Record::own_blob(id, &content));
        store.put(&r, bytes.clone()).await.unwrap();
    }
    assert_eq!(store.bytes_of("t1").await, 2 * size, "two blobs");
    let blobs = dir.path().join("tenants/t1/blobs");
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 2);
    store.delete("t1", "snap_a").await.unwrap();
    let b = store.record("t1", "snap_b").await.unwrap();
    assert_eq!(store.body(&b).await.unwrap().0, image);
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 1, "snap_a's blob went with it");
}

/// A new snapshot's blob is named by its id and checksum, whether the checksum was computed
/// beside a staged write (a local store) or before the write (a bucket: here the same
/// directory, told it is not local); nothing staged is left behind. The same with every
/// write synced to disk (`server.snapshots.fsync`), claims included.
#[tokio::test]
async fn a_new_snapshot_is_named_by_its_checksum_and_leaves_nothing_staged() {
    let image = StateImage {
        preopens: 0,
        memories: vec![MemoryImage { bytes: 1 << 20, runs: vec![(0, 64)], data: vec![3; 64 * 4096].into() }],
        globals: vec![GlobalValue::I32(1)],
    };
    let captured = Captured { image: image.clone(), key: "k".into() };
    // A local store, a bucket (told it is not local), and a local store that syncs each write.
    for (local, fsync) in [(true, false), (false, false), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore { local, ..SnapshotStore::local_with(dir.path(), fsync).unwrap() };
        let packed = encode(&captured, vec![("f.txt".into(), b"x".to_vec())]).unwrap();
        let (bytes, len) = (packed.parts.concat(), packed.len);
        let stored = store.put_new(record("snap_n", "t1", String::new(), len), packed).await.unwrap();
        assert_eq!(stored.content, blob::tree_checksum(&[&bytes]), "local {local}");
        assert_eq!(stored.blob.as_deref(), Some(format!("snap_n-{}", stored.content).as_str()));
        let names: Vec<String> = std::fs::read_dir(dir.path().join("tenants/t1/blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [format!("snap_n-{}", stored.content)], "local {local}");
        let (back, files) = store.body(&store.record("t1", "snap_n").await.unwrap()).await.unwrap();
        assert_eq!((back, files), (image.clone(), vec![("f.txt".to_string(), b"x".to_vec())]));
        assert_eq!(store.claim("t1", "s", "node-1").await.unwrap(), Claim::Ours, "fsync {fsync}");
        assert_eq!(store.claim("t1", "s", "node-2").await.unwrap(), Claim::Theirs("node-1".into()));
    }
}

/// Records written before blobs were per record share one blob by content.
#[tokio::test]
async fn records_and_blobs_round_trip_per_tenant_and_a_shared_blob_outlives_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(dir.path()).unwrap();
    let (bytes, content, image) = packed();
    let size = bytes.len() as u64;
    store.put(&record("snap_a", "t1", content.clone(), size), bytes.clone()).await.unwrap();
    store.put(&record("snap_b", "t1", content.clone(), size), bytes).await.unwrap();

    let listed: Vec<String> = store.list("t1").await.into_iter().map(|r| r.info.snapshot_id).collect();
    assert_eq!(listed, ["snap_a", "snap_b"]);
    assert_eq!(store.tenants().await, ["t1"]);
    assert_eq!(store.bytes_of("t1").await, size, "one blob, counted once");
    let (back, _) = store.body(&store.record("t1", "snap_a").await.unwrap()).await.unwrap();
    assert_eq!(back, image);

    // Another tenant sees none of it.
    assert!(store.list("t2").await.is_empty());
    assert!(matches!(store.record("t2", "snap_a").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.record("t1", "../t2/snap_a").await, Err(StoreError::NotFound(_))));

    // The blob stays while a record uses it.
    store.delete("t1", "snap_a").await.unwrap();
    let b = store.record("t1", "snap_b").await.unwrap();
    assert!(store.body(&b).await.is_ok());
    store.delete("t1", "snap_b").await.unwrap();
    assert!(matches!(store.body(&b).await, Err(StoreError::Corrupted(..))), "the blob went with its last record");
    assert!(store.list("t1").await.is_empty());
}

#[tokio::test]
async fn a_sandbox_snapshot_keeps_its_files_and_goes_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(&dir.path().join("store")).unwrap();
    let files = dir.path().join("files");
    write_files(&files, &[("a.txt".into(), b"A".to_vec()), ("sub/odd name%#.txt".into(), b"B".to_vec())]).unwrap();
    let manifest = manifest("sbxsnap_1", "t");
    store.put_sandbox(&manifest, &files).await.unwrap();
    assert_eq!(store.sandboxes("t").await.len(), 1);
    assert!(store.sandboxes("other").await.is_empty());
    assert_eq!(store.bytes_of("t").await, 2, "its files count, its manifest does not");
    assert_eq!(store.bytes_of("other").await, 0);
    let to = dir.path().join("copy");
    store.fetch_sandbox_files("t", "sbxsnap_1", &to).await.unwrap();
    let mut back = read_files(&to);
    back.sort();
    assert_eq!(back, vec![("a.txt".to_string(), b"A".to_vec()), ("sub/odd name%#.txt".to_string(), b"B".to_vec())]);
    store.delete_sandbox("t", "sbxsnap_1").await.unwrap();
    assert!(store.sandboxes("t").await.is_empty());
    assert_eq!(store.bytes_of("t").await, 0);
    assert!(matches!(store.delete_sandbox("t", "sbxsnap_1").await, Err(StoreError::NotFound(_))));
}

/// What a crash leaves (a blob no record names, a staged blob never renamed, sandbox files
/// without their manifest) is swept once it is older than the grace; what a record names
/// stays, and a tenant with a record that cannot be read is left whole.
#[tokio::test]
async fn a_sweep_removes_old_orphans_and_nothing_a_record_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(dir.path()).unwrap();
    let (bytes, content, image) = packed();
    let captured = Captured { image: image.clone(), key: "k".into() };
    let fresh = store.put_new(record("snap_new", "t1", String::new(), 0), encode(&captured, Vec::new()).unwrap());
    let fresh = fresh.await.unwrap();
    store.put(&record("snap_old", "t1", content.clone(), 0), bytes.clone()).await.unwrap();
    let files = dir.path().join("files");
    write_files(&files, &[("a.txt".into(), b"AB".to_vec())]).unwrap();
    let manifest = manifest("sbxsnap_whole", "t1");
    store.put_sandbox(&manifest, &files).await.unwrap();
    let kept_bytes = store.bytes_of("t1").await;

    // The orphans: a blob whose record was never written, a staged one, a sandbox cut short.
    store.write(&SnapshotStore::blob_key("t1", "snap_gone-00ff"), vec![1u8; 10]).await.unwrap();
    store.write(&SnapshotStore::blob_key("t1", "snap_cut.partial"), vec![2u8; 20]).await.unwrap();
    // Named the old way (by checksum alone): only reading every record shows none names it.
    store.write(&SnapshotStore::blob_key("t1", "abcdef0123"), vec![5u8; 8]).await.unwrap();
    let cut = SnapshotStore::sandbox_key("t1", "sbxsnap_cut").join("files").join("b.txt");
    store.write(&cut, vec![3u8; 5]).await.unwrap();
    // Another tenant whose record is garbage: its blob named the old way cannot be told
    // from an orphan.
    store.write(&SnapshotStore::record_key("t2", "snap_bad"), b"{not json".to_vec()).await.unwrap();
    store.write(&SnapshotStore::blob_key("t2", "00ff00ff"), vec![4u8; 7]).await.unwrap();
    assert_eq!(store.bytes_of("t1").await, kept_bytes + 43);

    assert_eq!(store.sweep(std::time::Duration::MAX).await, Swept::default(), "nothing is older than time");
    let young = store.sweep(sweep::GRACE).await;
    assert_eq!(young, Swept::default(), "nothing is an hour old");
    assert_eq!(store.bytes_of("t1").await, kept_bytes + 43);

    let swept = store.sweep(std::time::Duration::ZERO).await;
    assert_eq!(swept, Swept { blobs: 3, sandboxes: 1, bytes: 43, skipped: vec!["t2".into()] });
    assert_eq!(store.bytes_of("t1").await, kept_bytes, "only the orphans went");
    for id in ["snap_new", "snap_old"] {
        let (back, _) = store.body(&store.record("t1", id).await.unwrap()).await.unwrap();
        assert_eq!(back, image, "{id} still reads back");
    }
    assert_eq!(fresh.blob_name(), format!("snap_new-{}", fresh.content));
    assert_eq!(store.sandboxes("t1").await.len(), 1, "the whole sandbox snapshot stays");
    assert_eq!(store.bytes_of("t2").await, 7, "the tenant with an unreadable record is left whole");
}

#[tokio::test]
async fn a_session_is_claimed_by_one_node_until_it_is_released_or_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(dir.path()).unwrap();
    assert_eq!(store.claim("acme", "kv_w_001_ab", "node-a").await.unwrap(), Claim::Ours);
    // Again by its owner (a restart of that node): still its own; by another: not.
    assert_eq!(store.claim("acme", "kv_w_001_ab", "node-a").await.unwrap(), Claim::Ours);
    assert_eq!(store.claim("acme", "kv_w_001_ab", "node-b").await.unwrap(), Claim::Theirs("node-a".into()));
    // Per tenant: the same session id of another tenant is another claim.
    assert_eq!(store.claim("other", "kv_w_001_ab", "node-b").await.unwrap(), Claim::Ours);
    assert_eq!(store.claim("acme", "py_w_001_cd", "node-a").await.unwrap(), Claim::Ours);
    let mut claims = store.claims().await.unwrap();
    claims.sort_by(|a, b| (&a.tenant, &a.session_id).cmp(&(&b.tenant, &b.session_id)));
    let owners: Vec<_> = claims.iter().map(|c| (c.tenant.as_str(), c.session_id.as_str(), c.node.as_str())).collect();
    assert_eq!(
        owners,
        [("acme", "kv_w_001_ab", "node-a"), ("acme", "py_w_001_cd", "node-a"), ("other", "kv_w_001_ab", "node-b")]
    );
    // Giving up another node's claim does nothing; its own goes.
    store.unclaim("acme", "py_w_001_cd", "node-b").await.unwrap();
    assert_eq!(store.claim("acme", "py_w_001_cd", "node-b").await.unwrap(), Claim::Theirs("node-a".into()));
    store.unclaim("acme", "py_w_001_cd", "node-a").await.unwrap();
    assert_eq!(store.claim("acme", "py_w_001_cd", "node-b").await.unwrap(), Claim::Ours);
    // Released: node-a's sessions go to the next node that claims them, node-b's stay.
    assert_eq!(store.release("node-a").await.unwrap(), 1);
    assert_eq!(store.claim("acme", "kv_w_001_ab", "node-b").await.unwrap(), Claim::Ours);
    assert_eq!(store.release("node-a").await.unwrap(), 0);
    assert_eq!(store.release("node-b").await.unwrap(), 3);
    assert!(store.claims().await.unwrap().is_empty());
}

#[test]
fn a_machine_keeps_one_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let first = claims::node_id(dir.path()).unwrap();
    assert!(first.starts_with("node_") && crate::config::valid_node(&first), "{first}");
    assert_eq!(claims::node_id(dir.path()).unwrap(), first);
    std::fs::write(dir.path().join("node-id"), "not/a node").unwrap();
    let err = claims::node_id(dir.path()).unwrap_err().to_string();
    assert!(err.contains("not a node id"), "{err}");
}

/// Two nodes racing (with four requests each, each through its own handle on the store) to
/// take one sandbox from a dead node: exactly one request wins, the owner is the winner's
/// node, and a second takeover (from the winner, once it too died) has a fence of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_nodes_racing_for_a_dead_nodes_sandbox_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(dir.path()).unwrap();
    let dead = store.own(Owned::Sandbox("sbx1"), "acme", "node-a").await.unwrap();
    assert_eq!(store.own(Owned::Sandbox("sbx1"), "acme", "node-b").await.unwrap(), dead, "created only if absent");
    let racers = (0..8).map(|k| {
        let (dir, dead) = (dir.path().to_path_buf(), dead.clone());
        let node = if k % 2 == 0 { "node-b" } else { "node-c" };
        tokio::spawn(async move {
            let mine = SnapshotStore::local(&dir).unwrap();
            (node, mine.take(Owned::Sandbox("sbx1"), &dead, node).await.unwrap())
        })
    });
    let results: Vec<(&str, bool)> = futures::future::join_all(racers).await.into_iter().map(|r| r.unwrap()).collect();
    let winners: Vec<&str> = results.iter().filter(|(_, won)| *won).map(|(n, _)| *n).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let owner = store.owner_of(Owned::Sandbox("sbx1")).await.unwrap().unwrap();
    assert_eq!(owner.node, winners[0]);
    assert_eq!(owner.tenant, "acme");
    assert!(!store.take(Owned::Sandbox("sbx1"), &dead, "node-d").await.unwrap(), "the old holder's fence is taken");
    assert!(
        store.take(Owned::Sandbox("sbx1"), &owner, "node-d").await.unwrap(),
        "the new holder has a fence of its own"
    );
    // Released by a drain, then taken at once; ended, nothing is left.
    store.release_owned(Owned::Sandbox("sbx1"), "node-d").await.unwrap();
    let released = store.owner_of(Owned::Sandbox("sbx1")).await.unwrap().unwrap();
    assert_eq!(released.node, "");
    assert!(store.take(Owned::Sandbox("sbx1"), &released, "node-b").await.unwrap());
    store.disown(Owned::Sandbox("sbx1")).await.unwrap();
    assert_eq!(store.owner_of(Owned::Sandbox("sbx1")).await.unwrap(), None);
    assert!(
        !dir.path().join("cluster/sandboxes/sbx1").exists()
            || std::fs::read_dir(dir.path().join("cluster/sandboxes/sbx1")).unwrap().next().is_none()
    );
}

#[tokio::test]
async fn a_lease_holds_for_its_length_and_goes_with_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(dir.path()).unwrap();
    let now = chrono::Utc::now();
    let lease = Lease {
        node: "node-a".into(),
        address: "http://127.0.0.1:1".into(),
        renewed_at: now.to_rfc3339(),
        lease_s: 2.0,
    };
    store.put_lease(&lease).await.unwrap();
    let read = store.lease("node-a").await.unwrap().unwrap();
    assert!(read.live(now + chrono::Duration::milliseconds(1900)));
    assert!(!read.live(now + chrono::Duration::milliseconds(2100)));
    assert_eq!(store.leases().await.len(), 1);
    store.drop_lease("node-a").await.unwrap();
    assert!(store.lease("node-a").await.unwrap().is_none());
}

/// Workers are owned per tenant, under keys no two worker ids share (ids with characters a
/// key cannot hold included); only the owner's node removes its ownership.
#[tokio::test]
async fn workers_are_owned_per_tenant_under_distinct_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::local(dir.path()).unwrap();
    let worker = |tenant, worker| Owned::Worker { tenant, worker };
    let names = ["a.b", "a_b", "a/b", "a b", "ä"];
    for (k, name) in names.iter().enumerate() {
        let node = format!("node-{k}");
        assert_eq!(store.own(worker("acme", name), "acme", &node).await.unwrap().node, node);
    }
    for (k, name) in names.iter().enumerate() {
        assert_eq!(store.owner_of(worker("acme", name)).await.unwrap().unwrap().node, format!("node-{k}"));
        assert_eq!(store.owner_of(worker("other", name)).await.unwrap(), None, "another tenant's worker");
    }
    store.disown_if(worker("acme", "a.b"), "node-1").await.unwrap();
    assert!(store.owner_of(worker("acme", "a.b")).await.unwrap().is_some(), "another node's is left");
    store.disown_if(worker("acme", "a.b"), "node-0").await.unwrap();
    assert_eq!(store.owner_of(worker("acme", "a.b")).await.unwrap(), None);
}
