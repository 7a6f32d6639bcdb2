"""The scripted model server over real HTTP, as the codex and claude CLIs call it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskyard.devtools.model_server import ModelServer
from taskyard.exceptions import ConfigError

ServerFactory = Callable[[Any], ModelServer]
RESULT = {"success": True, "actions": [], "analysis": "a", "summary": "s"}
TWO_TURNS = {
    "scripts": [
        {
            "name": "proof",
            "usage": {"input_tokens": 120, "output_tokens": 40},
            "turns": [{"shell": "echo hello > proof.txt"}, {"final": RESULT}],
        }
    ]
}


def sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of an SSE body, checking each `event:` names its payload's type."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        payload = json.loads(fields["data"])
        assert payload["type"] == fields["event"]
        events.append(payload)
    return events


# --- Responses API (codex) -----------------------------------------------------------------


def responses_body(prompt: str, calls: int = 0) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "sys"}],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]},
    ]
    for n in range(calls):
        items.append({"type": "function_call", "call_id": f"c{n}", "name": "exec_command"})
        items.append({"type": "function_call_output", "call_id": f"c{n}", "output": "ok"})
    tools = [{"type": "function", "name": "exec_command"}]
    return {"model": "gpt-5.5", "stream": True, "input": items, "tools": tools}


def responses_item(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [e["type"] for e in events][-1] == "response.completed"
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert len(done) == 1
    return done[0]


def test_responses_turns_follow_the_conversation(model_server: ServerFactory) -> None:
    server = model_server(TWO_TURNS)
    first = httpx.post(f"{server.url}/v1/responses", json=responses_body("go"))
    second = httpx.post(f"{server.url}/v1/responses", json=responses_body("go", calls=1))

    call = responses_item(first)
    assert call["type"] == "function_call"
    assert call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {"cmd": "echo hello > proof.txt"}
    message = responses_item(second)
    assert message["role"] == "assistant"
    assert json.loads(message["content"][0]["text"]) == RESULT
    usage = sse_events(second.text)[-1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (120, 40)
    assert [(r.path, r.script, r.turn) for r in server.requests] == [
        ("/v1/responses", "proof", 0),
        ("/v1/responses", "proof", 1),
    ]
    assert server.requests[0].body == responses_body("go")


def test_past_the_last_turn_the_script_is_exhausted(model_server: ServerFactory) -> None:
    server = model_server(TWO_TURNS)
    response = httpx.post(f"{server.url}/v1/responses", json=responses_body("go", calls=2))

    assert responses_item(response)["content"][0]["text"] == "script exhausted"


def test_scripts_are_picked_by_the_prompt(model_server: ServerFactory) -> None:
    server = model_server(
        {
            "scripts": [
                {"name": "review", "match": "pr-review", "turns": [{"final": "reviewed"}]},
                {"name": "triage", "match": "triage", "turns": [{"final": "triaged"}]},
            ]
        }
    )

    def answer(prompt: str) -> httpx.Response:
        return httpx.post(f"{server.url}/v1/responses", json=responses_body(prompt))

    assert responses_item(answer("route triage: bug"))["content"][0]["text"] == "triaged"
    assert responses_item(answer("route pr-review #4"))["content"][0]["text"] == "reviewed"
    unmatched = answer("something else")
    assert unmatched.status_code == 400
    assert "no script matches" in unmatched.json()["error"]["message"]


def test_error_turn_answers_with_its_status(model_server: ServerFactory) -> None:
    server = model_server(
        {"scripts": [{"turns": [{"error": {"status": 503, "message": "overloaded"}}]}]}
    )
    codex = httpx.post(f"{server.url}/v1/responses", json=responses_body("go"))
    claude = httpx.post(f"{server.url}/v1/messages?beta=true", json=messages_body("go"))

    assert codex.status_code == 503
    assert codex.json()["error"]["message"] == "overloaded"
    assert claude.status_code == 503
    assert claude.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "overloaded"},
    }


def test_hang_turn_never_answers(model_server: ServerFactory) -> None:
    server = model_server({"scripts": [{"turns": [{"hang": True}]}]})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/responses", json=responses_body("go"), timeout=0.5)
    assert len(server.turn_requests()) == 1


async def test_stops_promptly_while_a_request_hangs() -> None:
    async with ModelServer({"scripts": [{"turns": [{"hang": True}]}]}) as server:
        client = httpx.AsyncClient(timeout=10)
        pending = asyncio.create_task(
            client.post(f"{server.url}/v1/responses", json=responses_body("go"))
        )
        while not server.requests:
            await asyncio.sleep(0.01)
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert (await pending).status_code == 503  # what a request still hanging at stop gets
    await client.aclose()


# --- Messages API (claude) -----------------------------------------------------------------


def messages_body(
    prompt: str, history: list[dict[str, Any]] | None = None, structured: bool = True
) -> dict[str, Any]:
    tools = [{"name": "Bash"}, {"name": "Write"}]
    if structured:
        tools.append({"name": "StructuredOutput"})
    first = {
        "role": "user",
        "content": [
            {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
            {"type": "text", "text": prompt},
        ],
    }
    return {
        "model": "claude-sonnet-4-5",
        "stream": True,
        "messages": [first, *(history or [])],
        "tools": tools,
    }


def tool_round(name: str, tool_input: dict[str, Any]) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": "t1", "name": name, "input": tool_input}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
    return [{"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]


def message_answer(response: httpx.Response) -> tuple[dict[str, Any], str, str]:
    """(the content block, its streamed delta, the stop reason)."""
    assert response.status_code == 200
    events = sse_events(response.text)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = events[2]["delta"]
    streamed = delta.get("partial_json") or delta.get("text") or ""
    return events[1]["content_block"], streamed, events[4]["delta"]["stop_reason"]


def test_messages_shell_then_structured_output(model_server: ServerFactory) -> None:
    server = model_server(TWO_TURNS)
    assert httpx.head(server.url).status_code == 200
    url = f"{server.url}/v1/messages?beta=true"
    bash = httpx.post(url, json=messages_body("go"))
    final = httpx.post(url, json=messages_body("go", tool_round("Bash", {"command": "x"})))

    block, streamed, stop = message_answer(bash)
    assert (block["type"], block["name"], stop) == ("tool_use", "Bash", "tool_use")
    assert json.loads(streamed)["command"] == "echo hello > proof.txt"
    block, streamed, stop = message_answer(final)
    assert (block["name"], stop) == ("StructuredOutput", "tool_use")
    assert json.loads(streamed) == RESULT
    assert server.requests[0].method == "HEAD"
    assert server.requests[1].query == "beta=true"


def test_messages_after_structured_output_the_turn_ends(model_server: ServerFactory) -> None:
    server = model_server(TWO_TURNS)
    history = tool_round("Bash", {"command": "x"}) + tool_round("StructuredOutput", RESULT)
    response = httpx.post(f"{server.url}/v1/messages", json=messages_body("go", history))

    block, _, stop = message_answer(response)
    assert (block["type"], stop) == ("text", "end_turn")


def test_messages_final_without_the_schema_tool_is_text(model_server: ServerFactory) -> None:
    server = model_server(TWO_TURNS)
    history = tool_round("Bash", {"command": "x"})
    body = messages_body("go", history, structured=False)
    response = httpx.post(f"{server.url}/v1/messages", json=body)

    block, streamed, stop = message_answer(response)
    assert (block["type"], stop) == ("text", "end_turn")
    assert json.loads(streamed) == RESULT


async def test_concurrent_conversations_each_get_their_own_turns() -> None:
    scripts = [
        {
            "name": f"c{n}",
            "match": f"conversation {n}",
            "turns": [{"shell": f"step-1 of {n}"}, {"shell": f"step-2 of {n}"}, {"final": str(n)}],
        }
        for n in range(3)
    ]

    async def converse(client: httpx.AsyncClient, url: str, n: int) -> list[str]:
        said = []
        for calls in range(3):
            body = responses_body(f"conversation {n}", calls)
            item = responses_item(await client.post(f"{url}/v1/responses", json=body))
            said.append(
                json.loads(item["arguments"])["cmd"]
                if "arguments" in item
                else item["content"][0]["text"]
            )
            await asyncio.sleep(0.001 * (3 - n))  # interleave the conversations
        return said

    async with ModelServer({"scripts": scripts}) as server, httpx.AsyncClient() as client:
        said = await asyncio.gather(*(converse(client, server.url, n) for n in range(3)))

    assert said == [[f"step-1 of {n}", f"step-2 of {n}", str(n)] for n in range(3)]


def test_unknown_paths_are_404_and_recorded(model_server: ServerFactory) -> None:
    server = model_server(TWO_TURNS)
    response = httpx.post(f"{server.url}/v1/chat/completions", json={"x": 1})

    assert response.status_code == 404
    assert [(r.path, r.body) for r in server.requests] == [("/v1/chat/completions", {"x": 1})]
    assert server.turn_requests() == []


def test_script_file_is_served(model_server: ServerFactory, tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text("scripts:\n  - turns:\n      - final: 'from a file'\n")
    server = model_server(path)
    response = httpx.post(f"{server.url}/v1/responses", json=responses_body("go"))

    assert responses_item(response)["content"][0]["text"] == "from a file"


def test_a_body_that_is_not_json_is_400(model_server: ServerFactory) -> None:
    server = model_server(TWO_TURNS)
    response = httpx.post(f"{server.url}/v1/responses", content=b"{not json")

    assert response.status_code == 400
    assert server.turn_requests() == []


def test_a_busy_port_is_a_config_error(model_server: ServerFactory) -> None:
    busy = model_server(TWO_TURNS)
    port = int(busy.url.rsplit(":", 1)[1])
    with (
        pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"),
        ModelServer(TWO_TURNS, port=port),
    ):
        pass


# --- the CLI -------------------------------------------------------------------------------


def test_cli_prints_its_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text("scripts:\n  - turns:\n      - final: 'hi'\n")
    argv = [sys.executable, "-m", "taskyard", "dev", "model-server", "--script", str(path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            response = httpx.post(f"{url}/v1/responses", json=responses_body("go"))
            assert responses_item(response)["content"][0]["text"] == "hi"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "turn 0: final" in proc.stderr.read()


def test_cli_refuses_a_bad_script(tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text("scripts:\n  - turns:\n      - shell: 'ls'\n        final: 'both'\n")
    proc = subprocess.run(
        [sys.executable, "-m", "taskyard", "dev", "model-server", "--script", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert proc.returncode == 1
    assert "exactly one of" in proc.stderr
    assert proc.stdout == ""
