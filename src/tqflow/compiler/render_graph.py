"""A flow's job graph as Mermaid or Graphviz DOT text (for `tqc graph`).

Data edges (a job reads another's `.out`) are solid; `after` edges are dashed and labelled with
the status they wait for (succeeded, failed, done, skipped). Fan-out jobs have a stacked shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tqflow.plan import FlowPlan


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "data" | "after"
    label: str  # "" for data, the status for after


def edges(flow: FlowPlan) -> list[Edge]:
    result: list[Edge] = []
    for name in flow.order:
        job = flow.jobs[name]
        result.extend(Edge(dep, name, "data", "") for dep in job.data_deps)
        seen = {(dep, "succeeded") for dep in job.data_deps}  # already drawn as data edges
        for upstream, status in _statuses(job.after) if job.after else ():
            if (upstream, status) not in seen:
                seen.add((upstream, status))
                result.append(Edge(upstream, name, "after", status))
    return result


def _statuses(tree: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    ((kind, value),) = tree.items()
    if kind == "status":
        yield str(value[0]), str(value[1])
    elif kind == "not":
        for job, status in _statuses(value):
            yield job, f"not {status}"
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield from _statuses(item)


def mermaid(flow: FlowPlan) -> str:
    lines = ["flowchart TD", f"  %% flow {flow.name}: solid = data, dashed = after (status)"]
    for name in flow.order:
        job = flow.jobs[name]
        label = f"{name}<br/><small>{job.task.function}{' for each' if job.fan_out else ''}</small>"
        shape = ("[[", "]]") if job.fan_out else ("[", "]")
        lines.append(f'  {_id(name)}{shape[0]}"{label}"{shape[1]}')
    for edge in edges(flow):
        if edge.kind == "data":
            lines.append(f"  {_id(edge.source)} --> {_id(edge.target)}")
        else:
            lines.append(f"  {_id(edge.source)} -. {edge.label} .-> {_id(edge.target)}")
    return "\n".join(lines) + "\n"


def dot(flow: FlowPlan) -> str:
    lines = [
        f"digraph {json.dumps(flow.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for name in flow.order:
        job = flow.jobs[name]
        shape = ", shape=box3d" if job.fan_out else ""
        label = f"{name}\\n{job.task.function}{' (for each)' if job.fan_out else ''}"
        lines.append(f'  {json.dumps(name)} [label="{label}"{shape}];')
    for edge in edges(flow):
        attrs = "" if edge.kind == "data" else f' [style=dashed, label="{edge.label}"]'
        lines.append(f"  {json.dumps(edge.source)} -> {json.dumps(edge.target)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _id(name: str) -> str:
    return f"job_{name}"
