"""What the supervisor stores of an agent's output: redacted, capped, private (real
processes under the real supervisor)."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import orjson

from taskyard.agents.supervisor import Limits, RunStatus, supervise
from taskyard.util.redaction import REDACTED, Redactor
from tests.integration.test_command_agent import command, make_request

SECRETS = ("ghp_live_token_0123", "sk-model-key-abcdef", "db-pass-42x")
LIMITS = Limits(timeout_seconds=30, kill_grace_seconds=0.5, redactor=Redactor(SECRETS))
RESULT = 'echo \'{"summary": "ok", "actions": []}\' > "{output_dir}/result.json"'


async def test_secrets_printed_by_the_agent_are_redacted_in_its_stored_log(
    tmp_path: Path,
) -> None:
    request = make_request(tmp_path)
    script = "\n".join(
        [
            "echo 'token is ghp_live_token_0123'",
            # the same key with its "a" written as a JSON escape
            """printf '{"type": "message", "text": "key sk-model-key-\\\\u0061bcdef"}\\n'""",
            """echo '{"type": "message", "text": "postgresql://u:db-pass-42x@db/x"}'""",
            "echo 'on stderr: ghp_live_token_0123' >&2",
            "head -c 70000 /dev/zero | tr '\\0' x >&2; echo ghp_live_token_0123 >&2",
            RESULT,
        ]
    )
    report = await supervise(command("sh", "-c", script), request, LIMITS)
    assert report.status is RunStatus.SUCCEEDED, report.reason
    log = (request.output_dir / "log.jsonl").read_bytes()
    errors = (request.output_dir / "stderr.log").read_bytes()
    for secret in SECRETS:
        for stored in (log, errors, report.stderr_tail.encode()):
            assert secret.encode() not in stored
            assert secret.encode() not in orjson.dumps(stored.decode())  # nor escaped
    lines = [orjson.loads(line) for line in log.splitlines()]
    assert lines[0] == {"stream": "stdout", "text": f"token is {REDACTED}"}
    assert lines[1]["text"] == f"key {REDACTED}"  # re-encoded: the escape no longer hides it
    assert lines[2]["text"] == f"postgresql://u:{REDACTED}@db/x"
    assert f"on stderr: {REDACTED}".encode() in errors
    assert errors.count(REDACTED.encode()) == 2  # the one after a 70 kB line too


async def test_the_log_is_private(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    old = request.output_dir / "log.jsonl"
    old.write_text("an earlier attempt's\n")
    old.chmod(0o644)
    await supervise(command("sh", "-c", "echo hi; " + RESULT), request, LIMITS)
    for name in ("log.jsonl", "stderr.log"):
        assert stat.S_IMODE((request.output_dir / name).stat().st_mode) == 0o600


async def test_the_log_is_capped_and_says_how_much_was_dropped(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = (
        'i=0; while [ $i -lt 3000 ]; do echo "filler line $i"; i=$((i+1)); done; '
        """echo '{"type": "tool_call", "name": "late"}'; """ + RESULT
    )
    limits = replace(LIMITS, log_max_bytes=4096)
    report = await supervise(command("sh", "-c", script), request, limits)
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert report.tool_calls == 1  # the parser saw the line the log had no room for
    log = (request.output_dir / "log.jsonl").read_bytes()
    assert len(log) <= 4096 + 512
    *kept, note, summary = (orjson.loads(line) for line in log.splitlines())
    assert kept[0] == {"stream": "stdout", "text": "filler line 0"}
    assert note["log_capped"] is True and note["max_bytes"] == 4096
    assert note["dropped_lines"] == 3001 - len(kept)
    assert note["dropped_bytes"] > 3000 * 20
    assert summary["stream"] == "taskyard" and summary["status"] == "succeeded"


async def test_a_secret_in_the_result_is_redacted_before_it_is_stored(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = (
        """echo '{"summary": "the key is sk-model-key-abcdef", "actions": [{"type": "comment", """
        """"params": {"body": "db-pass-42x"}}]}' > "{output_dir}/result.json" """
    )
    report = await supervise(command("sh", "-c", script), request, LIMITS)
    assert report.outcome is not None and report.outcome.result is not None
    assert report.outcome.result["summary"] == f"the key is {REDACTED}"
    assert report.outcome.result["actions"][0]["params"] == {"body": REDACTED}
