#!/usr/bin/env bash
# Makes an installable Cella tree that runs from anywhere, without the checkout:
#
#   <out>/cella/bin/cella                      the binary
#   <out>/cella/share/cella/components/*.wasm  the product's components (builtin:<name>)
#   <out>/cella/share/cella/{corpus,data}      the example data the default config grants
#   <out>/cella/share/cella/wheelhouse         the example wheels the python backend installs
#   <out>/cella/share/cella/python-sci         the scientific Python's library (stdlib zip, driver, mpl-data)
#   <out>/cella/share/cella/sdk/{guest-rust,codes}  the Rust guest SDK `cella new` projects use
#
# and <out>/cella-<version>-<arch>-linux.tar.gz of it. `cella serve` finds share/cella beside
# its bin/ folder (or wherever CELLA_HOME says). Usage:
#
#   scripts/package.sh [OUT]        # default OUT: target/dist; builds with cargo first
#   CELLA_BIN=path scripts/package.sh OUT   # package a binary that is already built
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$root/target/dist}" && cd "${1:-$root/target/dist}" && pwd)"
home="$root/target/cella-home"

if [[ -z "${CELLA_BIN:-}" ]]; then
    echo "== cargo build --release (the binary and the product's components)"
    (cd "$root" && cargo build --release --bin cella)
    CELLA_BIN="$root/target/release/cella"
fi
[[ -d "$home/components" ]] || { echo "error: $home is missing: build with cargo first" >&2; exit 1; }

tree="$out/cella"
rm -rf "$tree"
mkdir -p "$tree/bin" "$tree/share/cella/components" "$tree/share/cella/wheelhouse" "$tree/share/cella/sdk"
cp "$CELLA_BIN" "$tree/bin/cella"
# The release profile keeps debug info for profiling; an installed binary needs none.
if command -v strip >/dev/null; then strip --strip-debug "$tree/bin/cella"; fi
# Only the components themselves (the build folder also holds cargo's own files).
cp "$home"/components/*.wasm "$tree/share/cella/components/"
cp -rL "$home/corpus" "$home/data" "$tree/share/cella/"
# The scientific Python reads its standard library, packages and driver from here.
[[ -d "$home/python-sci/lib" ]] || { echo "error: $home/python-sci is missing: build with cargo first" >&2; exit 1; }
cp -rL "$home/python-sci" "$tree/share/cella/"
cp "$home"/wheelhouse/*.whl "$tree/share/cella/wheelhouse/" 2>/dev/null || true
for sdk in guest-rust codes; do
    mkdir -p "$tree/share/cella/sdk/$sdk"
    (cd "$root/sdk/$sdk" && tar --exclude=target -cf - .) | tar -xf - -C "$tree/share/cella/sdk/$sdk"
done

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
tarball="$out/cella-$version-$(uname -m)-linux.tar.gz"
tar -czf "$tarball" -C "$out" cella
echo "packaged $tree ($(du -sh "$tree" | cut -f1)); $tarball"
echo "run it from anywhere: $tree/bin/cella serve"
