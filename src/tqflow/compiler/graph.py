"""Pass helper: the job graph of a flow, its cycles and a topological order.

The order is Kahn's algorithm with the declaration order breaking ties (what networkx's
`lexicographical_topological_sort` gives, in a tenth of the time); networkx is imported only when
that order cannot take every job, to report the cycles (importing it cost `tqc check` 0.25 s).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from tqflow.compiler.context import Context
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Label
from tqflow.errors import PlanValueError

if TYPE_CHECKING:
    import networkx as nx


def job_graph(waits_for: dict[str, set[str]]) -> nx.DiGraph:
    """Nodes in declaration order, edges sorted: networkx then walks it the same way under any hash
    seed (a set's order changes with PYTHONHASHSEED, and with it the cycle path reported)."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(waits_for)
    for job, upstream in waits_for.items():
        graph.add_edges_from((u, job) for u in sorted(upstream) if u in waits_for)
    return graph


def check_cycles(ctx: Context, flow: ast.Flow, waits_for: dict[str, set[str]]) -> bool:
    """Report every cycle once (one per strongly connected component); True when there are none."""
    if stable_order(waits_for, list(waits_for)) is not None:
        return True  # every job could be ordered: no cycle
    import networkx as nx

    graph = job_graph(waits_for)
    jobs = {j.name: j for j in flow.jobs}
    ok = True
    order = {name: i for i, name in enumerate(waits_for)}
    components = sorted(nx.strongly_connected_components(graph), key=lambda c: min(order[n] for n in c))
    for component in components:
        if len(component) == 1 and not graph.has_edge(*(2 * tuple(component))):
            continue
        ok = False
        first_declared = min(component, key=order.__getitem__)
        cycle = [u for u, _ in nx.find_cycle(graph.subgraph(component), source=first_declared)]
        start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
        cycle = cycle[start:] + cycle[:start]  # from the cycle's first declared job
        path = " -> ".join([*cycle, cycle[0]])
        first = jobs[cycle[0]]
        labels = tuple(
            Label(ctx.dep_spans.get((flow.name, v, u), jobs[v].span), f"`{v}` waits for `{u}` here")
            for u, v in zip(cycle, [*cycle[1:], cycle[0]], strict=True)
        )
        ctx.error(
            "TQ0401",
            f"dependency cycle in flow `{flow.name}`: {path}",
            first.name_span,
            label="this job is part of the cycle",
            labels=labels,
            help="remove one of the edges shown; a job cannot wait for itself",
        )
    return ok


def topological_order(waits_for: dict[str, set[str]], declared: list[str]) -> list[str]:
    """A topological order that keeps declaration order where the graph allows (stable output)."""
    order = stable_order(waits_for, declared)
    if order is None:
        raise PlanValueError(
            f"the job graph of {sorted(waits_for)} has a cycle"
        )  # check_cycles reported it first
    return order


def stable_order(waits_for: dict[str, set[str]], declared: list[str]) -> list[str] | None:
    """The jobs of `waits_for` (job -> the jobs it waits for; others are ignored) in a topological
    order, the earliest declared first among those ready; None when a cycle leaves jobs out."""
    position = {name: i for i, name in enumerate(declared)}
    waiting = dict.fromkeys(waits_for, 0)
    dependents: dict[str, list[str]] = {name: [] for name in waits_for}
    for job, upstream in waits_for.items():
        for name in upstream:
            if name in waiting:
                waiting[job] += 1
                dependents[name].append(job)
    ready = [(position[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _position, name = heapq.heappop(ready)
        order.append(name)
        for job in dependents[name]:
            waiting[job] -= 1
            if waiting[job] == 0:
                heapq.heappush(ready, (position[job], job))
    return order if len(order) == len(waiting) else None
