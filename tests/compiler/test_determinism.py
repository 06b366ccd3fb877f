"""The same input gives byte-identical output under any hash seed: `tqc check --format json` over every
golden file (cycles, did-you-means, recovery …) and `tqc compile` of a valid file, each run in a fresh
interpreter per seed with a different PYTHONHASHSEED (set iteration order changes with it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


# One interpreter per seed runs both commands (compile first, in a fresh state, then check), their
# outputs separated by \x1e: three interpreter starts, not five (each is a second of CPU of imports).
CODE = """
import json, sys
from tqflow.cli.tqc import cli
for args in json.loads(sys.argv[1]):
    try:
        cli.main(args, prog_name="tqc")
    except SystemExit:
        pass
    sys.stdout.write("\\x1e")
    sys.stdout.flush()
"""


def run(seed: str, *commands: list[str]) -> list[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", CODE, json.dumps(commands)],
        capture_output=True,
        env=env,
        cwd=GOLDEN,
        timeout=240,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    *outputs, rest = done.stdout.split(b"\x1e")
    assert len(outputs) == len(commands) and rest == b"", done.stdout
    return outputs


@pytest.fixture(scope="module")
def by_seed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes]]:
    """seed -> (`tqc compile ok_everything.tqflow`, `tqc check --format json` of the golden files + loops)."""
    tmp_path = tmp_path_factory.mktemp("determinism")
    files = sorted(p.name for p in GOLDEN.glob("*.tqflow"))
    extra = tmp_path / "loops.tqflow"
    extra.write_text(CYCLES)
    (tmp_path / "shop.py").write_text((GOLDEN / "shop.py").read_text())
    made = {}
    for seed in SEEDS:
        plan, check = run(
            seed, ["compile", "ok_everything.tqflow"], ["check", "--format", "json", *files, str(extra)]
        )
        made[seed] = (plan, check)
    return made


def test_check_json_is_byte_identical_under_any_hash_seed(by_seed: dict[str, tuple[bytes, bytes]]) -> None:
    outputs = {check for _, check in by_seed.values()}
    assert len(outputs) == 1
    [output] = outputs
    assert b"`loops`: a -> b -> c -> d -> a" in output  # from the first declared job, in edge order
    assert b"e -> f -> e" in output and b"g -> g" in output


def test_plan_is_byte_identical_under_any_hash_seed(by_seed: dict[str, tuple[bytes, bytes]]) -> None:
    plans = {plan for plan, _ in by_seed.values()}
    assert len(plans) == 1 and plans != {b""}
