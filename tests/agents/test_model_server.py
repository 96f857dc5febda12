"""The scripted model server on its own (no agent binary): the wire formats and the script's bookkeeping."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.agents.model_server import ModelServer, Text, ToolCall


def post(url: str, body: dict) -> tuple[str, str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("Content-Type", ""), resp.read().decode()


def sse(text: str) -> list[tuple[str | None, dict]]:
    """(event, data) of each SSE record."""
    out = []
    for record in text.replace("\r\n", "\n").split("\n\n"):
        event, data = None, None
        for line in record.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            out.append((event, data))
    return out


@pytest.fixture
def server():
    with ModelServer([ToolCall("Bash", {"command": "ls -la"}), ToolCall("apply_patch", "*** Begin Patch\n"),
                      Text("all done")], side_text="a title") as srv:
        yield srv


TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def test_anthropic_stream_plays_the_turn_the_conversation_is_at(server):
    kind, body = post(f"{server.url}/v1/messages?beta=true",
                      {"model": "m", "stream": True, "tools": TOOLS, "messages": [{"role": "user", "content": "go"}]})
    assert kind == "text/event-stream"
    events = sse(body)
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    start = next(d for e, d in events if e == "content_block_start")["content_block"]
    assert start == {"type": "tool_use", "id": server.call_id(0), "name": "Bash", "input": {}}
    pieces = [d["delta"]["partial_json"] for e, d in events if e == "content_block_delta"]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {"command": "ls -la"}
    assert next(d for e, d in events if e == "message_delta")["delta"]["stop_reason"] == "tool_use"

    # the same request again (a retry) gets the same turn; one with two calls answered gets the text
    assert json.loads("".join(d["delta"]["partial_json"] for e, d in sse(post(
        f"{server.url}/v1/messages", {"stream": True, "tools": TOOLS, "messages": [{"role": "user",
                                                                                  "content": "go"}]})[1])
        if e == "content_block_delta")) == {"command": "ls -la"}
    history = [{"role": "user", "content": "go"}]
    for i in range(2):
        history += [{"role": "assistant", "content": [{"type": "tool_use", "id": server.call_id(i), "name": "Bash",
                                                       "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": server.call_id(i),
                                                  "content": [{"type": "text", "text": f"out {i}"}],
                                                  "is_error": i == 1}]}]
    events = sse(post(f"{server.url}/v1/messages", {"stream": True, "tools": TOOLS, "messages": history})[1])
    assert "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta") == "all done"
    assert server.result_for(1).output == "out 1" and server.result_for(1).is_error is True
    assert server.result_for(0).is_error is False


def test_a_request_without_tools_is_a_side_request(server):
    _, body = post(f"{server.url}/v1/messages", {"messages": [{"role": "user", "content": "title?"}]})
    answer = json.loads(body)
    assert answer["content"] == [{"type": "text", "text": "a title"}]
    assert server.main_requests() == [] and len(server.requests) == 1


def test_responses_stream_sends_function_and_custom_tool_calls(server):
    tools = [{"type": "function", "name": "exec_command"}]
    events = sse(post(f"{server.url}/v1/responses", {"stream": True, "tools": tools, "input": []})[1])
    assert [d["type"] for _, d in events][0] == "response.created"
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    done = [d["item"] for _, d in events if d["type"] == "response.output_item.done"]
    assert done == [{"type": "function_call", "id": done[0]["id"], "status": "completed",
                     "call_id": server.call_id(0), "name": "Bash", "arguments": '{"command": "ls -la"}'}]
    assert events[-1][1]["type"] == "response.completed"

    history = [{"type": "function_call", "call_id": server.call_id(0), "name": "Bash", "arguments": "{}"},
               {"type": "function_call_output", "call_id": server.call_id(0), "output": "listing"}]
    events = sse(post(f"{server.url}/v1/responses", {"stream": True, "tools": tools, "input": history})[1])
    [item] = [d["item"] for _, d in events if d["type"] == "response.output_item.done"]
    assert item["type"] == "custom_tool_call" and item["input"] == "*** Begin Patch\n"
    assert server.result_for(0).output == "listing"


def test_gemini_stream_and_json_side_requests(server):
    tools = [{"functionDeclarations": [{"name": "run_shell_command"}]}]
    kind, body = post(f"{server.url}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
                      {"contents": [{"role": "user", "parts": [{"text": "go"}]}], "tools": tools})
    assert kind == "text/event-stream"
    [(_, chunk)] = sse(body)
    assert chunk["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"id": server.call_id(0), "name": "Bash", "args": {"command": "ls -la"}}}]

    # a routing request wants JSON of a schema: anything else is retried by Gemini CLI for a minute and a half
    schema = {"type": "OBJECT", "properties": {"reasoning": {"type": "STRING"},
                                               "next_speaker": {"type": "STRING", "enum": ["model", "user"]},
                                               "score": {"type": "INTEGER", "minimum": 1}}}
    _, body = post(f"{server.url}/v1beta/models/flash:generateContent",
                   {"contents": [], "generationConfig": {"responseMimeType": "application/json",
                                                         "responseJsonSchema": schema}})
    text = json.loads(body)["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text) == {"reasoning": "ok", "next_speaker": "user", "score": 1}


def test_hook_events_can_be_awaited(server):
    post(server.hook_event_url, {"payload": {"hook_event_name": "Notification", "message": "m"}})
    assert server.wait_for(lambda s: s.hook_payloads("Notification"), timeout=5) == [
        {"hook_event_name": "Notification", "message": "m"}]
    with pytest.raises(TimeoutError):
        server.wait_for(lambda s: s.hook_payloads("Stop"), timeout=0.2)
