"""The packages of the scientific Python backend: those built into the interpreter (read
from the wheel's MANIFEST, which the build puts beside this file) and the pure-Python
wheels a session installs from the operator's wheelhouse.
"""

import importlib
import os
import re

MANIFEST = os.path.join(os.path.dirname(__file__), "MANIFEST")


def normalise(name):
    return re.sub(r"[-_.]+", "_", name).lower()


class Packages:
    def __init__(self):
        self.builtin = {}  # normalised name -> (name, version)
        self.installed = {}  # normalised name -> wheel path

    def load(self):
        """Reads the MANIFEST's `package <name> <version>` lines (at warmup, into the image)."""
        try:
            with open(MANIFEST, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and parts[0] == "package":
                        self.builtin[normalise(parts[1])] = (parts[1], parts[2])
        except OSError:
            pass

    @staticmethod
    def wheels(wheelhouse):
        """The wheelhouse: normalised name -> [(version, file)]."""
        found = {}
        try:
            entries = os.listdir(wheelhouse)
        except OSError:
            return found
        for entry in sorted(entries):
            if entry.endswith(".whl"):
                parts = entry[:-4].split("-")
                if len(parts) >= 5:
                    found.setdefault(normalise(parts[0]), []).append((parts[1], entry))
        return found

    def listing(self, wheelhouse):
        offered = sorted(f"{n}=={v}" for n, vs in self.wheels(wheelhouse).items() for v, _ in vs)
        builtin = sorted(f"{name}=={version}" for name, version in self.builtin.values())
        return {"builtin": builtin, "wheelhouse": offered, "installed": sorted(self.installed)}

    def install(self, packages, wheelhouse):
        """Installs `packages`; returns the report, or (code, message, data) on a refusal."""
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            return (4004, "packages must be a list of strings")
        available = self.wheels(wheelhouse)
        installed, cached = [], []
        for spec in packages:
            name, _, version = spec.partition("==")
            key = normalise(name.strip())
            if key in self.installed or (key in self.builtin and not version):
                cached.append(spec)
                continue
            candidates = [c for c in available.get(key, []) if not version or c[0] == version.strip()]
            if not candidates:
                offered = sorted(f"{n}=={v}" for n, vs in available.items() for v, _ in vs)
                return (
                    4006,
                    f"package '{spec}' is not in the wheelhouse (no network inside the sandbox); available: {offered}",
                    {"package": spec, "available": offered},
                )
            wheel = candidates[-1][1]
            if not wheel.endswith("-none-any.whl"):
                return (4000, f"'{wheel}' is not a pure-Python wheel; only pure-Python wheels can be installed")
            path = os.path.join(wheelhouse, wheel)
            import sys

            sys.path.insert(0, path)  # a pure wheel is a zip that zipimport reads directly
            importlib.invalidate_caches()
            self.installed[key] = path
            installed.append(spec)
        return {"installed": installed, "cached": cached}
