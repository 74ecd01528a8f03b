//! The snapshot store in an S3 bucket (`server.snapshots.url`): a real S3 server (s3s-fs, on
//! 127.0.0.1 with signed requests) holds the snapshots of two Cella servers, which restore
//! each other's; sessions outlive a graceful restart through it; a corrupted blob in the
//! bucket is refused; a sandbox snapshot's files go in and come back.

use cella_e2e::code_server;
use cella_runtime::sandbox::snapstore::{Claim, Owned, SandboxManifest, SnapshotStore};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const BUCKET: &str = "cella-snaps";
const KEY_ID: &str = "cella-test";
const SECRET: &str = "cella-test-secret";

/// An S3 server on a random port of 127.0.0.1, its objects as files under `root`.
pub(crate) struct S3 {
    endpoint: String,
    root: tempfile::TempDir,
}

pub(crate) async fn s3_server() -> S3 {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
    builder.set_auth(s3s::auth::SimpleAuth::from_single(KEY_ID, SECRET));
    let service = builder.build();
    // s3s-fs checks `If-None-Match: *` and then writes, in two steps, so two creates racing
    // for one key can both succeed; S3 makes a conditional write atomic. Conditional writes
    // go one at a time here to be what S3 is.
    let conditional = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (service, conditional) = (service.clone(), conditional.clone());
            let one_at_a_time = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (service, conditional) = (service.clone(), conditional.clone());
                async move {
                    let _one = match req.headers().contains_key("if-none-match") {
                        true => Some(conditional.lock_owned().await),
                        false => None,
                    };
                    hyper::service::Service::call(&service, req).await
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(socket);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, one_at_a_time).await;
            });
        }
    });
    S3 { endpoint, root }
}

impl S3 {
    /// Where the bucket's objects under `pool-a/` are, as files (s3s-fs keeps each key as a path).
    pub(crate) fn pool(&self) -> PathBuf {
        self.root.path().join(BUCKET).join("pool-a")
    }

    pub(crate) fn snapshots(&self) -> Value {
        json!({
            "url": format!("s3://{BUCKET}/pool-a"),
            "keep_on_shutdown": true,
            "options": {
                "aws_endpoint": self.endpoint,
                "aws_allow_http": "true",
                "aws_region": "us-east-1",
                "aws_access_key_id": KEY_ID,
                "aws_secret_access_key": SECRET,
            }
        })
    }

    /// The store a server of [`S3::snapshots`] opens, for the tests that use it directly.
    fn store(&self) -> SnapshotStore {
        let mut config = cella_e2e::base_config();
        config["server"]["snapshots"] = self.snapshots();
        let config = cella_runtime::Config::from_json(&config.to_string(), &cella_e2e::repo_root()).unwrap();
        SnapshotStore::of(&config).unwrap()
    }

    /// The bucket's files under `pool-a/` whose folder is `folder`.
    fn files_in(&self, folder: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.path().join(BUCKET).join("pool-a")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if dir.file_name().is_some_and(|n| n == folder) {
                    out.push(path);
                }
            }
        }
        out
    }
}

fn worker(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Two servers share a bucket: one's snapshot restores on the other; a graceful restart keeps
/// live sessions in the bucket; a corrupted blob is refused with 7011.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_a_bucket_restore_each_others_snapshots_and_keep_sessions_over_a_restart() {
    let s3 = s3_server().await;
    let patch = json!({"server": {"snapshots": s3.snapshots()}});
    let a = code_server(patch.clone()).await;
    let b = code_server(patch.clone()).await;

    let w = worker("s3-a");
    for rt in ["kv", "python"] {
        let (status, body) = a.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": rt})).await;
        assert_eq!(status, 200, "{body}");
    }
    a.execute(&w, "kv:set", json!({"key": "k", "value": "in the bucket"})).await;
    a.execute(&w, "python:run", json!({"code": "x = 41\nopen('f.txt', 'w').write('a file')"})).await;
    let (status, body) = a.post("/api/v1/session/snapshot", json!({"worker_id": w, "resource_type": "python"})).await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["snapshot_id"].as_str().unwrap().to_string();
    let records = s3.files_in("default");
    assert!(records.iter().any(|p| p.ends_with(format!("{id}.json"))), "the record is in the bucket: {records:?}");
    assert_eq!(s3.files_in("blobs").len(), 1, "its content too");

    // The other server restores it: variables and files as they were.
    let wb = worker("s3-b");
    let (status, body) = b.post(&format!("/api/v1/snapshots/{id}/restore"), json!({"worker_id": wb})).await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = b.execute(&wb, "python:run", json!({"code": "(x + 1, open('f.txt').read())"})).await;
    assert_eq!(got["data"]["result"], "(42, 'a file')", "{got}");
    let (_, listed) = b.get("/api/v1/snapshots").await;
    assert_eq!(listed["data"]["snapshots"].as_array().map(Vec::len), Some(1), "{listed}");

    // A graceful stop keeps a's live sessions in the bucket; the next start brings them back.
    let (status, body) = a.post("/api/v1/server/shutdown", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions_cleaned"], 2, "{body}");
    a.wait().await.expect("the server stops");
    let a = code_server(patch).await;
    let (_, got) = a.execute(&w, "kv:get", json!({"key": "k"})).await;
    assert_eq!(got["data"]["value"], "in the bucket", "{got}");
    let (_, got) = a.execute(&w, "python:run", json!({"code": "x"})).await;
    assert_eq!(got["data"]["result"], "41", "{got}");

    // Every blob in the bucket corrupted: the restore is refused and makes no session.
    for path in s3.files_in("blobs") {
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len() - 1;
        bytes[n] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let wc = worker("s3-c");
    let (status, body) = b.post(&format!("/api/v1/snapshots/{id}/restore"), json!({"worker_id": wc})).await;
    assert_eq!((status, body["code"].as_i64()), (409, Some(7011)), "{body}");
    let r = b.client.delete(format!("{}/api/v1/snapshots/{id}", b.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(s3.files_in("blobs").is_empty(), "the blob went with its last record");
}

/// A sandbox snapshot's files (E2B's template snapshots) go into the bucket and come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_snapshots_files_round_trip_through_the_bucket() {
    let s3 = s3_server().await;
    let store = s3.store();
    assert_eq!(store.place(), format!("s3://{BUCKET}/pool-a"));
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::write(files.join("a.txt"), "A").unwrap();
    std::fs::write(files.join("sub").join("b c.txt"), "B").unwrap();
    let manifest: SandboxManifest = serde_json::from_value(json!({
        "id": "sbxsnap_0123456789abcdef", "names": ["n"], "tenant": "t", "source": "sbx", "created_at": "now",
        "template": "base", "metadata": {}, "env": {}, "home": "/home/user", "packages": [], "files_bytes": 2,
        "contexts": []
    }))
    .unwrap();
    store.put_sandbox(&manifest, &files).await.unwrap();
    assert_eq!(store.sandboxes("t").await.len(), 1);
    let back = dir.path().join("back");
    store.fetch_sandbox_files("t", &manifest.id, &back).await.unwrap();
    assert_eq!(read(&back.join("a.txt")), "A");
    assert_eq!(read(&back.join("sub").join("b c.txt")), "B");
    store.delete_sandbox("t", &manifest.id).await.unwrap();
    assert!(store.sandboxes("t").await.is_empty());
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A bucket that does not answer: the server starts, a snapshot or a pause fails within
/// seconds with a clear error (5005, naming the store), and the session goes on untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_does_not_answer_fails_the_snapshot_and_the_session_goes_on() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let snapshots = json!({
        "url": format!("s3://{BUCKET}/x"),
        "options": {"aws_endpoint": format!("http://127.0.0.1:{closed}"), "aws_allow_http": "true",
                    "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET}
    });
    let s = cella_e2e::Server::start(json!({"server": {"snapshots": snapshots}})).await;
    let w = worker("s3-dead");
    let (status, body) = s.post("/api/v1/session/create", json!({"worker_id": w, "resource_type": "kv"})).await;
    assert_eq!(status, 200, "{body}");
    s.execute(&w, "kv:set", json!({"key": "k", "value": "kept"})).await;
    for verb in ["snapshot", "pause"] {
        let started = std::time::Instant::now();
        let (status, body) =
            s.post(&format!("/api/v1/session/{verb}"), json!({"worker_id": w, "resource_type": "kv"})).await;
        assert_eq!(body["code"], 5005, "{verb}: {body}");
        assert!(status >= 500, "{verb}: {status}");
        assert!(body["message"].as_str().unwrap().contains("snapshot store"), "{verb}: {body}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{verb} gave up in {:?}", started.elapsed());
    }
    let (_, got) = s.execute(&w, "kv:get", json!({"key": "k"})).await;
    assert_eq!(got["data"]["value"], "kept", "the session is live and whole: {got}");
}

/// A claim in a bucket has one owner: S3's conditional create (`If-None-Match: *`) refuses a
/// second node, and the owner's own claim is its own again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_in_the_bucket_has_one_owner() {
    let s3 = s3_server().await;
    let store = s3.store();
    assert_eq!(store.claim("t", "kv_w_001_ab", "node-a").await.unwrap(), Claim::Ours);
    assert_eq!(store.claim("t", "kv_w_001_ab", "node-a").await.unwrap(), Claim::Ours);
    assert_eq!(store.claim("t", "kv_w_001_ab", "node-b").await.unwrap(), Claim::Theirs("node-a".into()));
    assert_eq!(s3.files_in("claims").len(), 1);
    assert_eq!(store.release("node-a").await.unwrap(), 1);
    assert_eq!(store.claim("t", "kv_w_001_ab", "node-b").await.unwrap(), Claim::Ours);
}

/// Two nodes racing through the bucket to take one sandbox from a dead node: S3's
/// conditional create lets exactly one win (the same fence as on a local store).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_nodes_racing_through_the_bucket_for_a_sandbox_exactly_one_wins() {
    let s3 = s3_server().await;
    let store = s3.store();
    let dead = store.own(Owned::Sandbox("sbx1"), "acme", "node-a").await.unwrap();
    let racers = (0..8).map(|k| {
        let (mine, dead) = (s3.store(), dead.clone());
        let node = if k % 2 == 0 { "node-b" } else { "node-c" };
        tokio::spawn(async move { (node, mine.take(Owned::Sandbox("sbx1"), &dead, node).await.unwrap()) })
    });
    let results: Vec<(&str, bool)> = futures::future::join_all(racers).await.into_iter().map(|r| r.unwrap()).collect();
    let winners: Vec<&str> = results.iter().filter(|(_, won)| *won).map(|(n, _)| *n).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(store.owner_of(Owned::Sandbox("sbx1")).await.unwrap().unwrap().node, winners[0]);
}
