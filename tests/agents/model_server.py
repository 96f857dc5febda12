"""A scripted model server: the real agent binaries talk to it instead of a model.

One stdlib HTTP/1.1 server on 127.0.0.1 (a port the OS picks; it is bound, so
ready, when the constructor returns) that speaks, streaming, the three wire
formats the agents use:

- Anthropic Messages (Claude Code): ``POST /v1/messages`` with ``stream: true``
  answers the documented SSE events (``message_start``,
  ``content_block_start`` / ``content_block_delta`` / ``content_block_stop``,
  ``message_delta``, ``message_stop``); a ``tool_use`` block's input arrives as
  ``input_json_delta`` pieces. ``/v1/messages/count_tokens`` answers a count.
- OpenAI Responses (Codex CLI): ``POST /v1/responses`` answers
  ``response.created``, ``response.output_item.added`` / ``.done`` (a
  ``function_call`` with JSON ``arguments``, a ``custom_tool_call`` with raw
  ``input``, or a ``message``), the text / argument deltas, and
  ``response.completed``.
- Gemini (Gemini CLI): ``POST /v1beta/models/<model>:generateContent`` (one
  JSON ``GenerateContentResponse``) and ``:streamGenerateContent?alt=sse``
  (``data:`` lines, each a ``GenerateContentResponse``); ``:countTokens``.

It plays a script: a list of turns, each a :class:`ToolCall` (tool name and
input) or a :class:`Text` (the final answer). Which turn a request gets is
read from the conversation it carries: a request whose history already holds
``k`` tool calls of the model gets turn ``k`` (and the final text past the
end), so an agent that retries a request, or sends side requests, does not
shift the script. A request that offers no tools (titles, summaries, quota
probes) is a side request and gets plain text.

Every request is recorded (path, headers, JSON body), so a test can read what
the model was told: :meth:`ModelServer.tool_results` lists each tool result the
agent sent back (e.g. the reason a hook gave for a deny), in one shape for the
three APIs.

Run alone to drive an agent by hand::

    python tests/agents/model_server.py --script turns.json --log requests.jsonl

(``turns.json``: ``[{"tool": "Bash", "input": {"command": "ls"}}, {"text": "done"}]``;
it prints ``http://127.0.0.1:PORT`` once bound.)
"""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

__all__ = ["ModelServer", "Recorded", "Text", "ToolCall", "ToolResult"]


@dataclass(frozen=True)
class ToolCall:
    """The model calls ``name`` with ``input``.

    ``input`` is a dict for JSON tools. For Codex's freeform tools (``apply_patch``
    in its custom-tool form) it is the raw text, sent as a ``custom_tool_call``.
    """

    name: str
    input: dict | str


@dataclass(frozen=True)
class Text:
    """The model answers ``text`` and ends its turn."""

    text: str


Turn = ToolCall | Text


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON
    api: str | None  # "anthropic" | "responses" | "gemini" | None (anything else)
    turn: int | None = None  # the script index it was answered with; None for side requests
    at: float = field(default_factory=time.time)

    @property
    def has_tools(self) -> bool:
        return bool(_tools_of(self.api, self.body))


@dataclass(frozen=True)
class ToolResult:
    """A tool's result as the agent sent it back to the model, in one shape for every API."""

    api: str
    call_id: str | None
    name: str | None  # Gemini names the function; the others only give the call id
    output: str  # the text the model reads (JSON-encoded when the API carries an object)
    is_error: bool | None  # Anthropic's is_error; None where the API has no such flag
    raw: Any


# -- what a request carries ---------------------------------------------------------


def _tools_of(api: str | None, body: Any) -> list:
    if not isinstance(body, dict):
        return []
    if api == "gemini":
        return [d for t in body.get("tools") or [] if isinstance(t, dict)
                for d in (t.get("functionDeclarations") or t.get("function_declarations") or [])]
    return list(body.get("tools") or [])


def _calls_so_far(api: str, body: dict) -> int:
    """How many tool calls of the model the conversation in this request already holds."""
    n = 0
    if api == "anthropic":
        for m in body.get("messages") or []:
            if m.get("role") == "assistant" and isinstance(m.get("content"), list):
                n += sum(1 for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use")
    elif api == "responses":
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") in (
                    "function_call", "custom_tool_call", "local_shell_call"):
                n += 1
    elif api == "gemini":
        for c in body.get("contents") or []:
            if c.get("role") == "model":
                n += sum(1 for p in c.get("parts") or [] if isinstance(p, dict) and "functionCall" in p)
    return n


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(c.get("text", c.get("content", ""))) if isinstance(c, dict) else str(c)
                       for c in content)
    if content is None:
        return ""
    return json.dumps(content, ensure_ascii=False)


def tool_results_of(api: str | None, body: Any) -> list[ToolResult]:
    """The tool results in one request's conversation (all of them, oldest first)."""
    out: list[ToolResult] = []
    if not isinstance(body, dict):
        return out
    if api == "anthropic":
        for m in body.get("messages") or []:
            if m.get("role") != "user" or not isinstance(m.get("content"), list):
                continue
            for b in m["content"]:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    out.append(ToolResult(api, b.get("tool_use_id"), None, _text_of(b.get("content")),
                                          bool(b.get("is_error", False)), b))
    elif api == "responses":
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("type") in (
                    "function_call_output", "custom_tool_call_output", "local_shell_call_output"):
                out.append(ToolResult(api, item.get("call_id"), None, _text_of(item.get("output")), None, item))
    elif api == "gemini":
        for c in body.get("contents") or []:
            for p in c.get("parts") or []:
                if isinstance(p, dict) and "functionResponse" in p:
                    fr = p["functionResponse"]
                    out.append(ToolResult(api, fr.get("id"), fr.get("name"), _text_of(fr.get("response")),
                                          None, fr))
    return out


def _json_schema_asked(api: str, body: dict) -> dict | None:
    """The JSON schema a side request wants its answer in (Gemini's routing and next-speaker checks)."""
    if api == "gemini":
        cfg = body.get("generationConfig") or {}
        if cfg.get("responseMimeType") == "application/json":
            return cfg.get("responseJsonSchema") or cfg.get("responseSchema") or {}
    return None


def fill_schema(schema: dict) -> Any:
    """A small value that fits ``schema``; where there is a choice, "user" (the agent hands back) or the first.

    Gemini CLI retries a side request whose answer does not parse, with back-off,
    for a minute and a half; an answer that fits ends it at once.
    """
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return "user" if "user" in schema["enum"] else schema["enum"][0]
    if kind == "object":
        return {k: fill_schema(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return max(1, int(schema.get("minimum", 1)))
    if kind == "boolean":
        return False
    return "ok"


def _api_of(path: str) -> str | None:
    p = urlsplit(path).path
    if p.endswith("/messages"):
        return "anthropic"
    if p.endswith("/responses"):
        return "responses"
    if "/models/" in p and (p.endswith(":generateContent") or p.endswith(":streamGenerateContent")):
        return "gemini"
    return None


# -- the wire formats -----------------------------------------------------------------


def _sse(event: str | None, data: dict) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _pieces(text: str, n: int = 3) -> list[str]:
    """Split a string in a few pieces, so clients really reassemble deltas."""
    if len(text) < n:
        return [text] if text else []
    step = -(-len(text) // n)
    return [text[i:i + step] for i in range(0, len(text), step)]


def anthropic_events(turn: Turn, *, msg_id: str, call_id: str, model: str) -> list[bytes]:
    usage = {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0}
    events = [_sse("message_start", {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage}})]
    if isinstance(turn, ToolCall):
        block = {"type": "tool_use", "id": call_id, "name": turn.name, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p}
                  for p in _pieces(json.dumps(turn.input, ensure_ascii=False))]
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(turn.text)]
        stop = "end_turn"
    events.append(_sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}))
    events.append(_sse("ping", {"type": "ping"}))
    for d in deltas:
        events.append(_sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}))
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(_sse("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop, "stop_sequence": None},
                                         "usage": {"output_tokens": 5}}))
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


def anthropic_message(turn: Turn, *, msg_id: str, call_id: str, model: str) -> dict:
    if isinstance(turn, ToolCall):
        content = [{"type": "tool_use", "id": call_id, "name": turn.name, "input": turn.input}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": turn.text}]
        stop = "end_turn"
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def responses_events(turn: Turn, *, resp_id: str, item_id: str, call_id: str, model: str) -> list[bytes]:
    seq = itertools.count()

    def ev(data: dict) -> bytes:
        data["sequence_number"] = next(seq)
        return _sse(data["type"], data)

    response = {"id": resp_id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
                "model": model, "output": [], "usage": None}
    events = [ev({"type": "response.created", "response": dict(response)}),
              ev({"type": "response.in_progress", "response": dict(response)})]
    if isinstance(turn, ToolCall) and isinstance(turn.input, str):
        done = {"type": "custom_tool_call", "id": item_id, "status": "completed", "call_id": call_id,
                "name": turn.name, "input": turn.input}
        events.append(ev({"type": "response.output_item.added", "output_index": 0,
                          "item": {**done, "status": "in_progress", "input": ""}}))
        for p in _pieces(turn.input):
            events.append(ev({"type": "response.custom_tool_call_input.delta", "output_index": 0,
                              "item_id": item_id, "delta": p}))
        events.append(ev({"type": "response.custom_tool_call_input.done", "output_index": 0,
                          "item_id": item_id, "input": turn.input}))
    elif isinstance(turn, ToolCall):
        args = json.dumps(turn.input, ensure_ascii=False)
        done = {"type": "function_call", "id": item_id, "status": "completed", "call_id": call_id,
                "name": turn.name, "arguments": args}
        events.append(ev({"type": "response.output_item.added", "output_index": 0,
                          "item": {**done, "status": "in_progress", "arguments": ""}}))
        for p in _pieces(args):
            events.append(ev({"type": "response.function_call_arguments.delta", "output_index": 0,
                              "item_id": item_id, "delta": p}))
        events.append(ev({"type": "response.function_call_arguments.done", "output_index": 0,
                          "item_id": item_id, "arguments": args}))
    else:
        part = {"type": "output_text", "text": turn.text, "annotations": []}
        done = {"type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": [part]}
        events.append(ev({"type": "response.output_item.added", "output_index": 0,
                          "item": {**done, "status": "in_progress", "content": []}}))
        events.append(ev({"type": "response.content_part.added", "output_index": 0, "item_id": item_id,
                          "content_index": 0, "part": {**part, "text": ""}}))
        for p in _pieces(turn.text):
            events.append(ev({"type": "response.output_text.delta", "output_index": 0, "item_id": item_id,
                              "content_index": 0, "delta": p}))
        events.append(ev({"type": "response.output_text.done", "output_index": 0, "item_id": item_id,
                          "content_index": 0, "text": turn.text}))
        events.append(ev({"type": "response.content_part.done", "output_index": 0, "item_id": item_id,
                          "content_index": 0, "part": part}))
    events.append(ev({"type": "response.output_item.done", "output_index": 0, "item": done}))
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}
    events.append(ev({"type": "response.completed",
                      "response": {**response, "status": "completed", "output": [done], "usage": usage}}))
    return events


def gemini_response(turn: Turn, *, call_id: str, model: str) -> dict:
    if isinstance(turn, ToolCall):
        part = {"functionCall": {"id": call_id, "name": turn.name, "args": turn.input}}
    else:
        part = {"text": turn.text}
    return {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
            "modelVersion": model}


def gemini_chunks(turn: Turn, *, call_id: str, model: str) -> list[bytes]:
    if isinstance(turn, ToolCall):
        return [b"data: " + json.dumps(gemini_response(turn, call_id=call_id, model=model)).encode() + b"\r\n\r\n"]
    pieces = _pieces(turn.text) or [""]
    out = []
    for i, p in enumerate(pieces):
        chunk = gemini_response(Text(p), call_id=call_id, model=model)
        if i < len(pieces) - 1:
            del chunk["candidates"][0]["finishReason"]
        out.append(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
    return out


# -- the server -----------------------------------------------------------------------


class ModelServer:
    """The scripted model on 127.0.0.1; ``url`` is ready when the constructor returns.

    ``script``: the turns (see the module docstring). ``final_text``: the answer
    once the script is played out. ``side_text``: the answer to requests without
    tools. ``log``: a JSONL file that gets every request too (for debugging).
    """

    def __init__(self, script: Iterable[Turn] = (), *, final_text: str = "Done.", side_text: str = "OK",
                 log: Path | None = None) -> None:
        self.script: list[Turn] = list(script)
        self.final_text = final_text
        self.side_text = side_text
        self.log = log
        self.requests: list[Recorded] = []
        self.hook_events: list[dict] = []  # what record_hook.py POSTed to /hook-event, oldest first
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"model-server-{self.port}",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # -- lifecycle

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "ModelServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what tests read

    @property
    def hook_event_url(self) -> str:
        return f"{self.url}/hook-event"

    def hook_payloads(self, event: str | None = None) -> list[dict]:
        """Payloads the recording hook reported (given ``hook_event_url``), of ``event`` if given."""
        with self._cond:
            return [e["payload"] for e in self.hook_events
                    if isinstance(e.get("payload"), dict)
                    and (event is None or e["payload"].get("hook_event_name") == event)]

    def main_requests(self, api: str | None = None) -> list[Recorded]:
        """The requests that were answered from the script (they offered tools)."""
        with self._cond:
            return [r for r in self.requests if r.turn is not None and (api is None or r.api == api)]

    def tool_results(self) -> list[ToolResult]:
        """Every tool result the agent sent back, once each, in the order the model first saw them."""
        seen: dict[tuple, ToolResult] = {}
        for r in self.main_requests():
            for tr in tool_results_of(r.api, r.body):
                seen.setdefault((tr.api, tr.call_id, tr.name, tr.output), tr)
        return list(seen.values())

    def result_for(self, call_index: int) -> ToolResult | None:
        """The result of the script's ``call_index``-th tool call (0-based), once the agent sent it."""
        want = self.call_id(call_index)
        for tr in self.tool_results():
            if tr.call_id == want:
                return tr
        return None

    def call_id(self, call_index: int) -> str:
        """The id this server gave the script's ``call_index``-th tool call (the same for every API)."""
        return f"call_{call_index:03d}"

    def wait_for(self, predicate: Callable[["ModelServer"], Any], timeout: float = 30.0):
        """Block until ``predicate(self)`` is truthy (re-checked on every request); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"model server: condition not met within {timeout:g}s;"
                                       f" {len(self.requests)} requests so far")
                self._cond.wait(left)

    # -- answering

    def _record(self, rec: Recorded) -> None:
        with self._cond:
            self.requests.append(rec)
            if self.log is not None:
                with open(self.log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"method": rec.method, "path": rec.path, "api": rec.api, "turn": rec.turn,
                                         "headers": rec.headers, "body": rec.body}, ensure_ascii=False) + "\n")
            self._cond.notify_all()

    def _turn_for(self, api: str, body: dict) -> tuple[int | None, Turn]:
        if not _tools_of(api, body):
            schema = _json_schema_asked(api, body)
            if schema is not None:
                return None, Text(json.dumps(fill_schema(schema)))
            return None, Text(self.side_text)
        k = _calls_so_far(api, body)
        return k, (self.script[k] if k < len(self.script) else Text(self.final_text))


def _handler_for(server: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tower-model-server"

        def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raw = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    raw += self.rfile.read(size)
                    self.rfile.readline()
            else:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            enc = self.headers.get("Content-Encoding", "").lower()
            if enc == "gzip":
                raw = gzip.decompress(raw)
            elif enc == "deflate":
                raw = zlib.decompress(raw)
            elif enc == "zstd":
                raise ValueError("zstd request bodies are not supported here")
            return raw

        def _send_json(self, status: int, data: Any) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _send_stream(self, chunks: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for c in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def do_GET(self) -> None:
            server._record(Recorded("GET", self.path, dict(self.headers), None, None))
            p = urlsplit(self.path).path
            if p.endswith("/models"):
                self._send_json(200, {"object": "list", "data": [], "models": []})
            else:
                self._send_json(404, {"error": {"message": f"no such endpoint {p}"}})

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            try:
                raw = self._body()
            except Exception as exc:  # noqa: BLE001 - the client learns why, the test sees the record
                server._record(Recorded("POST", self.path, dict(self.headers), repr(exc), None))
                self._send_json(400, {"error": {"message": str(exc)}})
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            p = urlsplit(self.path).path
            if p == "/hook-event":
                with server._cond:
                    server.hook_events.append(body if isinstance(body, dict) else {"raw": body})
                    server._cond.notify_all()
                self._send_json(200, {})
                return
            api = _api_of(self.path)
            if api is None:
                server._record(Recorded("POST", self.path, dict(self.headers), body, None))
                if p.endswith("/count_tokens"):
                    self._send_json(200, {"input_tokens": 10})
                elif p.endswith(":countTokens"):
                    self._send_json(200, {"totalTokens": 10})
                else:
                    self._send_json(404, {"error": {"message": f"no such endpoint {p}"}})
                return
            if not isinstance(body, dict):
                server._record(Recorded("POST", self.path, dict(self.headers), body, api))
                self._send_json(400, {"error": {"message": "the body is not a JSON object"}})
                return
            with server._cond:
                index, turn = server._turn_for(api, body)
                n = next(server._ids)
            call_id = server.call_id(index) if index is not None else f"side_{n:03d}"
            model = str(body.get("model") or p.rsplit("/", 1)[-1].split(":")[0])
            server._record(Recorded("POST", self.path, dict(self.headers), body, api, index))
            if api == "anthropic":
                if body.get("stream"):
                    self._send_stream(anthropic_events(turn, msg_id=f"msg_{n:04d}", call_id=call_id, model=model))
                else:
                    self._send_json(200, anthropic_message(turn, msg_id=f"msg_{n:04d}", call_id=call_id,
                                                           model=model))
            elif api == "responses":
                self._send_stream(responses_events(turn, resp_id=f"resp_{n:04d}", item_id=f"item_{n:04d}",
                                                   call_id=call_id, model=model))
            elif p.endswith(":streamGenerateContent"):
                self._send_stream(gemini_chunks(turn, call_id=call_id, model=model))
            else:
                self._send_json(200, gemini_response(turn, call_id=call_id, model=model))

    return Handler


def _turns_from_json(items: list) -> list[Turn]:
    return [ToolCall(i["tool"], i.get("input", {})) if "tool" in i else Text(i["text"]) for i in items]


def main() -> None:
    import argparse
    import signal

    ap = argparse.ArgumentParser(description="Scripted model server for driving real agents by hand.")
    ap.add_argument("--script", type=Path, help="JSON list of {tool, input} / {text} turns")
    ap.add_argument("--log", type=Path, help="append every request to this JSONL file")
    args = ap.parse_args()
    turns = _turns_from_json(json.loads(args.script.read_text())) if args.script else []
    with ModelServer(turns, log=args.log) as srv:
        print(srv.url, flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
