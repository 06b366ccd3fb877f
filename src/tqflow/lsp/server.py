"""`tqc lsp`: the language server, over standard input and output (pygls).

Diagnostics are the compiler's (`compile_source`, exactly what `tqc check` reports), computed in a
worker thread a moment after typing stops; the other features read the document's syntax tree and the
task modules with `ast` (user code is never imported)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from tqflow.compiler import compile_source
from tqflow.dsl.diagnostics import Diagnostic
from tqflow.dsl.source import Source
from tqflow.lsp import features
from tqflow.lsp.analysis import Model, build, build_lenient
from tqflow.lsp.positions import LineIndex

DEBOUNCE_SECONDS = 0.15  # after a change, wait this long for the next one before checking
log = logging.getLogger("tqflow.lsp")


def _version() -> str:
    try:
        return version("tqflow")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without metadata
        return "0"


class TqflowServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("tqflow", _version(), text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.others: dict[str, set[str]] = {}  # document -> other files it published diagnostics for
        self.last_model: dict[str, Model] = {}  # the last model of each document that parsed
        self.models: dict[str, tuple[int | None, Model]] = {}  # document -> (version, model) of that version
        # One thread checks at a time: the compiler pauses the garbage collector while it runs.
        self.checker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tqc-check")
        self.builder = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tqc-model")

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or types.PositionEncodingKind.Utf16)

    def index(self, uri: str) -> LineIndex:
        return LineIndex(self.workspace.get_text_document(uri).source, self.encoding)

    async def model(self, uri: str, line: int) -> Model | None:
        """The model of the document as it is now; while a line is half typed, without that line. Built in
        a worker thread, so that a big file being parsed does not hold up the other messages."""
        doc = self.workspace.get_text_document(uri)
        cached = self.models.get(uri)
        if cached is not None and cached[0] == doc.version:
            return cached[1]
        source, doc_version = Source(doc.path, doc.source), doc.version
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.builder, self._build, uri, doc_version, source, line)

    def _build(self, uri: str, doc_version: int | None, source: Source, line: int) -> Model | None:
        try:
            model = build(source)
            if model is not None:
                self.models[uri] = (doc_version, model)
                self.last_model[uri] = model
                return model
            return build_lenient(source, line)
        except Exception:  # a compiler defect must not break the editor's requests
            log.exception("cannot read %s", source.path)
            return None

    def schedule_check(self, uri: str, delay: float) -> None:
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.cancel()
        self.pending[uri] = asyncio.get_running_loop().create_task(self.check(uri, delay))

    async def check(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        doc = self.workspace.get_text_document(uri)
        text, doc_version, path = doc.source, doc.version, doc.path
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.checker, compile_source, Source(path, text))
            items: list[Diagnostic] = list(result.diagnostics)
        except Exception as err:  # the compiler failed: say so on the first line rather than go quiet
            log.exception("tqc failed on %s", path)
            self.publish(uri, [_internal_error(err)], doc_version)
            return
        if self.workspace.get_text_document(uri).version != doc_version:
            return  # the text changed meanwhile; the check scheduled by that change will publish
        if self.models.get(uri, (None,))[0] != doc_version:  # have the model ready for the next request
            loop.run_in_executor(self.builder, self._build, uri, doc_version, Source(path, text), 0)
        by_file = features.to_lsp_diagnostics(items, self.encoding, {path: uri})
        own = by_file.pop(path, None)
        self.publish(uri, own[1] if own else [], doc_version)
        open_docs = set(self.workspace.text_documents)
        published = set()
        for other_path, (_source, diagnostics) in by_file.items():
            other = Path(other_path).resolve().as_uri()
            if other == uri or other in open_docs:
                continue  # an open file shows its own check
            self.publish(other, diagnostics, None)
            published.add(other)
        for stale in self.others.get(uri, set()) - published:
            self.publish(stale, [], None)
        self.others[uri] = published

    def publish(self, uri: str, diagnostics: list[types.Diagnostic], doc_version: int | None) -> None:
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=doc_version)
        )

    def close(self, uri: str) -> None:
        pending = self.pending.pop(uri, None)
        if pending is not None:
            pending.cancel()
        self.last_model.pop(uri, None)
        self.models.pop(uri, None)
        for other in {uri, *self.others.pop(uri, set())}:
            self.publish(other, [], None)


def _internal_error(err: Exception) -> types.Diagnostic:
    start = types.Position(line=0, character=0)
    return types.Diagnostic(
        range=types.Range(start=start, end=start),
        message=f"internal error in tqc, please report: {type(err).__name__}: {err}",
        severity=types.DiagnosticSeverity.Error,
        source=features.SOURCE_NAME,
    )


server = TqflowServer()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: TqflowServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.schedule_check(params.text_document.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: TqflowServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.schedule_check(params.text_document.uri, DEBOUNCE_SECONDS)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: TqflowServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.schedule_check(params.text_document.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
async def did_close(ls: TqflowServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.close(params.text_document.uri)


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
async def watched_files(ls: TqflowServer, params: types.DidChangeWatchedFilesParams) -> None:
    """A task module (or an imported file) changed on disk: check every open document again."""
    del params
    ls.models.clear()  # they hold the task modules as they were
    for uri in list(ls.workspace.text_documents):
        ls.schedule_check(uri, DEBOUNCE_SECONDS)


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: TqflowServer, params: types.HoverParams) -> types.Hover | None:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, params.position.line + 1)
    return features.hover(model, index, params.position) if model else None


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
async def definition(ls: TqflowServer, params: types.DefinitionParams) -> types.Location | None:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, params.position.line + 1)
    return features.definition(model, index, params.position, uri) if model else None


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", ","]))
async def completion(ls: TqflowServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, params.position.line + 1) or ls.last_model.get(uri)
    items = features.completion(model, index, params.position)
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_SIGNATURE_HELP, types.SignatureHelpOptions(trigger_characters=["(", ","]))
async def signature_help(ls: TqflowServer, params: types.SignatureHelpParams) -> types.SignatureHelp | None:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, params.position.line + 1) or ls.last_model.get(uri)
    return features.signature_help(model, index, params.position) if model else None


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
async def references(ls: TqflowServer, params: types.ReferenceParams) -> list[types.Location] | None:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, params.position.line + 1)
    if model is None:
        return None
    return features.references(model, index, params.position, uri, params.context.include_declaration)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def document_symbols(
    ls: TqflowServer, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol]:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, 0)
    return features.document_symbols(model, index) if model else []


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
)
def code_actions(ls: TqflowServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """Quick fixes for the diagnostics whose help suggests a name ("did you mean `greet`?")."""
    uri = params.text_document.uri
    return features.quick_fixes(ls.index(uri), uri, params.context.diagnostics)


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
async def formatting(ls: TqflowServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)
    loop = asyncio.get_running_loop()
    edits = await loop.run_in_executor(ls.builder, features.formatting, doc.source, doc.path, ls.index(uri))
    if edits is None:
        ls.window_log_message(
            types.LogMessageParams(
                type=types.MessageType.Info, message=f"not formatted: {doc.path} has errors"
            )
        )
    return edits


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
async def prepare_rename(ls: TqflowServer, params: types.PrepareRenameParams) -> types.Range | None:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, 0)
    return features.prepare_rename(model, index, params.position) if model else None


@server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
async def rename(ls: TqflowServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    uri = params.text_document.uri
    index = ls.index(uri)  # the text the model is built from, taken before waiting for it
    model = await ls.model(uri, 0)
    if model is None:
        raise JsonRpcInvalidParams("the file has syntax errors; fix them before renaming")
    try:
        return features.rename(model, index, params.position, params.new_name, uri)
    except features.RenameError as err:
        raise JsonRpcInvalidParams(str(err)) from err


def main(argv: list[str] | None = None) -> Any:
    """Serve on standard input and output until the client says exit."""
    del argv
    logging.basicConfig(level=logging.WARNING, format="tqc lsp: %(levelname)s %(message)s")
    server.start_io()
