"""A minimal language-server-protocol client for tests (stdlib only).

It speaks JSON-RPC 2.0 with ``Content-Length`` framing over a child process's stdin/stdout.
A reader thread turns stdout into messages on a queue; the test thread takes them off with a
deadline, answers the server's own requests (``workspace/configuration`` and a few others),
keeps every ``textDocument/publishDiagnostics`` and returns the response it is waiting for.
Every wait has a timeout and ``close()`` always ends the process, so a test cannot hang.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LspClient", "LspError"]


class LspError(RuntimeError):
    """The server failed, answered with an error, or did not answer in time."""


class LspClient:
    """Drive one language server over stdio.

    ``settings`` is the client-side configuration, keyed by section (``{"yaml": {...}}``); it
    answers ``workspace/configuration`` requests and is also pushed with
    ``workspace/didChangeConfiguration`` after ``initialized``.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        root: Path,
        settings: dict[str, Any],
        timeout: float = 20.0,
    ) -> None:
        self.timeout = timeout
        self.settings = settings
        self.root = root
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self._next_id = 0
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[bytes] = []
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=root,
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    # -- lifecycle --------------------------------------------------------------------
    def initialize(self) -> dict[str, Any]:
        """Send ``initialize`` + ``initialized`` and push the settings; returns the server's capabilities."""
        result = self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": self.root.as_uri(),
                "workspaceFolders": [{"uri": self.root.as_uri(), "name": self.root.name}],
                "capabilities": {
                    "workspace": {"configuration": True, "didChangeConfiguration": {"dynamicRegistration": True}},
                    "textDocument": {
                        "synchronization": {"dynamicRegistration": False},
                        "completion": {
                            "completionItem": {"snippetSupport": False, "documentationFormat": ["plaintext"]},
                        },
                        "publishDiagnostics": {"relatedInformation": False},
                    },
                },
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings})
        return result["capabilities"]

    def close(self) -> None:
        """Ask the server to shut down, then make sure the process is gone."""
        try:
            if self._proc.poll() is None:
                self.request("shutdown", None, timeout=5.0)
                self.notify("exit", None)
                self._proc.wait(timeout=5.0)
        except (LspError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(timeout=5.0)
            for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
                if stream is not None:
                    stream.close()

    def __enter__(self) -> LspClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    # -- messages ---------------------------------------------------------------------
    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, *, timeout: float | None = None) -> Any:
        """Send a request and return its result, serving the server's messages meanwhile."""
        self._next_id += 1
        request_id = self._next_id
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        found: list[dict[str, Any]] = []

        def is_answer(message: dict[str, Any]) -> bool:
            if message.get("id") == request_id and "method" not in message:
                found.append(message)
                return True
            return False

        self._pump(is_answer, timeout, f"a response to `{method}`")
        response = found[0]
        if "error" in response:
            raise LspError(f"`{method}` failed: {response['error']}")
        return response.get("result")

    def wait_for_diagnostics(self, uri: str, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """The diagnostics published for ``uri`` since it was opened, waiting for the first ones."""
        if uri not in self.diagnostics:
            self._pump(lambda _message: uri in self.diagnostics, timeout, f"diagnostics for {uri}")
        return self.diagnostics[uri]

    # -- documents --------------------------------------------------------------------
    def open_document(self, uri: str, text: str, *, language_id: str = "yaml", version: int = 1) -> None:
        self.diagnostics.pop(uri, None)
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language_id, "version": version, "text": text}},
        )

    def completion_items(self, uri: str, line: int, character: int) -> list[dict[str, Any]]:
        """The completion items at a 0-based position."""
        result = self.request(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        return result.get("items", []) if isinstance(result, dict) else (result or [])

    def completion_labels(self, uri: str, line: int, character: int) -> list[str]:
        """Labels of the completion items at a 0-based position."""
        return [item["label"] for item in self.completion_items(uri, line, character)]

    # -- plumbing ---------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        if self._proc.stdin is None or self._proc.poll() is not None:
            raise LspError(f"the server has exited (code {self._proc.returncode}); stderr:\n{self.stderr}")
        try:
            self._proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self._proc.stdin.flush()
        except OSError as e:
            raise LspError(f"cannot write to the server: {e}; stderr:\n{self.stderr}") from None

    def _pump(self, done: Callable[[dict[str, Any]], bool], timeout: float | None, what: str) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LspError(f"timed out waiting for {what}; stderr:\n{self.stderr}")
            try:
                message = self._messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if message is None:
                raise LspError(f"the server closed its output while waiting for {what}; stderr:\n{self.stderr}")
            self._dispatch(message)
            if done(message):
                return

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method == "textDocument/publishDiagnostics":
            params = message["params"]
            self.diagnostics[params["uri"]] = params["diagnostics"]
        elif method is not None and "id" in message:
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": self._answer(method, message.get("params"))})

    def _answer(self, method: str, params: Any) -> Any:
        if method == "workspace/configuration":
            return [self._section(item.get("section")) for item in params.get("items", [])]
        # client/registerCapability, window/workDoneProgress/create, ...: acknowledge.
        return None

    def _section(self, section: str | None) -> Any:
        if not section:
            return self.settings
        value: Any = self.settings
        for part in section.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def _read_stdout(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            while True:
                length = None
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is None:
                    continue
                body = stream.read(length)
                if len(body) < length:
                    return
                self._messages.put(json.loads(body))
        except (OSError, ValueError):
            return
        finally:
            self._messages.put(None)

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        try:
            for chunk in iter(lambda: stream.read1(4096), b""):
                self._stderr.append(chunk)
        except (OSError, ValueError):
            return
