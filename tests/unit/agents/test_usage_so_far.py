"""What each parser knows of a run's usage and cost while it runs (the per-task cost ceiling
reads it after every line), on the recorded streams of the real CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskyard.agents import build_adapter
from taskyard.agents.base import StreamParser, Usage
from taskyard.agents.command import JsonLineParser
from taskyard.config import AgentConfig

STREAMS = Path(__file__).parent / "streams"
MICRO = 1e-6  # computed costs are rounded to a millionth of a dollar
SONNET = {"input_usd_per_mtok": 3, "cached_input_usd_per_mtok": 0.3, "output_usd_per_mtok": 15}


def parser(kind: str, **prices: float) -> StreamParser:
    config = AgentConfig(kind=kind, model="m", api_key="k", **prices)  # type: ignore[arg-type]
    return build_adapter(config).new_parser()


def lines(name: str) -> list[str]:
    return (STREAMS / f"{name}.jsonl").read_text().splitlines()


def feed_until(p: StreamParser, stream: list[str], marker: str) -> None:
    """Feed the lines up to and including the first that contains `marker`."""
    for line in stream:
        p.feed(line)
        if marker in line:
            return
    raise AssertionError(f"{marker!r} not in the stream")


def test_claude_without_prices_knows_tokens_mid_run_and_its_cost_at_the_end() -> None:
    p = parser("claude")
    stream = lines("claude-success")
    assert p.usage_so_far() is None
    feed_until(p, stream, '"type":"assistant"')
    assert p.usage_so_far() == Usage(100, 25, 1, 0, None)  # no cost: no prices yet
    for line in stream:
        p.feed(line)
    assert p.usage_so_far() == Usage(200, 50, 40, 0, pytest.approx(0.001065))  # type: ignore[arg-type]


def test_claude_with_prices_costs_each_model_message_as_it_comes() -> None:
    p = parser("claude", **SONNET)
    stream = lines("claude-success")
    feed_until(p, stream, '"type":"assistant"')
    first = p.usage_so_far()
    assert first is not None and first.cost_usd == pytest.approx(
        (75 * 3 + 25 * 0.3 + 15) / 1e6, abs=MICRO
    )
    assistant = next(line for line in stream if '"type":"assistant"' in line)
    p.feed(assistant)  # the same message again (claude may send a message in pieces)
    assert p.usage_so_far() == first
    bigger = json.loads(assistant)
    bigger["message"]["usage"]["output_tokens"] = 500
    p.feed(json.dumps(bigger))  # a later piece of it with more output: the most counts
    assert p.usage_so_far() == Usage(
        100, 25, 500, 0, pytest.approx((225 + 7.5 + 7500) / 1e6, abs=MICRO)
    )  # type: ignore[arg-type]
    for line in stream:
        p.feed(line)
    final = p.usage_so_far()
    assert final is not None and final.cost_usd == pytest.approx(0.001065)  # the result's


def test_codex_knows_its_usage_when_its_turn_ends() -> None:
    priced = parser("codex", input_usd_per_mtok=1.25, output_usd_per_mtok=10)
    bare = parser("codex")
    stream = lines("codex-success")
    for line in stream[:-1]:
        priced.feed(line)
        bare.feed(line)
        assert priced.usage_so_far() is None and bare.usage_so_far() is None
    priced.feed(stream[-1])
    bare.feed(stream[-1])
    cost = (150 * 1.25 + 50 * 1.25 + 40 * 10) / 1e6
    assert priced.usage_so_far() == Usage(200, 50, 40, 0, pytest.approx(cost, abs=MICRO))  # type: ignore[arg-type]
    assert bare.usage_so_far() == Usage(200, 50, 40, 0, None)


def test_a_command_agent_adds_up_its_usage_lines() -> None:
    p = JsonLineParser()
    p.feed('{"type": "message", "text": "hi"}')
    assert p.usage_so_far() is None
    p.feed('{"type": "usage", "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.004}')
    p.feed('{"type": "usage", "input_tokens": 5, "cost_usd": 0.0035}')
    assert p.usage_so_far() == Usage(15, 0, 2, 0, pytest.approx(0.0075))  # type: ignore[arg-type]
    p.feed('{"type": "usage", "cost_usd": true}')  # not a number: no cost added
    usage = p.usage_so_far()
    assert usage is not None and usage.cost_usd == pytest.approx(0.0075)
