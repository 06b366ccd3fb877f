"""The one benchmark command: `python bench/run.py [--quick] [harness options]`.

Creates the virtualenvs under bench/.venvs on first use (any python3.11+ can start it), then runs the
harness and the report with bench/.venvs/tqflow/bin/python:
  peers   rq, dramatiq, arq, saq, streaq, huey (arq pins redis-py < 6, so this one has redis-py 5)
  redis8  celery and taskiq (kombu 5.7 needs redis-py >= 6.1, taskiq-redis 1.2 needs >= 8)
  tqflow  this checkout (editable), matplotlib, pyinstrument and py-spy for the profiles
Needs a Redis on 127.0.0.1:6379; dbs 1-9 are the benchmark's (each flushed by its own library's steps).
"""

from __future__ import annotations

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
    for name, packages in PACKAGES.items():
        path = VENVS / name
        marker = path / ".installed"
        if marker.exists():
            continue
        print(f"creating {path} ({' '.join(packages)}) ...", flush=True)
        venv.create(path, with_pip=True, clear=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", *packages], check=True)
        marker.write_text(" ".join(packages) + "\n")


def main() -> int:
    ensure_venvs()
    python = str(VENVS / "tqflow" / "bin" / "python")
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); import harness, report; "
        "print(report.report(harness.main(sys.argv[1:])))"
    )
    return subprocess.run([python, "-c", code, *sys.argv[1:]], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
