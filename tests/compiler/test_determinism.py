"""The same input gives byte-identical output under any hash seed: `tqc check --format json` over every
golden file (cycles, did-you-means, recovery …) and `tqc compile` of a valid file, each run in a fresh
interpreter with a different PYTHONHASHSEED (set iteration order changes with it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
SEEDS = ("0", "1", "12345")
CYCLES = """use shop as shop

flow loops {
  job a = shop.count(values=[d.out])
  job b = shop.count(values=[a.out])
  job c = shop.count(values=[b.out])
  job d = shop.count(values=[c.out])
  job e = shop.count(values=[f.out])
  job f = shop.count(values=[e.out]) {
    after a
  }
  job g = shop.count(values=[g.out])
}
"""


def run(seed: str, *args: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    code = "from tqflow.cli.tqc import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, env=env, cwd=GOLDEN, timeout=240
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done.stdout


def test_check_json_is_byte_identical_under_any_hash_seed(tmp_path: Path) -> None:
    files = sorted(p.name for p in GOLDEN.glob("*.tqflow"))
    extra = tmp_path / "loops.tqflow"
    extra.write_text(CYCLES)
    (tmp_path / "shop.py").write_text((GOLDEN / "shop.py").read_text())
    outputs = {run(seed, "check", "--format", "json", *files, str(extra)) for seed in SEEDS}
    assert len(outputs) == 1
    [output] = outputs
    assert b"`loops`: a -> b -> c -> d -> a" in output  # from the first declared job, in edge order
    assert b"e -> f -> e" in output and b"g -> g" in output


def test_plan_is_byte_identical_under_any_hash_seed() -> None:
    plans = {run(seed, "compile", "ok_everything.tqflow") for seed in SEEDS[:2]}
    assert len(plans) == 1 and plans != {b""}
