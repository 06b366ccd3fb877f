"""The job order of a plan (compiler/graph.py's own Kahn's algorithm) is the one networkx's
`lexicographical_topological_sort` gives with the declaration order as key, on random graphs; a graph
with a cycle has no order (and check_cycles then reports it through networkx)."""

from __future__ import annotations

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from tqflow.compiler.graph import stable_order


@st.composite
def job_graphs(draw: st.DrawFn) -> tuple[dict[str, set[str]], list[str]]:
    names = [f"j{i}" for i in range(draw(st.integers(1, 25)))]
    rank = draw(st.permutations(names))  # a hidden order every edge follows, unless a cycle is wanted
    cyclic = draw(st.booleans())
    waits_for: dict[str, set[str]] = {n: set() for n in names}
    for _ in range(draw(st.integers(0, 60))):
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        if cyclic or rank.index(a) < rank.index(b):
            waits_for[b].add(a)
        if draw(st.integers(0, 9)) == 0:
            waits_for[b].add("not_a_job")  # reads of unknown names are ignored, as in the compiler
    return waits_for, names


@settings(max_examples=200, deadline=None)
@given(job_graphs())
def test_the_order_is_networkx_lexicographical_topological_sort(
    graph: tuple[dict[str, set[str]], list[str]],
) -> None:
    waits_for, declared = graph
    reference = nx.DiGraph()
    reference.add_nodes_from(waits_for)
    reference.add_edges_from(
        (u, job) for job, upstream in waits_for.items() for u in upstream if u in waits_for
    )
    position = {n: i for i, n in enumerate(declared)}
    order = stable_order(waits_for, declared)
    if nx.is_directed_acyclic_graph(reference):
        assert order == list(nx.lexicographical_topological_sort(reference, key=position.__getitem__))
    else:
        assert order is None
