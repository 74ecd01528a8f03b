//! Where the store lives: a local directory (`server.snapshots.dir`, default the cache
//! directory's `snapshots/`), or any place `server.snapshots.url` names: `file:///a/dir`, or
//! `s3://bucket/prefix` for S3 and S3-compatible stores (MinIO, Ceph, R2, …), with
//! credentials from the usual `AWS_*` environment variables and `server.snapshots.options`
//! (object_store's S3 keys: `aws_endpoint`, `aws_region`, `aws_allow_http`, …).

use super::{StoreError, io};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long one store operation keeps retrying a bucket that fails.
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

/// A store in the local directory `dir` (created if missing). Writes go to a temporary name
/// and are renamed; folders left empty by a delete are removed; with `fsync`, each write is
/// on disk (file and directory) before it returns.
pub(super) fn local(dir: &Path, fsync: bool) -> Result<Arc<dyn ObjectStore>, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| io(format!("cannot create the snapshot store {}: {e}", dir.display())))?;
    let fs = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| io(format!("cannot open the snapshot store {}: {e}", dir.display())))?
        .with_automatic_cleanup(true)
        .with_fsync(fsync);
    Ok(Arc::new(fs))
}

/// The store `url` names, with `options` (S3's settings); `fsync` for a `file://` one.
pub(super) fn from_url(
    url: &str,
    options: &BTreeMap<String, String>,
    fsync: bool,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    if let Some(path) = url.strip_prefix("file://") {
        if !options.is_empty() {
            return Err(io("server.snapshots.options: a file:// store takes none"));
        }
        return local(Path::new(path), fsync);
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(io(format!("server.snapshots.url '{url}': use s3://bucket[/prefix] or file:///a/directory")));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(io(format!("server.snapshots.url '{url}': no bucket")));
    }
    // A snapshot holds its session's lock while it is stored: give up on a bucket that does
    // not answer in seconds, not object_store's default three minutes.
    let retry = object_store::RetryConfig { max_retries: 3, retry_timeout: RETRY_TIMEOUT, ..Default::default() };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_http_connector(super::https::Connector)
        .with_retry(retry);
    for (key, value) in options {
        let key: AmazonS3ConfigKey =
            key.parse().map_err(|e| io(format!("server.snapshots.options: '{key}' is not an S3 setting ({e})")))?;
        builder = builder.with_config(key, value);
    }
    let s3 = builder.build().map_err(|e| io(format!("server.snapshots.url '{url}': {e}")))?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) })
}
