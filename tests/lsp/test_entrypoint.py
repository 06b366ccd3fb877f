"""`python -m tqflow.lsp` is the same server as `tqc lsp`: the raw protocol by hand, and its capabilities."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import IO, Any


def send(stream: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    stream.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    stream.flush()


def receive(stream: IO[bytes]) -> dict[str, Any]:
    length = 0
    while (line := stream.readline().strip()) != b"":
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    message: dict[str, Any] = json.loads(stream.read(length))
    return message


def test_python_m_tqflow_lsp_speaks_the_protocol_and_exits_on_exit() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tqflow.lsp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        client = {"textDocument": {"rename": {"prepareSupport": True}}}
        send(
            server.stdin,
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": client}},
        )
        reply = receive(server.stdout)
        capabilities = reply["result"]["capabilities"]
        assert reply["result"]["serverInfo"]["name"] == "tqflow"
        assert capabilities["hoverProvider"] and capabilities["definitionProvider"]
        assert capabilities["referencesProvider"] and capabilities["documentSymbolProvider"]
        assert capabilities["documentFormattingProvider"]
        assert capabilities["renameProvider"] == {"prepareProvider": True}
        assert "." in capabilities["completionProvider"]["triggerCharacters"]
        assert capabilities["positionEncoding"] == "utf-16"
        send(server.stdin, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
        send(server.stdin, {"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        assert receive(server.stdout)["id"] == 2
        send(server.stdin, {"jsonrpc": "2.0", "method": "exit"})
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
