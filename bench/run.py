"""The one benchmark command: `python bench/run.py [--quick] [harness options]`.

Creates the virtualenvs under bench/.venvs on first use (any python3.11+ can start it), then runs the
harness and the report with bench/.venvs/tqflow/bin/python:
  peers   rq, dramatiq, arq, saq, streaq, huey (arq pins redis-py < 6, so this one has redis-py 5)
  redis8  celery and taskiq (kombu 5.7 needs redis-py >= 6.1, taskiq-redis 1.2 needs >= 8)
  tqflow  this checkout (editable), matplotlib, pyinstrument and py-spy for the profiles
and, when the machine has node and npm, bench/.node: `npm ci` of bench/node/package.json (bullmq, pinned
by its package-lock.json), run with the machine's Node.
Needs a Redis on 127.0.0.1:6379; dbs 1-10 are the benchmark's (each flushed by its own library's steps).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
PACKAGES = {
    "peers": ["rq", "dramatiq[redis]", "arq", "saq", "streaq", "huey", "hiredis", "redis"],
    "redis8": ["celery[redis]", "taskiq==0.13.0", "taskiq-redis==1.2.4", "hiredis"],
    "tqflow": ["-e", str(HERE.parent), "matplotlib", "pyinstrument", "py-spy"],
}


def ensure_venvs() -> None:
    """Create each venv once; the tqflow venv's editable install is redone when pyproject.toml changes
    (a new dependency, new package data), without recreating the venv."""
    pyproject = hashlib.sha256((HERE.parent / "pyproject.toml").read_bytes()).hexdigest()
    for name, packages in PACKAGES.items():
        path = VENVS / name
        marker = path / ".installed"
        wanted = " ".join(packages) + (f" pyproject:{pyproject}" if name == "tqflow" else "")
        if marker.exists() and marker.read_text().strip() == wanted:
            continue
        if marker.exists() and name == "tqflow":
            print(f"pyproject.toml changed: reinstalling this checkout into {path} ...", flush=True)
        else:
            print(f"creating {path} ({' '.join(packages)}) ...", flush=True)
            venv.create(path, with_pip=True, clear=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", *packages], check=True)
        marker.write_text(wanted + "\n")


NODE_SRC = HERE / "node"  # package.json and package-lock.json, committed
NODE_DIR = HERE / ".node"  # node_modules, gitignored


def ensure_node() -> bool:
    """Install the Node peers (bullmq) into bench/.node once per lock file; False without node or npm."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("node/npm not found: the Node peers (bullmq) are skipped", flush=True)
        return False
    lock = (NODE_SRC / "package-lock.json").read_bytes()
    digest = hashlib.sha256((NODE_SRC / "package.json").read_bytes() + lock).hexdigest()
    marker = NODE_DIR / ".installed"
    if marker.exists() and marker.read_text().strip() == digest:
        return True
    print(f"installing {NODE_DIR} (npm ci of {NODE_SRC / 'package.json'}) ...", flush=True)
    NODE_DIR.mkdir(exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(NODE_SRC / name, NODE_DIR / name)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)
    marker.write_text(digest + "\n")
    return True


def main() -> int:
    ensure_venvs()
    ensure_node()
    python = str(VENVS / "tqflow" / "bin" / "python")
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness, report; "
        "print(report.report(harness.main(sys.argv[1:])))"
    )
    return subprocess.run([python, "-c", code, *sys.argv[1:]], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
