"""A real language client (pytest-lsp) talking to `tqc lsp` over stdio, in a project folder holding a task
module; the `editor` fixture opens, edits and queries documents the way an editor does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

TQC = Path(sys.executable).parent / "tqc"
WAIT = 120  # seconds: generous, the machine is shared

TASKS = '''\
"""Tasks of the test project."""

from __future__ import annotations

from dataclasses import dataclass

from tqflow.runtime import task


class Flaky(Exception):
    """The service failed this time; it may work the next."""


@dataclass
class Author:
    name: str
    email: str


@dataclass
class Report:
    title: str
    rows: int
    author: Author


@task
def greet(name: str, punctuation: str = "!") -> str:
    """Say hello to someone.

    The greeting ends with `punctuation`.
    """
    return f"Hello, {name}{punctuation}"


@task
def shout(text: str) -> str:
    return text.upper()


@task
async def report(text: str, *, rows: int = 0) -> Report | None:
    """Build a report about the text."""
    return None


@task
def combine(loud: str, letters: int) -> dict[str, object]:
    return {"message": loud, "letters": letters}


def not_a_task() -> None:
    pass
'''

HELLO = """\
# The greeting flow.
use tasks as t

flow hello {
  params {
    name: Str = "world"
  }

  job greeting = t.greet(name=params.name)
  job loud = t.shout(text=greeting.out) {
    after greeting
  }
  job summary = t.report(text=loud.out)
  job merged = t.combine(loud=loud.out, letters=3)

  output title = summary.out.title
  output greeting = greeting.out
}
"""


def position(text: str, needle: str, at: int = 0, nth: int = 0) -> types.Position:
    """The position of character `at` of the `nth` occurrence of `needle` in `text` (ASCII)."""
    offset = -1
    for _ in range(nth + 1):
        offset = text.index(needle, offset + 1)
    offset += at
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


class Editor:
    """Drives the client: documents are also written to the project folder, so `tqc check` can read
    the same text from disk."""

    def __init__(self, client: LanguageClient, folder: Path) -> None:
        self.client = client
        self.folder = folder
        self.versions: dict[str, int] = {}
        self.published: list[types.PublishDiagnosticsParams] = []
        self.arrived = asyncio.Event()
        self._listen()

    def _listen(self) -> None:
        future = self.client.protocol.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        future.add_done_callback(self._got)

    def _got(self, future: concurrent.futures.Future[types.PublishDiagnosticsParams]) -> None:
        if future.exception() is not None:  # the server has exited (the end of the module's tests)
            return
        self.published.append(future.result())
        self._listen()
        self.arrived.set()  # called on the event loop's thread, by the client's protocol

    def path(self, name: str) -> Path:
        return self.folder / name

    def uri(self, name: str) -> str:
        return self.path(name).resolve().as_uri()

    def open(self, name: str, text: str) -> str:
        self.path(name).write_text(text, encoding="utf-8")
        uri = self.uri(name)
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="tqflow", version=1, text=text)
            )
        )
        return uri

    def change(self, name: str, text: str) -> int:
        """Replace the whole text (as many clients do), and write it to disk too."""
        self.path(name).write_text(text, encoding="utf-8")
        uri = self.uri(name)
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.versions[uri]

    def edit(self, name: str, range_: types.Range, new_text: str) -> int:
        """An incremental change of one range (the file on disk is not touched)."""
        uri = self.uri(name)
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[types.TextDocumentContentChangePartial(range=range_, text=new_text)],
            )
        )
        return self.versions[uri]

    def close(self, name: str) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=self.uri(name)))
        )

    def mark(self) -> int:
        """A point in the stream of published diagnostics, for `diagnostics(since=…)`."""
        return len(self.published)

    async def diagnostics(
        self, uri: str, version: int | None = None, since: int = 0
    ) -> list[types.Diagnostic]:
        """The last diagnostics published for `uri` (for document `version`, when given; published after
        `since`), waiting for them if need be."""

        def found() -> types.PublishDiagnosticsParams | None:
            return next(
                (
                    p
                    for p in reversed(self.published[since:])
                    if p.uri == uri and (version is None or p.version == version)
                ),
                None,
            )

        async def wait() -> list[types.Diagnostic]:
            while (params := found()) is None:
                self.arrived.clear()
                await self.arrived.wait()
            return list(params.diagnostics)

        return await asyncio.wait_for(wait(), WAIT)

    def doc(self, name: str) -> types.TextDocumentIdentifier:
        return types.TextDocumentIdentifier(uri=self.uri(name))


def _initialize_params(folder: Path, capabilities: Any) -> types.InitializeParams:
    return types.InitializeParams(
        capabilities=capabilities,
        root_uri=folder.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="project")],
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    (folder / "tasks.py").write_text(TASKS, encoding="utf-8")
    (folder / "hello.tqflow").write_text(HELLO, encoding="utf-8")
    return folder


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[str(TQC), "lsp"]))
async def client(lsp_client: LanguageClient, project: Path) -> AsyncIterator[None]:
    await lsp_client.initialize_session(
        _initialize_params(project, client_capabilities("visual-studio-code"))
    )
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def editor(client: LanguageClient, project: Path) -> Editor:
    return Editor(client, project)


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[str(TQC), "lsp"]))
async def neovim_client(lsp_client: LanguageClient, project: Path) -> AsyncIterator[None]:
    """Neovim 0.11's capabilities: it prefers UTF-8 positions (byte offsets in the line)."""
    await lsp_client.initialize_session(_initialize_params(project, client_capabilities("neovim@v0.11.0")))
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def neovim(neovim_client: LanguageClient, project: Path) -> Editor:
    return Editor(neovim_client, project)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")
