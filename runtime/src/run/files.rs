//! Files in a run session's working directory (S-33): uploads by content or by hash, and
//! the listing with hashes.

use super::*;

impl Runner {
    /// Writes the uploads into the session's scratch directory.
    pub(super) async fn upload(&self, caller: &Caller, rt: &str, uploads: &[RunFile]) -> Result<Value, Envelope> {
        let Some(dir) = self.sandbox.session_dir(caller, rt) else {
            return Err(fail(
                codes::INVALID_REQUEST_FORMAT,
                format!("the {rt} backend has no working directory (grants.scratch) to upload files into"),
                Value::Null,
            ));
        };
        let uploads = uploads.to_vec();
        tokio::task::spawn_blocking(move || write_uploads(&dir, &uploads))
            .await
            .unwrap_or_else(|e| Err(fail(codes::UNEXPECTED_ERROR, format!("the upload stopped: {e}"), Value::Null)))
    }

    /// The files a run session holds, with their hashes (S-33): send only the rest.
    pub async fn files(&self, tenant: &std::sync::Arc<str>, session_id: &str) -> Result<Vec<HeldFile>, Envelope> {
        let caller = self.existing(tenant, session_id)?;
        let dirs: Vec<PathBuf> = self
            .sandbox
            .list_sessions(&caller)
            .iter()
            .filter_map(|info| self.sandbox.session_dir(&caller, &info.resource_type))
            .collect();
        // Hashing every file is blocking work: off the async threads.
        let listed = tokio::task::spawn_blocking(move || dirs.iter().flat_map(|d| list_files(d)).collect()).await;
        listed.map_err(|e| fail(codes::UNEXPECTED_ERROR, format!("the listing stopped: {e}"), Value::Null))
    }
}

/// Writes `uploads` into `dir` (blocking file work: called off the async threads).
fn write_uploads(dir: &Path, uploads: &[RunFile]) -> Result<Value, Envelope> {
    let mut held: Option<Vec<HeldFile>> = None;
    let (mut uploaded, mut unchanged, mut reused) = (Vec::new(), Vec::new(), Vec::new());
    for file in uploads {
        let relative = safe_relative(&file.path).ok_or_else(|| {
            fail(
                codes::INVALID_REQUEST_FORMAT,
                format!("file path '{}' must be relative, without '..'", file.path),
                json!({"path": file.path}),
            )
        })?;
        let target = dir.join(&relative);
        let bytes = content(file)?;
        let io_error = |e: std::io::Error| {
            fail(codes::EXECUTION_ERROR, format!("file '{}': {e}", file.path), json!({"path": file.path}))
        };
        match bytes {
            Some(bytes) => {
                let hash = hex::encode(Sha256::digest(&bytes));
                if let Some(want) = &file.sha256
                    && !want.eq_ignore_ascii_case(&hash)
                {
                    return Err(fail(
                        codes::INVALID_PARAMETER_TYPE,
                        format!("file '{}': the content's sha256 is {hash}, not {want}", file.path),
                        json!({"path": file.path, "sha256": hash}),
                    ));
                }
                if std::fs::read(&target).is_ok_and(|old| Sha256::digest(&old)[..] == Sha256::digest(&bytes)[..]) {
                    unchanged.push(file.path.clone());
                    continue;
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io_error)?;
                }
                std::fs::write(&target, &bytes).map_err(io_error)?;
                held = None;
                uploaded.push(json!({"path": file.path, "sha256": hash, "size": bytes.len()}));
            }
            None => {
                let Some(want) = &file.sha256 else {
                    return Err(fail(
                        codes::MISSING_REQUIRED_FIELD,
                        format!("file '{}' needs content, content_base64 or sha256", file.path),
                        json!({"path": file.path}),
                    ));
                };
                let index = held.get_or_insert_with(|| list_files(dir));
                let Some(source) = index.iter().find(|h| h.sha256.eq_ignore_ascii_case(want)) else {
                    return Err(fail(
                        codes::NO_RESULTS_FOUND,
                        format!(
                            "file '{}': the session holds no content with sha256 {want}; send the content",
                            file.path
                        ),
                        json!({"path": file.path, "sha256": want}),
                    ));
                };
                let from = dir.join(&source.path);
                if from != target {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(io_error)?;
                    }
                    std::fs::copy(&from, &target).map_err(io_error)?;
                    held = None;
                }
                reused.push(file.path.clone());
            }
        }
    }
    Ok(json!({"uploaded": uploaded, "unchanged": unchanged, "reused": reused}))
}

/// `path` as a relative path with no `..`, root or prefix, or `None`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return None;
    }
    Some(p.to_path_buf())
}

/// Every regular file under `dir`, with its sha256, sorted by path.
/// The bytes an upload carries (as text or base64), or `None` when it names content by hash.
fn content(file: &RunFile) -> Result<Option<Vec<u8>>, Envelope> {
    use base64::Engine as _;
    match (&file.content, &file.content_base64) {
        (Some(text), None) => Ok(Some(text.clone().into_bytes())),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).map(Some).map_err(|e| {
            fail(
                codes::INVALID_PARAMETER_TYPE,
                format!("file '{}': content_base64 is not base64: {e}", file.path),
                json!({"path": file.path}),
            )
        }),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(fail(
            codes::INVALID_REQUEST_FORMAT,
            format!("file '{}': give content or content_base64, not both", file.path),
            json!({"path": file.path}),
        )),
    }
}

pub(super) fn list_files(dir: &Path) -> Vec<HeldFile> {
    let files = walkdir::WalkDir::new(dir).into_iter().filter_map(Result::ok).filter(|e| e.file_type().is_file());
    let mut out: Vec<HeldFile> = files
        .filter_map(|entry| {
            let bytes = std::fs::read(entry.path()).ok()?;
            let relative = entry.path().strip_prefix(dir).ok()?;
            Some(HeldFile {
                path: relative.to_string_lossy().into_owned(),
                sha256: hex::encode(Sha256::digest(&bytes)),
                size: bytes.len() as u64,
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn upload_paths_stay_inside_the_working_directory() {
        assert!(safe_relative("data.csv").is_some());
        assert!(safe_relative("a/b/./c.txt").is_some());
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }
}
