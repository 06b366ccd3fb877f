"""Golden files: each `golden/*.tqflow` is checked and its rendered diagnostics compared with the
`.out` file next to it. Regenerate with `TQFLOW_UPDATE_SNAPSHOTS=1 pytest tests/compiler/test_golden.py`;
a case without its `.out` file fails (a new case's expected output is written on purpose, and read)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tqflow.compiler import compile_file
from tqflow.compiler.codes import CODES
from tqflow.dsl.diagnostics import render_all

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.tqflow"))


def rendered(path: Path) -> str:
    result = compile_file(path)
    return render_all(result.diagnostics).replace(f"{GOLDEN}/", "").replace(str(GOLDEN), ".") + "\n"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    expected_path = path.with_suffix(".out")
    actual = rendered(path)
    if os.environ.get("TQFLOW_UPDATE_SNAPSHOTS") == "1":
        expected_path.write_text(actual)
    assert expected_path.exists(), (
        f"{expected_path} is missing: write it with TQFLOW_UPDATE_SNAPSHOTS=1, then read it before committing"
    )
    assert actual == expected_path.read_text()


def test_every_code_has_a_golden_file() -> None:
    shown = "".join(p.with_suffix(".out").read_text() for p in CASES if p.with_suffix(".out").exists())
    # TQ0000 is a compiler bug (tests/fuzz asserts it never shows); TQ0002 needs an 8 MB file
    # (tests/compiler/test_robustness.py builds one).
    exempt = {"TQ0000", "TQ0002"}
    missing = [code for code in CODES if f"[{code}]" not in shown and code not in exempt]
    assert missing == []


def test_a_case_without_its_expected_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQFLOW_UPDATE_SNAPSHOTS", raising=False)
    case = tmp_path / "new.tqflow"
    case.write_text("flow f {\n  job a = nothing.here()\n}\n")
    with pytest.raises(AssertionError, match=r"new\.out is missing"):
        test_golden(case)
    assert not case.with_suffix(".out").exists()
