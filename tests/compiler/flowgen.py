"""Hypothesis strategies that build random `.tqflow` syntax trees (as the parser would build them)."""

from __future__ import annotations

from hypothesis import strategies as st

from tqflow.dsl import ast
from tqflow.dsl.fast_lexer import grammar_keywords
from tqflow.dsl.formatter import duration

# Names are never keywords: the grammar's own list (dsl/fast_lexer.py reads it from tqflow.lark).
KEYWORDS = frozenset(grammar_keywords())

names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda n: n not in KEYWORDS)
text = st.text(alphabet=st.sampled_from(list('ab z"\\\n\t{}#é€')), max_size=8)


def lit(kind: str, value: object, text_: str = "") -> ast.Literal:
    return ast.Literal(kind=kind, value=value, text=text_)


durations = st.integers(1, 10_000).flatmap(
    lambda n: st.sampled_from([("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]).map(
        lambda unit: lit("duration", n * unit[1], f"{n}{unit[0]}")
    )
)
floats = st.tuples(st.integers(0, 999), st.integers(0, 99)).map(
    lambda p: lit("float", float(f"{p[0]}.{p[1]}"), f"{p[0]}.{p[1]}")
)
literals = st.one_of(
    st.integers(0, 10**9).map(lambda n: lit("int", n, str(n))),
    floats,
    text.map(lambda s: lit("str", s)),
    st.booleans().map(lambda b: lit("bool", b)),
    st.just(lit("none", None)),
    durations,
    st.dates().filter(lambda d: d.year >= 1000).map(lambda d: lit("date", d.isoformat(), d.isoformat())),
)
leaves = st.one_of(
    literals,
    names.map(lambda n: ast.Name(id=n)),
    names.map(lambda n: ast.Attr(value=ast.Name(id="params"), attr=n)),
    names.map(lambda n: ast.Attr(value=ast.Name(id=n), attr="out")),
)


def _bool_op(op: str, values: list[ast.Expr]) -> ast.Expr:
    # The parser flattens `a and b and c`; a nested same-operator first operand never comes out of it.
    first, *rest = values
    if isinstance(first, ast.BoolOp) and first.op == op:
        first = ast.Not(value=first)
    return ast.BoolOp(op=op, values=(first, *rest))


def _extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "==", "!=", "<", ">="]), children, children).map(
            lambda t: ast.BinOp(op=t[0], left=t[1], right=t[2])
        ),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3)).map(
            lambda t: _bool_op(t[0], t[1])
        ),
        children.map(lambda c: ast.Not(value=c)),
        st.tuples(children, names).map(lambda t: ast.Attr(value=t[0], attr=t[1])),
        st.tuples(children, children).map(lambda t: ast.Index(value=t[0], index=t[1])),
        st.lists(children, max_size=3).map(lambda items: ast.ListExpr(items=tuple(items))),
        st.lists(st.tuples(children, children), max_size=4).map(lambda i: ast.DictExpr(items=tuple(i))),
    )


expressions = st.recursive(leaves, _extend, max_leaves=5)

retry_specs = st.one_of(
    st.just(ast.RetrySpec(policy=ast.Name(id="none"))),
    st.tuples(durations, st.integers(1, 9)).map(
        lambda t: ast.RetrySpec(
            policy=ast.Call(func="fixed", args=(ast.Arg(name=None, value=t[0]),)),
            options=(ast.Arg(name="attempts", value=lit("int", t[1], str(t[1]))),),
        )
    ),
)


def settings(job_names: list[str]) -> st.SearchStrategy[ast.Setting]:
    job = st.sampled_from(job_names)
    after = st.one_of(
        job.map(lambda j: ast.Name(id=j)),
        st.tuples(job, st.sampled_from(["failed", "done", "skipped"])).map(
            lambda t: ast.Attr(value=ast.Name(id=t[0]), attr=t[1])
        ),
        st.lists(job, min_size=1, max_size=3).map(
            lambda js: ast.FuncCall(func="any_failed", args=tuple(ast.Name(id=j) for j in js))
        ),
    )
    return st.one_of(
        st.sampled_from(["critical", "high", "low"]).map(
            lambda p: ast.Setting(kind="priority", value=ast.Name(id=p))
        ),
        retry_specs.map(lambda r: ast.Setting(kind="retry", value=r)),
        after.map(lambda a: ast.Setting(kind="after", value=a)),
        expressions.map(lambda e: ast.Setting(kind="when", value=e)),
        durations.map(lambda d: ast.Setting(kind="timeout", value=d)),
        st.from_regex(r"[a-z]{1,5}", fullmatch=True).map(lambda q: ast.Setting(kind="queue", value=q)),
        st.from_regex(r"[a-z]{1,5}", fullmatch=True).map(lambda q: ast.Setting(kind="dead_letter", value=q)),
        st.tuples(st.lists(names, min_size=1, max_size=2), st.one_of(st.none(), expressions)).map(
            lambda t: ast.Setting(kind="limit", value=ast.Limit(limiter=".".join(t[0]), by=t[1]))
        ),
        st.tuples(expressions, st.one_of(st.none(), expressions)).map(
            lambda t: ast.Setting(kind="fair", value=ast.Fair(key=t[0], weight=t[1]))
        ),
    )


rates = st.tuples(
    st.integers(0, 10**6),
    st.one_of(st.sampled_from(["s", "m", "h", "d"]).map(lambda u: lit("str", u, u)), durations),
).map(lambda t: ast.Rate(count=lit("int", t[0], str(t[0])), per=t[1]))
limiter_calls = st.one_of(
    st.tuples(rates, st.one_of(st.none(), st.integers(0, 10**6))).map(
        lambda t: ast.Call(
            func="rate",
            args=(
                ast.Arg(name=None, value=t[0]),
                *(() if t[1] is None else (ast.Arg(name="burst", value=lit("int", t[1], str(t[1]))),)),
            ),
        )
    ),
    st.integers(0, 10**6).map(
        lambda n: ast.Call(func="concurrency", args=(ast.Arg(name=None, value=lit("int", n, str(n))),))
    ),
)


@st.composite
def jobs(draw: st.DrawFn, name: str, job_names: list[str]) -> ast.Job:
    args = draw(st.lists(st.tuples(names, expressions), max_size=3, unique_by=lambda a: a[0]))
    fan = draw(st.one_of(st.none(), st.tuples(names, expressions)))
    return ast.Job(
        name=name,
        call=ast.Call(func=f"m.{draw(names)}", args=tuple(ast.Arg(name=n, value=v) for n, v in args)),
        fan_out=ast.FanOut(var=fan[0], over=fan[1]) if fan else None,
        settings=tuple(draw(st.lists(settings(job_names), max_size=3))),
    )


schedules = st.one_of(
    st.just(
        ast.Schedule(
            kind="cron",
            value=lit("str", "30 2 * * *"),
            tz=lit("str", "Europe/Paris"),
            options=(
                ast.ScheduleOption(
                    name="catchup",
                    value=ast.Call(func="last", args=(ast.Arg(name=None, value=lit("int", 3, "3")),)),
                ),
            ),
        )
    ),
    st.integers(1, 48).map(
        lambda h: ast.Schedule(kind="every", value=lit("duration", h * 3_600_000, duration(h * 3_600_000)))
    ),
    st.lists(st.tuples(names, expressions), min_size=1, max_size=2).map(
        lambda ps: ast.Schedule(
            kind="every",
            value=lit("duration", 60_000, "1m"),
            params=tuple(ast.Arg(name=n, value=v) for n, v in ps),
        )
    ),
)


@st.composite
def flows(draw: st.DrawFn) -> ast.Flow:
    job_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    params = draw(
        st.lists(st.tuples(names, st.one_of(st.none(), expressions)), max_size=3, unique_by=lambda p: p[0])
    )
    return ast.Flow(
        name=draw(names),
        queue=draw(st.one_of(st.none(), st.from_regex(r"[a-z]{1,6}", fullmatch=True))),
        params=tuple(
            ast.Param(name=n, type=ast.TypeRef(name="Int", optional=True), default=d) for n, d in params
        ),
        schedules=tuple(draw(st.lists(schedules, max_size=2))),
        defaults=tuple(
            draw(st.lists(settings(job_names).filter(lambda s: s.kind not in ("after", "when")), max_size=2))
        ),
        jobs=tuple(draw(jobs(n, job_names)) for n in job_names),
        outputs=tuple(
            ast.Output(name=n, value=v) for n, v in draw(st.lists(st.tuples(names, expressions), max_size=2))
        ),
    )


@st.composite
def modules(draw: st.DrawFn) -> ast.Module:
    from tqflow.dsl.source import Source

    retries = draw(st.lists(st.tuples(names, retry_specs), max_size=2))
    limiters = draw(st.lists(st.tuples(names, limiter_calls), max_size=2))
    return ast.Module(
        source=Source("gen.tqflow", ""),
        uses=(ast.Use(module="m", alias="m"),),
        retries=tuple(ast.RetryDecl(name=n, spec=s) for n, s in retries),
        limiters=tuple(ast.LimiterDecl(name=n, call=c) for n, c in limiters),
        flows=tuple(draw(st.lists(flows(), min_size=1, max_size=2))),
    )
