"""The language features, as functions from a document (its text, its model) to protocol values.
The server (`tqflow.lsp.server`) only wires them to requests."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from lsprotocol import types

from tqflow.compiler.python_tasks import TaskSignature
from tqflow.dsl import ast
from tqflow.dsl.diagnostics import Diagnostic, Diagnostics, Severity
from tqflow.dsl.formatter import FormatError, format_source
from tqflow.dsl.parser import parse
from tqflow.dsl.source import Source, Span
from tqflow.errors import LanguageError
from tqflow.lsp.analysis import IDENTIFIER, FlowSite, LimiterSite, Model, Ref, module_path, sub_span
from tqflow.lsp.positions import LineIndex
from tqflow.lsp.python_info import PyClass, PyFunction, PyModule, class_name, read_python

SOURCE_NAME = "tqc"

# ---- diagnostics ---------------------------------------------------------------------------------


def to_lsp_diagnostics(
    items: Iterable[Diagnostic], encoding: str, uris: dict[str, str] | None = None
) -> dict[str, tuple[Source, list[types.Diagnostic]]]:
    """The compiler's diagnostics, by file (an imported file's errors are its own), in `tqc check` order.
    `uris` gives the URI of a path as the editor spells it (the open document's)."""
    indexes: dict[str, LineIndex] = {}
    result: dict[str, tuple[Source, list[types.Diagnostic]]] = {}
    for d in items:
        index = indexes.setdefault(d.source.path, LineIndex(d.source.text, encoding))
        uri = (uris or {}).get(d.source.path) or _uri(d.source.path)
        related = [
            types.DiagnosticRelatedInformation(
                location=types.Location(uri=uri, range=index.range(label.span)), message=label.message
            )
            for label in d.labels
        ]
        here = types.Location(uri=uri, range=index.range(d.span))
        related += [types.DiagnosticRelatedInformation(location=here, message=f"note: {n}") for n in d.notes]
        if d.help:
            related.append(types.DiagnosticRelatedInformation(location=here, message=f"help: {d.help}"))
        diagnostic = types.Diagnostic(
            range=index.range(d.span),
            message=d.message,
            severity=types.DiagnosticSeverity.Error
            if d.severity is Severity.ERROR
            else types.DiagnosticSeverity.Warning,
            code=d.code,
            source=SOURCE_NAME,
            related_information=related or None,
            data={"label": d.label} if d.label else None,
        )
        result.setdefault(d.source.path, (d.source, []))[1].append(diagnostic)
    return result


def _uri(path: str | Path) -> str:
    return Path(path).resolve().as_uri()


# ---- hover ---------------------------------------------------------------------------------------


def hover(model: Model, index: LineIndex, position: types.Position) -> types.Hover | None:
    ref = model.at(position.line + 1, index.column(position))
    if ref is None:
        return None
    text = _hover_text(model, ref)
    if text is None:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text), range=index.range(ref.span)
    )


def _hover_text(model: Model, ref: Ref) -> str | None:
    if ref.kind == "task":
        signature = model.task(ref.name)
        return _task_markdown(model, ref.name, signature) if signature else None
    if ref.kind == "job":
        job = model.job(ref.flow, ref.name)
        if job is None:
            return None
        first = model.source.line(job.span.line).strip()
        signature = model.task(job.call.func)
        parts = [f"```tqflow\n{first}\n```"]
        if signature is not None:
            returns = signature.returns or "Any"
            out = f"list[{returns}]" if job.fan_out else returns
            parts.append(f"job `{job.name}` of flow `{ref.flow}`: `{job.name}.out` is `{out}`")
            parts.append(_task_markdown(model, job.call.func, signature))
        return "\n\n".join(parts)
    if ref.kind == "arg":
        job = model.job(ref.flow, ref.job or "")
        signature = model.task(job.call.func) if job else None
        param = next((p for p in signature.params if p.name == ref.name), None) if signature else None
        if signature is None or param is None:
            return None
        annotation = f": {param.annotation}" if param.annotation else ""
        need = "optional" if param.has_default else "required"
        return f"```python\n{param.name}{annotation}\n```\n\n{need} parameter of task `{signature.name}`"
    if ref.kind == "param":
        flow = model.flow(ref.flow)
        decl = next((p for p in flow.params if p.name == ref.name), None) if flow else None
        if decl is None:
            return None
        text = model.source.text[decl.span.start : decl.span.end].strip()
        return f"```tqflow\n{text}\n```\n\nparameter of flow `{ref.flow}`"
    if ref.kind == "module":
        module = model.modules.get(ref.name)
        if module is None:
            return None
        tasks = ", ".join(f"`{t}`" for t in sorted(module.tasks)) or "none"
        return f"module `{module.name}` ({module.path})\n\ntasks: {tasks}"
    if ref.kind == "var":
        return f"fan-out variable `{ref.name}`: one item of the list the job runs over"
    if ref.kind == "exception":
        found = _exception_class(model, ref.name)
        if found is None:
            return None
        py, cls = found
        doc = f"\n\n{cls.docstring}" if cls.docstring else ""
        return f"```python\nclass {cls.name}\n```{doc}\n\nin {py.path.name}:{cls.position[0]}"
    if ref.kind == "policy":
        policy = next((d for d in model.module.retries if d.name == ref.name), None)
        if policy is None:
            return None
        text = model.source.text[policy.span.start : policy.span.end].strip()
        return f"```tqflow\n{text}\n```"
    if ref.kind == "limiter":
        site = model.limiters.get(ref.name)
        return _limiter_markdown(site) if site else None
    if ref.kind == "subflow":
        called = model.flows.get(ref.name)
        return _flow_markdown(ref.name, called) if called else None
    return None


def _flow_markdown(name: str, site: FlowSite) -> str:
    """A sub-flow's header: its parameters, its outputs (the job's `.out` fields) and where it is."""
    flow, text = site.decl, site.source.text
    params = ", ".join(text[p.span.start : p.span.end].strip() for p in flow.params)
    outputs = ", ".join(f"`{o.name}`" for o in flow.outputs) or "none"
    where = f"{Path(site.source.path).name}:{flow.span.line}"
    header = f"```tqflow\nflow {name}({params})\n```"
    return f"{header}\n\nruns as a child run; outputs (`.out` fields): {outputs}\n\nin {where}"


def _limiter_markdown(site: LimiterSite) -> str:
    limiter = site.decl
    text = site.source.text[limiter.span.start : limiter.call.span.end]  # not the comments after
    kind = limiter.call.func
    meaning = {
        "rate": "a rate limit: jobs that name it start at most this often, per `by` key, across all workers",
        "concurrency": "a concurrency limit: at most this many of the jobs that name it run at once, per "
        "`by` key, across all workers",
    }.get(kind, "a limiter")
    return f"```tqflow\n{text}\n```\n\n{meaning}\n\nin {Path(site.source.path).name}:{limiter.span.line}"


def _task_markdown(model: Model, func: str, signature: TaskSignature) -> str:
    module = model.module_of(func)
    py = read_python(module.path) if module else None
    function = py.functions.get(signature.function) if py else None
    parts = [f"```python\n{function.header if function else _plain_header(signature)}\n```"]
    if function is not None and function.docstring:
        parts.append(function.docstring)
    where = f" in {module.path.name}:{signature.line}" if module else ""
    parts.append(f"task `{signature.name}`{where}")
    return "\n\n".join(parts)


def _plain_header(signature: TaskSignature) -> str:
    params = ", ".join(f"{p.name}: {p.annotation}" if p.annotation else p.name for p in signature.params)
    returns = f" -> {signature.returns}" if signature.returns else ""
    return f"{'async ' if signature.is_async else ''}def {signature.function}({params}){returns}"


# ---- go to definition ----------------------------------------------------------------------------


def definition(model: Model, index: LineIndex, position: types.Position, uri: str) -> types.Location | None:
    ref = model.at(position.line + 1, index.column(position))
    if ref is None:
        return None
    if ref.kind == "task":
        module = model.module_of(ref.name)
        signature = model.task(ref.name)
        py = read_python(module.path) if module else None
        function = py.functions.get(signature.function) if py and signature else None
        if py is None or function is None:
            return None
        return _python_location(py, function.position, len(function.name))
    if ref.kind == "arg":
        job = model.job(ref.flow, ref.job or "")
        module = model.module_of(job.call.func) if job else None
        signature = model.task(job.call.func) if job else None
        py = read_python(module.path) if module else None
        function = py.functions.get(signature.function) if py and signature else None
        if py is None or function is None or ref.name not in function.params:
            return None
        return _python_location(py, function.params[ref.name], len(ref.name))
    if ref.kind == "module":
        return _module_location(model, ref)
    if ref.kind == "exception":
        found = _exception_class(model, ref.name)
        return _python_location(found[0], found[1].position, len(found[1].name)) if found else None
    if ref.kind == "limiter":
        site = model.limiters.get(ref.name)
        if site is None:
            return None
        if site.source is model.source:  # this document, as the editor has it
            return types.Location(uri=uri, range=index.range(site.decl.name_span))
        where = LineIndex(site.source.text, index.encoding).range(site.decl.name_span)
        return types.Location(uri=Path(site.source.path).resolve().as_uri(), range=where)
    if ref.kind == "subflow":
        called = model.flows.get(ref.name)
        if called is None:
            return None
        if called.source is model.source:
            return types.Location(uri=uri, range=index.range(called.decl.name_span))
        where = LineIndex(called.source.text, index.encoding).range(called.decl.name_span)
        return types.Location(uri=Path(called.source.path).resolve().as_uri(), range=where)
    if ref.kind == "policy":
        decl = next(
            (r for r in model.refs if r.kind == ref.kind and r.name == ref.name and r.declaration), None
        )
        return types.Location(uri=uri, range=index.range(decl.span)) if decl else None
    if ref.kind in ("job", "param"):
        target = next(
            (
                r
                for r in model.refs
                if r.kind == ref.kind and r.flow == ref.flow and r.name == ref.name and r.declaration
            ),
            None,
        )
        if target is None:
            return None
        return types.Location(uri=uri, range=index.range(target.span))
    return None


def _exception_class(model: Model, name: str) -> tuple[PyModule, PyClass] | None:
    """The class an exception name in a retry rule means: bound by `use m.{Name}`, or `alias.Name`."""
    alias, _, short = name.rpartition(".")
    module_file: Path | None = None
    if alias and alias in model.modules:
        module_file = model.modules[alias].path
    else:
        use = next((u for u in model.module.uses if short in u.names and not alias), None)
        module_file = module_path(model, use) if use else None
    py = read_python(module_file) if module_file else None
    cls = py.classes.get(short) if py else None
    return (py, cls) if py and cls else None


def _module_location(model: Model, ref: Ref) -> types.Location | None:
    use = next((u for u in model.module.uses if u.bound_name == ref.name and not u.names), None)
    path = module_path(model, use) if use else None
    if path is None:
        return None
    start = types.Position(line=0, character=0)
    return types.Location(uri=path.resolve().as_uri(), range=types.Range(start=start, end=start))


def _python_location(py: PyModule, position: tuple[int, int], length: int) -> types.Location:
    index = LineIndex(py.text)
    line, column = position
    return types.Location(
        uri=py.path.resolve().as_uri(),
        range=types.Range(start=index.position(line, column), end=index.position(line, column + length)),
    )


# ---- completion ----------------------------------------------------------------------------------

FLOW_KEYWORDS = ("job", "output", "params", "schedule", "defaults", "queue")
JOB_SETTINGS = (
    "after",
    "when",
    "priority",
    "retry",
    "timeout",
    "deadline",
    "delay",
    "queue",
    "unique",
    "dead_letter",
    "limit",
    "fair",
)
TOP_KEYWORDS = ("use", "import", "retry", "limiter", "flow")
STATUSES = ("succeeded", "failed", "done", "skipped")
STATUS_FUNCTIONS = ("any_failed", "all_failed", "any_succeeded", "all_succeeded", "all_done", "any_done")
RUN_FIELDS = ("id", "date", "time")
K = types.CompletionItemKind


def completion(model: Model | None, index: LineIndex, position: types.Position) -> list[types.CompletionItem]:
    line_text = index.line(position.line)
    prefix = line_text[: index.column(position) - 1]
    line, column = position.line + 1, index.column(position)
    if model is None:
        return _keywords(TOP_KEYWORDS) if re.fullmatch(r"\s*\w*", prefix) else []
    flow = model.flow_at(line, column)
    dotted = re.search(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$", prefix)
    if dotted:
        return _member_completion(model, flow, dotted.group(1).split("."), line_text)
    offset = index.offset(position)
    call = _open_task_call(model, index.text[max(0, offset - 4000) : offset])
    if call is not None:
        signature, given, at_name, _func = call
        if at_name:
            return _argument_names(signature, given)
    if re.fullmatch(r"\s*limit\s+\w*", prefix):
        return [
            _item(name, K.Constant, f"limiter = {site.decl.call.func}(…)", _limiter_markdown(site))
            for name, site in model.limiters.items()
        ]
    if re.fullmatch(r"\s*job\s+\w+\s*=\s*\w*", prefix):
        return [_item(alias, K.Module, f"module {m.name}") for alias, m in sorted(model.modules.items())]
    if re.fullmatch(r"\s*\w*", prefix):
        job = model.job_at(line, column)
        if job is not None and model.in_job_block(job, line, column):
            return _keywords(JOB_SETTINGS)
        if flow is not None and flow.span.line < line:
            return _keywords(FLOW_KEYWORDS)
        if flow is None:
            return _keywords(TOP_KEYWORDS)
    if flow is None:
        return []
    return _value_names(flow, model.job_at(line, column), line_text)


def _keywords(words: Iterable[str]) -> list[types.CompletionItem]:
    return [_item(w, K.Keyword) for w in words]


def _item(
    label: str,
    kind: types.CompletionItemKind,
    detail: str | None = None,
    documentation: str | None = None,
    insert: str | None = None,
    sort: str | None = None,
) -> types.CompletionItem:
    return types.CompletionItem(
        label=label,
        kind=kind,
        detail=detail,
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=documentation)
        if documentation
        else None,
        insert_text=insert,
        sort_text=sort,
    )


def _member_completion(
    model: Model, flow: ast.Flow | None, chain: list[str], line_text: str
) -> list[types.CompletionItem]:
    head = chain[0]
    jobs = {j.name: j for j in flow.jobs} if flow else {}
    if len(chain) == 1:
        if head in model.modules:
            module = model.modules[head]
            return [
                _item(name, K.Function, _plain_header(sig), _docstring(model, head, name))
                for name, sig in sorted(module.tasks.items())
            ]
        if head == "params" and flow is not None:
            return [_item(p.name, K.Property, str(p.type)) for p in flow.params]
        if head == "run":
            return [_item(f, K.Property) for f in RUN_FIELDS]
        if head in jobs:
            items = [_item("out", K.Property, "the job's result")]
            if re.match(r"\s*after\b", line_text) or " after " in line_text:
                items += [_item(s, K.EnumMember, "job status") for s in STATUSES]
            return items
        return []
    if head in jobs and chain[1] == "out":
        return _out_fields(model, jobs[head], chain[2:])
    return []


def _docstring(model: Model, alias: str, function: str) -> str | None:
    module = model.modules.get(alias)
    py = read_python(module.path) if module else None
    found = py.functions.get(function) if py else None
    return found.docstring if found else None


def _out_fields(model: Model, job: ast.Job, path: list[str]) -> list[types.CompletionItem]:
    """The fields of a job's result: of the class its task returns (a dataclass, a pydantic model, a
    TypedDict), or the keys of the dict literals it returns; nested through the fields' classes."""
    signature = model.task(job.call.func)
    module = model.module_of(job.call.func)
    py = read_python(module.path) if module else None
    if signature is None or py is None or job.fan_out is not None:
        return []
    function: PyFunction | None = py.functions.get(signature.function)
    annotation = signature.returns
    if (
        not path
        and function is not None
        and function.returned_keys
        and class_name(annotation) not in py.classes
    ):
        return [_item(k, K.Field, "key of the returned dict") for k in function.returned_keys]
    for name in path:
        cls = py.classes.get(class_name(annotation) or "")
        if cls is None or name not in cls.fields:
            return []
        annotation = cls.fields[name][1]
    cls = py.classes.get(class_name(annotation) or "")
    if cls is None:
        return []
    return [_item(name, K.Field, ann or None) for name, (_pos, ann) in cls.fields.items()]


def _open_task_call(model: Model, before: str) -> tuple[TaskSignature, set[str], bool, str] | None:
    """When the text before the cursor ends inside `alias.task(…`: the task, the argument names already
    given, whether the cursor is where an argument name goes (not after `=`), and `alias.task`."""
    depth = 0
    in_string = False
    for i in range(len(before) - 1, -1, -1):
        ch = before[i]
        if ch == '"' and (i == 0 or before[i - 1] != "\\"):
            in_string = not in_string
        if in_string:
            continue
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                if ch != "(":
                    return None
                callee = re.search(r"([A-Za-z_][\w.]*)\s*$", before[:i])
                signature = model.task(callee.group(1)) if callee else None
                if signature is None or callee is None:
                    return None
                inside = before[i + 1 :]
                given = set(re.findall(r"(?:^|,)\s*([A-Za-z_]\w*)\s*=(?!=)", _top_level(inside)))
                at_name = re.search(r"(?:^|,)\s*\w*$", _top_level(inside)) is not None
                return signature, given, at_name, callee.group(1)
            depth -= 1
        elif ch == "\n" and depth == 0 and re.match(r"\s*(job|output|flow)\b", before[i + 1 :]):
            return None
    return None


def signature_help(model: Model, index: LineIndex, position: types.Position) -> types.SignatureHelp | None:
    """Inside `alias.task(…)`: the task's Python signature, its docstring, and the parameter being typed."""
    offset = index.offset(position)
    call = _open_task_call(model, index.text[max(0, offset - 4000) : offset])
    if call is None:
        return None
    signature, given, _at_name, func = call
    module = model.module_of(func)
    py = read_python(module.path) if module else None
    function = py.functions.get(signature.function) if py else None
    params = [p for p in signature.params if p.kind in ("positional_or_keyword", "keyword_only")]
    labels = [f"{p.name}: {p.annotation}" if p.annotation else p.name for p in params]
    label = f"{signature.function}({', '.join(labels)})" + (
        f" -> {signature.returns}" if signature.returns else ""
    )
    typing = re.search(
        r"([A-Za-z_]\w*)\s*=[^=,]*$|([A-Za-z_]\w*)$", index.line(position.line)[: index.column(position) - 1]
    )
    current = (typing.group(1) or typing.group(2)) if typing else None
    names = [p.name for p in params]
    active = (
        names.index(current)
        if current in names
        else next((i for i, n in enumerate(names) if n not in given), None)
    )
    doc = function.docstring if function and function.docstring else None
    return types.SignatureHelp(
        signatures=[
            types.SignatureInformation(
                label=label,
                documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=doc) if doc else None,
                parameters=[types.ParameterInformation(label=text) for text in labels],
                active_parameter=active,
            )
        ],
        active_signature=0,
        active_parameter=active,
    )


def _top_level(text: str) -> str:
    """`text` with the contents of nested brackets and strings removed."""
    out: list[str] = []
    depth = 0
    in_string = False
    for ch in text:
        if ch == '"':
            in_string = not in_string
            continue
        if in_string:
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _argument_names(signature: TaskSignature, given: set[str]) -> list[types.CompletionItem]:
    items: list[types.CompletionItem] = []
    for param in signature.params:
        if param.kind not in ("positional_or_keyword", "keyword_only") or param.name in given:
            continue
        need = "optional" if param.has_default else "required"
        detail = f"{param.name}: {param.annotation}" if param.annotation else param.name
        items.append(
            _item(
                param.name,
                K.Variable,
                f"{detail} ({need})",
                insert=f"{param.name}=",
                sort=f"{int(param.has_default)}{len(items):03d}",
            )
        )
    return items


def _value_names(flow: ast.Flow, job: ast.Job | None, line_text: str) -> list[types.CompletionItem]:
    in_after = re.match(r"\s*after\b", line_text) is not None
    jobs = [_item(j.name, K.Variable, f"job = {j.call.func}(…)") for j in flow.jobs]
    if in_after:
        return jobs + [_item(f, K.Function, "status of several jobs") for f in STATUS_FUNCTIONS]
    items = [
        *jobs,
        _item("params", K.Module, "the flow's parameters"),
        _item("run", K.Module, "id, date, time"),
    ]
    if job is not None and job.fan_out is not None:
        items.append(_item(job.fan_out.var, K.Variable, "fan-out variable"))
    return items + _keywords(("true", "false", "none"))


# ---- formatting ----------------------------------------------------------------------------------


def formatting(text: str, path: str, index: LineIndex) -> list[types.TextEdit] | None:
    """`tqc fmt` of the document: one edit replacing the whole text (none when already formatted);
    None when the document does not parse."""
    try:
        formatted = format_source(text, path)
    except FormatError:
        return None
    if formatted == text:
        return []
    return [types.TextEdit(range=index.whole(), new_text=formatted)]


# ---- rename a job --------------------------------------------------------------------------------


class RenameError(LanguageError, ValueError):
    pass


def prepare_rename(model: Model, index: LineIndex, position: types.Position) -> types.Range | None:
    ref = model.at(position.line + 1, index.column(position))
    if ref is None or ref.kind != "job":
        return None
    return index.range(ref.span)


def rename(
    model: Model, index: LineIndex, position: types.Position, new_name: str, uri: str
) -> types.WorkspaceEdit:
    ref = model.at(position.line + 1, index.column(position))
    if ref is None or ref.kind != "job":
        raise RenameError("only a job can be renamed; put the cursor on a job's name")
    if not IDENTIFIER.match(new_name):
        raise RenameError(f"`{new_name}` is not a name (letters, digits and _, not starting with a digit)")
    flow = model.flow(ref.flow)
    if flow is not None and any(j.name == new_name for j in flow.jobs) and new_name != ref.name:
        raise RenameError(f"flow `{ref.flow}` already has a job `{new_name}`")
    if new_name in ("params", "run"):
        raise RenameError(f"`{new_name}` is reserved in expressions")
    refs = sorted(model.job_refs(ref.flow, ref.name), key=lambda r: r.span.start)
    text = model.source.text
    renamed, last = [], 0
    for r in refs:
        renamed += [text[last : r.span.start], new_name]
        last = r.span.end
    renamed.append(text[last:])
    if parse(Source(model.source.path, "".join(renamed)), Diagnostics()) is None:
        raise RenameError(f"`{new_name}` cannot be a job's name here (the file would no longer parse)")
    edits = [types.TextEdit(range=index.range(r.span), new_text=new_name) for r in refs]
    return types.WorkspaceEdit(changes={uri: edits})


# ---- references and outline ----------------------------------------------------------------------


def references(
    model: Model, index: LineIndex, position: types.Position, uri: str, include_declaration: bool
) -> list[types.Location] | None:
    """Every place a job (or a flow parameter) is named in its flow."""
    ref = model.at(position.line + 1, index.column(position))
    if ref is None or ref.kind not in ("job", "param"):
        return None
    found = [
        r
        for r in model.refs
        if r.kind == ref.kind
        and r.flow == ref.flow
        and r.name == ref.name
        and (include_declaration or not r.declaration)
    ]
    return [
        types.Location(uri=uri, range=index.range(r.span)) for r in sorted(found, key=lambda r: r.span.start)
    ]


def document_symbols(model: Model, index: LineIndex) -> list[types.DocumentSymbol]:
    """The outline: each flow with its parameters, jobs (and the task each calls) and outputs."""
    symbols = []
    for flow in model.module.flows:
        children = [
            _symbol(
                p.name,
                types.SymbolKind.Variable,
                index,
                p.span,
                sub_span(p.span, 0, len(p.name)),
                str(p.type),
            )
            for p in flow.params
        ]
        children += [
            _symbol(j.name, types.SymbolKind.Function, index, j.span, j.name_span, j.call.func)
            for j in flow.jobs
        ]
        children += [
            _symbol(o.name, types.SymbolKind.Property, index, o.span, _output_name(model.source, o), "output")
            for o in flow.outputs
        ]
        flow_symbol = _symbol(flow.name, types.SymbolKind.Module, index, flow.span, flow.name_span, "flow")
        flow_symbol.children = children
        symbols.append(flow_symbol)
    for limiter in model.module.limiters:
        detail = f"limiter = {limiter.call.func}(…)"
        symbols.append(
            _symbol(limiter.name, types.SymbolKind.Constant, index, limiter.span, limiter.name_span, detail)
        )
    return symbols


def _symbol(
    name: str, kind: types.SymbolKind, index: LineIndex, span: Span, name_span: Span, detail: str
) -> types.DocumentSymbol:
    whole = index.range(span)
    selection = index.range(name_span)
    if (selection.start.line, selection.start.character) < (whole.start.line, whole.start.character):
        selection = types.Range(start=whole.start, end=whole.start)
    return types.DocumentSymbol(name=name, kind=kind, range=whole, selection_range=selection, detail=detail)


def _output_name(source: Source, output: ast.Output) -> Span:
    found = re.compile(rf"output[ \t]+({re.escape(output.name)})\b").match(source.text, output.span.start)
    return sub_span(output.span, found.start(1) - output.span.start if found else 0, len(output.name))


# ---- quick fixes ---------------------------------------------------------------------------------

DID_YOU_MEAN = re.compile(r"help: did you mean `([^`]+)`\?")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quick_fixes(
    index: LineIndex, uri: str, diagnostics: Iterable[types.Diagnostic]
) -> list[types.CodeAction]:
    """For each of our diagnostics whose help says "did you mean `X`?": replace the misspelt word under
    the diagnostic (the one closest to X) with X."""
    actions = []
    for diagnostic in diagnostics:
        if diagnostic.source != SOURCE_NAME:
            continue
        helps = [DID_YOU_MEAN.fullmatch(r.message) for r in diagnostic.related_information or []]
        suggestion = next((m.group(1) for m in helps if m), None)
        if suggestion is None:
            continue
        start, end = index.offset(diagnostic.range.start), index.offset(diagnostic.range.end)
        words = [w for w in WORD.finditer(index.text, start, end) if w.group() != suggestion]
        if not words:
            continue
        target = suggestion.rpartition(".")[2]
        word = max(words, key=lambda w: difflib.SequenceMatcher(None, w.group(), target).ratio())
        edit = types.TextEdit(
            range=types.Range(start=index.position_at(word.start()), end=index.position_at(word.end())),
            new_text=suggestion,
        )
        actions.append(
            types.CodeAction(
                title=f"Change `{word.group()}` to `{suggestion}`",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                is_preferred=True,
                edit=types.WorkspaceEdit(changes={uri: [edit]}),
            )
        )
    return actions
