#!/usr/bin/env bash
# Unpacks a tool from Debian's packages, pinned by version and sha256, under target/debian/,
# and prints the path of a command that runs it (with its libraries on LD_LIBRARY_PATH).
# Nothing is installed into the system and no service starts. Idempotent: a second run
# downloads nothing.
#
#   scripts/debian-tool.sh deploy/router/haproxy.debs usr/sbin/haproxy
#
# $1: a pin file (lines "name version sha256"; # comments); $2: the command inside the
# packages. Needs apt-get (Debian's package lists: `apt-get update` is run once if a
# download fails).
set -euo pipefail
pins="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
command="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
name="$(basename "$pins" .debs)"
out="$root/target/debian/$name"
stamp="$out/.pins"
wrapper="$out/bin/$(basename "$command")"
if [ -x "$wrapper" ] && cmp -s "$pins" "$stamp"; then
    echo "$wrapper"
    exit 0
fi
rm -rf "$out"
mkdir -p "$out/debs" "$out/root" "$out/bin"
cd "$out/debs"
updated=no
while read -r pkg version sha; do
    case "$pkg" in ''|'#'*) continue ;; esac
    deb="${pkg}_${version/:/%3a}_amd64.deb"
    if ! apt-get download -q "$pkg=$version" >/dev/null 2>&1; then
        if [ "$updated" = no ]; then
            echo "debian-tool: updating the package lists" >&2
            apt-get update -q >/dev/null 2>&1 || true
            updated=yes
        fi
        apt-get download -q "$pkg=$version" >/dev/null 2>&1 || {
            echo "error: apt-get cannot download $pkg=$version (Debian may have replaced it: pin the new version and its sha256 in $pins)" >&2
            exit 1
        }
    fi
    found="$(ls ${pkg}_*.deb | head -n1)"
    got="$(sha256sum "$found" | cut -d' ' -f1)"
    if [ "$got" != "$sha" ]; then
        echo "error: $found has sha256 $got, $pins pins $sha" >&2
        exit 1
    fi
    dpkg-deb -x "$found" "$out/root"
done <"$pins"
cat >"$wrapper" <<WRAP
#!/bin/sh
LD_LIBRARY_PATH="$out/root/usr/lib/x86_64-linux-gnu:$out/root/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$out/root/$command" "\$@"
WRAP
chmod +x "$wrapper"
"$wrapper" -v >/dev/null
cp "$pins" "$stamp"
echo "$wrapper"
