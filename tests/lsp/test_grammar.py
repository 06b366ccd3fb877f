"""The TextMate grammar (editors/tqflow.tmLanguage.json): valid JSON, and it colours a sample right.

Two tokenizers read it: a small TextMate engine below (match, begin/end, captures, includes; Python's `re`
accepts the grammar's regexes, which keep to what Oniguruma and `re` share), and VS Code's own
vscode-textmate with vscode-oniguruma, run with node when it is installed (npm puts the two packages in a
cache folder outside the repository). Both must give every character of the sample the same scopes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent.parent
GRAMMAR = ROOT / "editors" / "tqflow.tmLanguage.json"
NODE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tqflow-tests" / "textmate"

SAMPLE = """\
# Nightly orders. # not a second comment
use etl.tasks as etl
use payments.errors.{GatewayTimeout, CardDeclined}
import "shared.tqflow" as shared

retry db_flaky = exponential(1s, factor=2, max=5m, jitter=10%), attempts=5

flow nightly {
  queue "etl"
  params {
    day: Date = 2026-01-31
    limit: Int? = 100
  }
  schedule cron "30 2 * * *" tz "Europe/Paris" { catchup last(3); overlap skip }
  schedule every 6h

  job extract = etl.extract(day=params.day, note=f"day {params.day} \\"quoted\\"") {
    timeout 200ms
    retry db_flaky
  }
  job load = etl.load(rows=extract.out, ratio=0.5) for part in extract.out {
    after extract.succeeded and not any_failed(extract)
    when run.date >= 2026-01-01T09:30:00+01:00
  }

  output rows = load.out
}
"""


# ---- a small TextMate engine ---------------------------------------------------------------------


@dataclass
class Frame:
    rule: dict[str, Any]
    scopes: list[str]  # the scopes of the rule's begin and end
    inner: list[str]  # the scopes of its content (with contentName)
    end: re.Pattern[str] | None


class Engine:
    def __init__(self, grammar: dict[str, Any]) -> None:
        self.grammar = grammar
        self.compiled: dict[str, re.Pattern[str]] = {}

    def regex(self, pattern: str) -> re.Pattern[str]:
        if pattern not in self.compiled:
            self.compiled[pattern] = re.compile(pattern)
        return self.compiled[pattern]

    def flatten(self, patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule in patterns:
            if "include" in rule:
                name = rule["include"]
                target = self.grammar if name == "$self" else self.grammar["repository"][name.lstrip("#")]
                out += (
                    self.flatten([target])
                    if "match" in target or "begin" in target
                    else self.flatten(target["patterns"])
                )
            elif "match" in rule or "begin" in rule:
                out.append(rule)
            else:
                out += self.flatten(rule.get("patterns", []))
        return out

    def tokenize(self, text: str) -> list[list[tuple[str, ...]]]:
        """The scopes of every character of every line."""
        root = self.grammar["scopeName"]
        stack = [Frame(self.grammar, [root], [root], None)]
        result = []
        for line in text.split("\n"):
            scopes: list[tuple[str, ...]] = [()] * len(line)
            pos = 0
            while True:
                frame = stack[-1]
                best: tuple[int, int, dict[str, Any] | None, re.Match[str]] | None = None
                if frame.end is not None:
                    m = frame.end.search(line, pos)
                    if m:
                        best = (m.start(), -1, None, m)
                for order, rule in enumerate(self.flatten(frame.rule.get("patterns", []))):
                    m = self.regex(rule.get("match") or rule["begin"]).search(line, pos)
                    if m and (best is None or m.start() < best[0]):
                        best = (m.start(), order, rule, m)
                if best is None:
                    self.paint(scopes, pos, len(line), frame.inner)
                    break
                start, _, rule, m = best
                self.paint(scopes, pos, start, frame.inner)
                if rule is None:  # the frame's end
                    self.paint(scopes, m.start(), m.end(), frame.scopes)
                    self.captures(
                        scopes, m, frame.rule.get("endCaptures") or frame.rule.get("captures"), frame.scopes
                    )
                    stack.pop()
                elif "match" in rule:
                    own = frame.inner + ([rule["name"]] if "name" in rule else [])
                    self.paint(scopes, m.start(), m.end(), own)
                    self.captures(scopes, m, rule.get("captures"), own)
                else:
                    own = frame.inner + ([rule["name"]] if "name" in rule else [])
                    self.paint(scopes, m.start(), m.end(), own)
                    self.captures(scopes, m, rule.get("beginCaptures") or rule.get("captures"), own)
                    inner = own + ([rule["contentName"]] if "contentName" in rule else [])
                    stack.append(Frame(rule, own, inner, self.regex(rule["end"])))
                if m.end() == pos and (rule is None or "match" in rule) and pos >= len(line):
                    if rule is None and stack:
                        continue  # an end at the end of the line: the outer rule carries on
                    break
                pos = max(m.end(), pos + (1 if m.end() == pos and rule is not None else 0))
            result.append(scopes)
        return result

    @staticmethod
    def paint(scopes: list[tuple[str, ...]], start: int, end: int, names: list[str]) -> None:
        for i in range(start, min(end, len(scopes))):
            scopes[i] = tuple(names)

    def captures(
        self,
        scopes: list[tuple[str, ...]],
        m: re.Match[str],
        captures: dict[str, Any] | None,
        base: list[str],
    ) -> None:
        for group, capture in sorted((captures or {}).items(), key=lambda kv: int(kv[0])):
            if "name" in capture and m.start(int(group)) >= 0:
                self.paint(scopes, m.start(int(group)), m.end(int(group)), [*base, capture["name"]])


# ---- the tests -----------------------------------------------------------------------------------


def grammar() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GRAMMAR.read_text(encoding="utf-8"))
    return data


def where(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """Line and column (0-based) of the `nth` `needle` in `text`, as a whole word when it is one."""
    before = r"(?<![A-Za-z0-9_])" if re.match(r"\w", needle) else ""
    after = r"(?![A-Za-z0-9_])" if re.search(r"\w$", needle) else ""
    found = [m.start() for m in re.finditer(before + re.escape(needle) + after, text)][nth]
    return text.count("\n", 0, found), found - (text.rfind("\n", 0, found) + 1)


def scopes_of(
    tokens: list[list[tuple[str, ...]]], text: str, needle: str, nth: int = 0
) -> list[tuple[str, ...]]:
    """The scopes of each character of the `nth` `needle` in the sample."""
    line, column = where(text, needle, nth)
    return tokens[line][column : column + len(needle)]


def assert_scope(tokens: list[list[tuple[str, ...]]], text: str, needle: str, nth: int, scope: str) -> None:
    """Every character of the text has `scope`, innermost on some (captures nest one scope more, like the
    `#` of a comment or the quotes of a string)."""
    found = scopes_of(tokens, text, needle, nth)
    assert all(scope in s and s[0] == "source.tqflow" for s in found), (needle, found)
    assert any(s[-1] == scope for s in found), (needle, found)


EXPECTED = [
    # (text in the sample, nth occurrence, the innermost scope)
    ("# Nightly orders. # not a second comment", 0, "comment.line.number-sign.tqflow"),
    ("use", 0, "keyword.control.import.tqflow"),
    ("etl.tasks", 0, "entity.name.namespace.tqflow"),
    ("as", 0, "keyword.control.import.tqflow"),
    ('"shared.tqflow"', 0, "string.quoted.double.tqflow"),
    ("db_flaky", 0, "entity.name.type.policy.tqflow"),
    ("exponential", 0, "entity.name.function.call.tqflow"),
    ("1s", 0, "constant.numeric.duration.tqflow"),
    ("5m", 0, "constant.numeric.duration.tqflow"),
    ("10%", 0, "constant.numeric.percent.tqflow"),
    ("factor", 0, "variable.parameter.argument.tqflow"),
    ("flow", 0, "keyword.declaration.flow.tqflow"),
    ("nightly", 0, "entity.name.type.flow.tqflow"),
    ("queue", 0, "keyword.other.tqflow"),
    ("day", 0, "variable.parameter.flow.tqflow"),
    ("Date", 0, "support.type.tqflow"),
    ("2026-01-31", 0, "constant.other.date.tqflow"),
    ("100", 0, "constant.numeric.integer.tqflow"),
    ("schedule", 0, "keyword.other.tqflow"),
    ("cron", 0, "keyword.other.tqflow"),
    ('"30 2 * * *"', 0, "string.quoted.double.tqflow"),
    ("tz", 0, "keyword.other.tqflow"),
    ("6h", 0, "constant.numeric.duration.tqflow"),
    ("job", 0, "keyword.declaration.job.tqflow"),
    ("extract", 0, "entity.name.function.job.tqflow"),
    ("params", 0, "keyword.other.tqflow"),  # the block
    ("params", 1, "variable.language.tqflow"),  # `params.day`
    ("200ms", 0, "constant.numeric.duration.tqflow"),
    ("timeout", 0, "keyword.other.tqflow"),
    ("after", 0, "keyword.other.tqflow"),
    ("and", 0, "keyword.operator.logical.tqflow"),
    ("any_failed", 0, "support.function.builtin.tqflow"),
    ("0.5", 0, "constant.numeric.float.tqflow"),
    ("2026-01-01T09:30:00+01:00", 0, "constant.other.datetime.tqflow"),
    (">=", 0, "keyword.operator.comparison.tqflow"),
    ("output", 0, "keyword.declaration.output.tqflow"),
    ("rows", 1, "variable.other.output.tqflow"),
]


def test_grammar_is_valid_json_with_compilable_patterns() -> None:
    data = grammar()
    assert data["scopeName"] == "source.tqflow" and data["fileTypes"] == ["tqflow"]
    engine = Engine(data)
    rules = engine.flatten(data["patterns"])
    for rule in data["repository"].values():
        rules += engine.flatten([rule] if "match" in rule or "begin" in rule else rule.get("patterns", []))
    for rule in rules:
        for key in ("match", "begin", "end"):
            if key in rule:
                re.compile(rule[key])
    vscode_copy = ROOT / "editors" / "vscode" / "syntaxes" / "tqflow.tmLanguage.json"
    assert vscode_copy.read_text(encoding="utf-8") == GRAMMAR.read_text(encoding="utf-8")


@pytest.mark.parametrize(("needle", "nth", "scope"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_sample_is_coloured_right(needle: str, nth: int, scope: str) -> None:
    assert_scope(Engine(grammar()).tokenize(SAMPLE), SAMPLE, needle, nth, scope)


def test_strings_and_interpolations() -> None:
    tokens = Engine(grammar()).tokenize(SAMPLE)
    assert_scope(tokens, SAMPLE, 'f"day ', 0, "string.interpolated.tqflow")
    inside = scopes_of(tokens, SAMPLE, "params", 2)  # `params` inside `{params.day}`
    assert all("meta.embedded.expression.tqflow" in s and s[-1] == "variable.language.tqflow" for s in inside)
    assert_scope(tokens, SAMPLE, '\\"', 0, "constant.character.escape.tqflow")
    assert_scope(tokens, SAMPLE, '"etl"', 0, "string.quoted.double.tqflow")
    assert_scope(tokens, SAMPLE, "2 * * *", 0, "string.quoted.double.tqflow")  # `*` in a string: no operator


TOKENIZE_JS = r"""
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");
const [grammarPath, samplePath] = process.argv.slice(2);
const onig = path.join(path.dirname(require.resolve("vscode-oniguruma")), "onig.wasm");
const wasm = fs.readFileSync(onig).buffer;
oniguruma.loadWASM(wasm).then(async () => {
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (p) => new oniguruma.OnigScanner(p),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  const grammar = await registry.loadGrammar("source.tqflow");
  let stack = vsctm.INITIAL;
  const out = [];
  for (const line of fs.readFileSync(samplePath, "utf8").split("\n")) {
    const result = grammar.tokenizeLine(line, stack);
    const scopes = [];
    for (const t of result.tokens)
      for (let i = t.startIndex; i < Math.min(t.endIndex, line.length); i++) scopes.push(t.scopes);
    out.push(scopes);
    stack = result.ruleStack;
  }
  console.log(JSON.stringify(out));
});
"""


def _vscode_textmate() -> Path | None:
    """A folder holding node_modules/vscode-textmate and vscode-oniguruma (installed by npm if need be)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    if not (NODE_CACHE / "node_modules" / "vscode-oniguruma").is_dir():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_CACHE),
                "vscode-textmate@9",
                "vscode-oniguruma@2",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            return None
    return NODE_CACHE


def test_vscode_textmate_tokenizes_the_sample_like_the_engine(tmp_path: Path) -> None:
    """VS Code's tokenizer and the engine above agree on every character of the sample."""
    folder = _vscode_textmate()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm (with the npm registry) are needed for vscode-textmate in CI")
        pytest.skip("node/npm or the npm registry is not available for vscode-textmate")
    script = folder / "tokenize.js"
    script.write_text(TOKENIZE_JS, encoding="utf-8")
    sample = tmp_path / "sample.tqflow"
    sample.write_text(SAMPLE, encoding="utf-8")
    done = subprocess.run(
        ["node", str(script), str(GRAMMAR), str(sample)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    real = [[tuple(s) for s in line] for line in json.loads(done.stdout)]
    ours = Engine(grammar()).tokenize(SAMPLE)
    lines = SAMPLE.split("\n")
    for number, (theirs, mine) in enumerate(zip(real, ours, strict=True)):
        for column, (a, b) in enumerate(zip(theirs, mine, strict=True)):
            assert a == b, (
                f"line {number + 1} column {column + 1} ({lines[number][column : column + 12]!r}): {a} != {b}"
            )
    for needle, nth, scope in EXPECTED:  # and so the expectations hold under VS Code's tokenizer too
        assert_scope(real, SAMPLE, needle, nth, scope)


def test_vim_syntax_file_colours_the_sample(tmp_path: Path) -> None:
    """editors/neovim/syntax/tqflow.vim (Neovim reads no TextMate grammar), checked with Vim itself."""
    vim = shutil.which("vim")
    if vim is None:
        if os.environ.get("CI"):
            pytest.fail("vim is needed to check the Vim syntax file in CI")
        pytest.skip("vim is not installed")
    sample = tmp_path / "sample.tqflow"
    sample.write_text(SAMPLE, encoding="utf-8")
    checks = {
        ("use", 0): "tqflowDeclaration",
        ("schedule", 0): "tqflowKeyword",
        ('"30 2 * * *"', 0): "tqflowString",
        ("6h", 0): "tqflowDuration",
        ("200ms", 0): "tqflowDuration",
        ("2026-01-31", 0): "tqflowDate",
        ("2026-01-01T09:30:00+01:00", 0): "tqflowDateTime",
        ("0.5", 0): "tqflowNumber",
        ("# Nightly", 0): "tqflowComment",
        ("and", 0): "tqflowOperator",
        ("any_failed", 0): "tqflowBuiltin",
    }
    positions = [where(SAMPLE, needle, nth) for needle, nth in checks]
    probe = " | ".join(
        f'echo synIDattr(synID({line + 1},{column + 1},1),"name")' for line, column in positions
    )
    out = tmp_path / "names.txt"
    done = subprocess.run(
        [
            vim,
            *("-N", "-u", "NONE", "-i", "NONE", "-es"),
            *("-c", f"set rtp^={ROOT / 'editors' / 'neovim'}", "-c", "syntax on", "-c", "set ft=tqflow"),
            *("-c", f"redir! > {out}", "-c", probe, "-c", "redir END", "-c", "qa!"),
            str(sample),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    names = out.read_text().split()
    assert names == list(checks.values())


def test_vscode_extension_is_consistent() -> None:
    """The extension's manifest names the grammar and language it ships, and its script is valid JS."""
    folder = ROOT / "editors" / "vscode"
    manifest = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    (language,) = manifest["contributes"]["languages"]
    (grammar_entry,) = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".tqflow"] and grammar_entry["language"] == language["id"] == "tqflow"
    assert grammar_entry["scopeName"] == grammar()["scopeName"]
    assert (folder / grammar_entry["path"]).is_file() and (folder / language["configuration"]).is_file()
    json.loads((folder / language["configuration"]).read_text(encoding="utf-8"))
    if shutil.which("node"):
        done = subprocess.run(
            ["node", "--check", str(folder / manifest["main"])], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
