"""Tables and a chart from the harness's raw JSONL: medians (min-max) per library, and tqflow's ratio
against the best peer of the same run for each target (issue 12's targets), and the machine's load and CPU
steal beside them: a run with a measurement that started on a busy machine says so at the top, and each
cell holding such a measurement is marked with a dagger.

Usage: python bench/report.py bench/results/raw-<stamp>.jsonl   (writes table-<stamp>.md, chart-<stamp>.png)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Metric:
    kind: str  # the raw record kind
    field: str
    label: str
    unit: str
    higher_is_better: bool
    target: str  # as the issue states it
    goal: float  # the ratio (tqflow against the best peer, >1 = tqflow better) that meets the target
    absolute: float | None = None  # a target on tqflow's own value instead of a ratio
    by_magnitude: bool = False  # lateness: early (negative) is as wrong as late


METRICS = [
    Metric("enqueue", "rate", "one-by-one enqueue", "jobs/s", True, ">= 1.5x", 1.5),
    Metric("bulk", "rate", "bulk enqueue", "jobs/s", True, ">= 10x", 10.0),
    Metric("drain", "rate", "drain, 2 worker processes", "jobs/s", True, ">= 2x", 2.0),
    Metric("latency", "p50", "latency p50", "ms", False, "no worse", 1.0),
    Metric("latency", "p99", "latency p99", "ms", False, "no worse", 1.0),
    Metric("dag", "secs", "1 -> 1,000 -> 1 flow", "s", False, "<= a third of the time", 3.0),
    Metric("delayed", "p50", "delayed lateness p50", "ms", False, "-", 0.0, by_magnitude=True),
    Metric(
        "delayed", "p99", "delayed lateness p99", "ms", False, "<= 5 ms", 0.0, absolute=5.0, by_magnitude=True
    ),
    Metric("memory", "bytes_per_job", "Redis memory per queued job", "bytes", False, "<= leanest", 1.0),
]
FLOOR_GOAL = 0.7  # one-by-one enqueue >= 0.7x bench/floors.py's sync round trip, measured in the same run
DAGGER = "\u2020"


@dataclass
class MachineLog:
    """The `machine` figures of every measurement (harness.Machine), by library and record kind."""

    records: list[dict[str, Any]]

    def busy_kinds(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for rec in self.records:
            if rec["machine"].get("busy"):
                out[rec["lib"]].add(rec["kind"])
        return out

    def summary(self, settings: dict[str, Any]) -> list[str]:
        if not self.records:
            return ["Machine: not recorded (a raw file from before the harness recorded the load)."]
        ms = [r["machine"] for r in self.records]
        busy = [r for r in self.records if r["machine"].get("busy")]
        others = [max(m.get("others_before_pct", 0.0), m.get("others_pct", 0.0)) for m in ms]
        steal = [max(m["steal_before_pct"], m["steal_pct"]) for m in ms]
        start = settings.get("loadavg_at_start") or [float("nan")] * 3
        busy_load = settings.get("busy_load", 0.5)
        at_start = settings.get("busy_at_start", False)
        limits = (
            f"other processes used > {settings.get('busy_cpu', 10.0):g} % of the machine's CPU in the 5 s "
            f"before it or during it, or CPU steal > {settings.get('busy_steal', 5.0):g} %"
        )
        start_note = (
            f"the 1-minute load average was {start[0]:.2f} when the run began "
            f"({'above' if at_start else 'at or below'} {busy_load:g})"
        )
        if busy or at_start:
            head = (
                f"**BUSY RUN: {start_note}; {len(busy)} of {len(ms)} measurements were taken on a busy "
                f"machine** ({limits}); cells holding one are marked {DAGGER}. These are not quiet figures."
            )
        else:
            head = f"Quiet run: {start_note}, and none of the {len(ms)} measurements was busy ({limits})."
        head += (
            f" Others' CPU around a measurement: median {median(others):.0f} %, max {max(others):.0f} %; "
            f"CPU steal: max {max(steal):.1f} %; 1-minute load average before a measurement (the "
            f"benchmark's own load included): median {median([m['load1_before'] for m in ms]):.2f}."
        )
        return [head]

    def table(self) -> list[str]:
        rows = [
            "| library | measurement | runs | busy | others' CPU % before / during, median (max) "
            "| load1 before, median (max) | load1 max during | steal % max |",
            "|---|---|---|---|---|---|---|---|",
        ]
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for rec in self.records:
            groups[(rec["lib"], rec["kind"])].append(rec["machine"])
        for (lib, kind), ms in sorted(groups.items(), key=lambda kv: (kv[0][0] != "tqflow", kv[0])):
            before = [m["load1_before"] for m in ms]
            ob = [m.get("others_before_pct", 0.0) for m in ms]
            od = [m.get("others_pct", 0.0) for m in ms]
            rows.append(
                f"| {lib} | {kind} | {len(ms)} | {sum(1 for m in ms if m.get('busy'))} "
                f"| {median(ob):.0f} ({max(ob):.0f}) / {median(od):.0f} ({max(od):.0f}) "
                f"| {median(before):.2f} ({max(before):.2f}) | {max(m['load1_max'] for m in ms):.2f} "
                f"| {max(max(m['steal_before_pct'], m['steal_pct']) for m in ms):.1f} |"
            )
        return rows


def load(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]], dict[str, Any]]:
    """(settings, values[lib][kind.field or scale key] -> one value per run, meta[lib])."""
    settings, values, meta, _ = load_all(path)
    return settings, values, meta


def load_all(
    path: Path,
) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]], dict[str, Any], MachineLog]:
    """load(), and the machine figures of every measurement; settings["secs"] is the run's wall time."""
    settings: dict[str, Any] = {}
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    meta: dict[str, Any] = {}
    machine = MachineLog([])
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        kind = rec.get("kind")
        if isinstance(rec.get("machine"), dict):
            machine.records.append(rec)
        if kind == "settings":
            settings = {**rec, **settings}
        elif kind == "end":
            settings["secs"] = rec["secs"]
        elif kind == "meta":
            meta[rec["lib"]] = rec
        elif kind == "scale_drain":
            values[rec["lib"]][f"scale_drain.{rec['procs']}"].append(rec["rate"])
        elif kind == "scale_enqueue":
            values[rec["lib"]][f"scale_enqueue.{rec['producers']}"].append(rec["rate"])
        elif kind not in ("error", None):
            for key, value in rec.items():
                if isinstance(value, int | float) and key not in (
                    "run",
                    "ts",
                    "n",
                    "procs",
                    "count",
                    "children",
                ):
                    values[rec["lib"]][f"{kind}.{key}"].append(float(value))
    return settings, values, meta, machine


def floor_ratios(path: Path) -> list[tuple[int, float, float]]:
    """(run, tqflow's one-by-one enqueue rate, the sync round-trip floor's rate) of each run with both."""
    enqueue: dict[int, float] = {}
    floor: dict[int, float] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("lib") == "tqflow" and rec.get("kind") in ("enqueue", "floor"):
            (enqueue if rec["kind"] == "enqueue" else floor)[int(rec["run"])] = float(rec["rate"])
    return [(run, enqueue[run], floor[run]) for run in sorted(enqueue) if run in floor]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(xs: list[float] | None) -> str:
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt(xs[0])
    return f"{fmt(median(xs))} ({fmt(min(xs))}-{fmt(max(xs))})"


def best_peer(values: dict[str, dict[str, list[float]]], m: Metric) -> tuple[str, float] | None:
    key = f"{m.kind}.{m.field}"
    peers = [(lib, median(v[key])) for lib, v in values.items() if lib != "tqflow" and v.get(key)]
    if not peers:
        return None
    if m.by_magnitude:
        return min(peers, key=lambda p: abs(p[1]))
    return (max if m.higher_is_better else min)(peers, key=lambda p: p[1])


def ratio(m: Metric, ours: float, best: float) -> float:
    """>1 means tqflow is better (faster, sooner, leaner)."""
    if m.higher_is_better:
        return ours / best if best else float("inf")
    if m.by_magnitude:
        best, ours = abs(best), abs(ours)
    return best / ours if ours else float("inf")


def targets_table(
    values: dict[str, dict[str, list[float]]],
    floors: list[tuple[int, float, float]] | None = None,
    busy: dict[str, set[str]] | None = None,
) -> list[str]:
    busy = busy or {}
    rows = [
        "| metric | tqflow | best peer | tqflow vs best peer | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        key = f"{m.kind}.{m.field}"
        ours = values.get("tqflow", {}).get(key)
        best = best_peer(values, m)
        if not ours:
            rows.append(f"| {m.label} ({m.unit}) | n/a | - | - | {m.target} | - |")
            continue
        mine = median(ours)
        peer = f"{fmt(best[1])} ({best[0]})" if best else "n/a"
        if best and m.kind in busy.get(best[0], ()):
            peer += DAGGER
        r = ratio(m, mine, best[1]) if best else float("nan")
        shown = f"{r:.2f}x" if best else "-"
        if m.absolute is not None:
            met = mine <= m.absolute
        elif m.goal:
            met = r >= m.goal
        else:
            met = None
        mark = (
            "-"
            if met is None
            else ("yes" if met else f"**no** (needs {m.goal:g}x)" if m.absolute is None else "**no**")
        )
        mine_cell = cell(ours) + (DAGGER if m.kind in busy.get("tqflow", ()) else "")
        rows.append(f"| {m.label} ({m.unit}) | {mine_cell} | {peer} | {shown} | {m.target} | {mark} |")
        if m.kind == "enqueue" and floors:
            rows.append(
                floor_row(floors, "floor" in busy.get("tqflow", ()) or "enqueue" in busy.get("tqflow", ()))
            )
    return rows


def floor_row(floors: list[tuple[int, float, float]], was_busy: bool) -> str:
    """tqflow's one-by-one enqueue against bench/floors.py's sync round trip of the same run (median of
    the per-run ratios)."""
    ratios = [ours / floor for _, ours, floor in floors]
    r = median(ratios)
    mark = DAGGER if was_busy else ""
    floor_cell = cell([f for _, _, f in floors]) + mark
    ours_cell = cell([o for _, o, _ in floors]) + mark
    met = "yes" if r >= FLOOR_GOAL else f"**no** (needs {FLOOR_GOAL:g}x)"
    return (
        f"| one-by-one enqueue against the sync round trip (jobs/s) | {ours_cell} "
        f"| floor {floor_cell} (floors.py) | {r:.2f}x | >= {FLOOR_GOAL:g}x of the floor | {met} |"
    )


def main_table(
    values: dict[str, dict[str, list[float]]], meta: dict[str, Any], busy: dict[str, set[str]] | None = None
) -> list[str]:
    busy = busy or {}
    head = "| library | version | " + " | ".join(f"{m.label} ({m.unit})" for m in METRICS) + " |"
    rows = [head, "|" + "---|" * (len(METRICS) + 2)]
    for lib in sorted(values, key=lambda lib: (lib != "tqflow", lib)):
        cells = [
            cell(values[lib].get(f"{m.kind}.{m.field}")) + (DAGGER if m.kind in busy.get(lib, ()) else "")
            for m in METRICS
        ]
        version = meta.get(lib, {}).get("version", "?")
        name = f"**{lib}**" if lib == "tqflow" else lib
        rows.append(f"| {name} | {version} | " + " | ".join(cells) + " |")
    return rows


def scaling_table(
    values: dict[str, dict[str, list[float]]], busy: dict[str, set[str]] | None = None
) -> list[str]:
    busy = busy or {}
    libs = [lib for lib in values if any(k.startswith("scale_") for k in values[lib])]
    if not libs:
        return []
    rows = [
        "| library | drain 1 proc | drain 2 procs | drain 4 procs "
        "| enqueue 1 producer | 2 producers | 4 producers |",
        "|---|---|---|---|---|---|---|",
    ]
    for lib in sorted(libs, key=lambda lib: (lib != "tqflow", lib)):
        drain = DAGGER if "scale_drain" in busy.get(lib, ()) else ""
        enqueue = DAGGER if "scale_enqueue" in busy.get(lib, ()) else ""
        cells = [cell(values[lib].get(f"scale_drain.{p}")) + drain for p in (1, 2, 4)]
        cells += [cell(values[lib].get(f"scale_enqueue.{p}")) + enqueue for p in (1, 2, 4)]
        rows.append(f"| {lib} | " + " | ".join(cells) + " |")
    return rows


def chart(values: dict[str, dict[str, list[float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 4, figsize=(20, 13))
    libs = sorted(values, key=lambda lib: (lib != "tqflow", lib))
    for ax, m in zip(axes.flat, METRICS, strict=False):
        key = f"{m.kind}.{m.field}"
        shown = [lib for lib in libs if values[lib].get(key)]
        meds = [median(values[lib][key]) for lib in shown]
        lows = [med - min(values[lib][key]) for lib, med in zip(shown, meds, strict=True)]
        highs = [max(values[lib][key]) - med for lib, med in zip(shown, meds, strict=True)]
        colors = ["#d62728" if lib == "tqflow" else "#7f7f7f" for lib in shown]
        ax.barh(shown, meds, xerr=[lows, highs], color=colors, capsize=3)
        ax.invert_yaxis()
        ax.set_title(
            f"{m.label} ({m.unit}, {'higher' if m.higher_is_better else 'lower'} is better)", fontsize=10
        )
        if meds and max(meds) / max(min(meds), 1e-9) > 50:
            ax.set_xscale("log")
        for y, v in enumerate(meds):
            ax.text(v, y, " " + fmt(v), va="center", fontsize=8)
    for ax, (prefix, label, counts) in zip(
        axes.flat[len(METRICS) :],
        [
            ("scale_drain", "drain jobs/s by worker processes", (1, 2, 4)),
            ("scale_enqueue", "enqueue jobs/s by producers", (1, 2, 4)),
        ],
        strict=False,
    ):
        for lib in libs:
            pts = [
                (c, median(values[lib][f"{prefix}.{c}"])) for c in counts if values[lib].get(f"{prefix}.{c}")
            ]
            if pts:
                ax.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker="o",
                    label=lib,
                    color="#d62728" if lib == "tqflow" else None,
                    linewidth=2.5 if lib == "tqflow" else 1,
                )
        ax.set_xticks(counts)
        ax.set_title(label, fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in axes.flat[len(METRICS) + 2 :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def report(raw: Path) -> str:
    settings, values, meta, machine = load_all(raw)
    busy = machine.busy_kinds()
    stem = raw.stem.replace("raw-", "")
    took = f" The run took {settings['secs'] / 60:.1f} min." if "secs" in settings else ""
    lines = [
        f"# Benchmark {stem}",
        "",
        *machine.summary(settings),
        "",
        f"Settings: runs={settings.get('runs')}, n={settings.get('n')}, latency jobs={settings.get('lat')}, "
        f"fan-out children={settings.get('dag')}, delayed jobs={settings.get('delayed')} "
        f"(delays {settings.get('delay_lo')}-{settings.get('delay_hi')} s), "
        f"scaling n={settings.get('scale_n')}. Cells: median (min-max) over runs.{took}",
        "",
        "## tqflow against the best peer of this run",
        "",
        *targets_table(values, floor_ratios(raw), busy),
        "",
        "## Every library",
        "",
        *main_table(values, meta, busy),
        "",
    ]
    scaling = scaling_table(values, busy)
    if scaling:
        lines += ["## Scaling (jobs/s)", "", *scaling, ""]
    if machine.records:
        lines += ["## The machine during the measurements", "", *machine.table(), ""]
    lines += ["## Worker processes (2-process configuration)", ""]
    lines += [f"- {lib}: {m.get('workers')}" for lib, m in sorted(meta.items())]
    text = "\n".join(lines) + "\n"
    raw.with_name(f"table-{stem}.md").write_text(text)
    try:
        loaded = "BUSY RUN, not quiet figures; " if busy or settings.get("busy_at_start") else ""
        chart(values, raw.with_name(f"chart-{stem}.png"), f"tqflow vs peers ({stem}; {loaded}red = tqflow)")
    except ImportError:
        print("matplotlib is missing: no chart", file=sys.stderr)
    return text


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(report(Path(arg)))
