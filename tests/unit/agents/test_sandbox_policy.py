"""The box's argv from a policy, the egress allowlist, and the cgroup detection (no bwrap run)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from taskyard.agents import cgroups
from taskyard.agents.base import AgentRequest, Launch
from taskyard.agents.cgroups import Mechanism, detect_at
from taskyard.agents.egress import EgressProxy, Endpoint, endpoints_of
from taskyard.agents.sandbox import Policy, Relay, SandboxSettings, bwrap_argv, policy_for


def request_in(root: Path) -> AgentRequest:
    task = root / "home" / "workspaces" / "task-1"
    for name in ("workspace", "outputs", "context", "prompts", "home"):
        (task / name).mkdir(parents=True)
    return AgentRequest(
        "1", task, task / "workspace", task / "context", task / "outputs", task / "p.md", {}
    )


def pairs(argv: tuple[str, ...], option: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == option]


def test_the_argv_isolates_and_binds_the_task(tmp_path: Path) -> None:
    request = request_in(tmp_path)
    env = {
        "PATH": "/usr/bin",
        "HOME": str(request.task_dir / "home"),
        "AGENT_API_KEY": "sk-boxed-secret",
    }
    launch = Launch(("sh", "-c", "true"), env, request.workspace)
    settings = SandboxSettings(hidden=(tmp_path / "home",), read_only=(tmp_path,))
    argv = bwrap_argv(policy_for(request, launch, settings), launch)
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert pairs(argv, "--uid") == ["1000"] and "--proc" in argv and "--dev" in argv
    assert argv[-4:] == ("--", "sh", "-c", "true")
    assert "sk-boxed-secret" not in " ".join(argv)  # the environment never goes into argv
    rw = pairs(argv, "--bind")
    assert str(request.workspace) in rw and str(request.output_dir) in rw
    assert str(request.task_dir / "home") in rw and str(request.context_dir) not in rw
    # the home is masked after the operator's read-only bind that showed it
    tmpfs = pairs(argv, "--tmpfs")
    assert str(tmp_path / "home") in tmpfs and "/tmp" in tmpfs
    order = argv.index(str(tmp_path / "home"))
    assert argv.index(str(request.workspace)) > order  # the task is bound over the mask
    # the masks are read-only once the task is bound in them; the root last
    assert pairs(argv, "--remount-ro")[-1] == "/"
    assert str(tmp_path / "home") in pairs(argv, "--remount-ro")
    assert argv.index("--remount-ro") > argv.index(str(request.workspace))


def test_etc_secrets_are_never_bound(tmp_path: Path) -> None:
    request = request_in(tmp_path)
    launch = Launch(("true",), {"PATH": "/usr/bin"}, request.workspace)
    policy = policy_for(request, launch, SandboxSettings())
    bound = {str(p) for p in policy.read_only}
    assert "/etc" not in bound and "/etc/shadow" not in bound
    assert "/usr" in bound


def test_the_relay_runs_first_and_then_the_agent(tmp_path: Path) -> None:
    policy = Policy(tmp_path, tmp_path, (), (), (), (tmp_path,))
    relay = Relay(tmp_path / "egress.sock", ((8123, "127.0.0.1:8123"),), 3128)
    launch = Launch(("agent", "--go"), {}, tmp_path)
    argv = bwrap_argv(policy, launch, relay)
    tail = argv[argv.index("--") + 1 :]
    assert tail[0].endswith("python") or "python" in tail[0]
    assert "--forward=8123:127.0.0.1:8123" in tail and "--proxy=3128" in tail
    assert tail[-3:] == ("--", "agent", "--go")


def test_endpoints_come_from_egress_and_base_url_variables(tmp_path: Path) -> None:
    launch = Launch(
        ("x",),
        {"OPENAI_BASE_URL": "http://127.0.0.1:8123/v1", "OTHER": "https://evil.example"},
        tmp_path,
        egress=("https://api.anthropic.com",),
    )
    assert endpoints_of(launch) == (
        Endpoint("127.0.0.1", 8123),
        Endpoint("api.anthropic.com", 443),
    )


@pytest.mark.parametrize(
    ("text", "ok"), [("a.b:443", True), ("[::1]:80", True), ("a.b", False), ("a:0", False)]
)
def test_endpoint_parsing(text: str, ok: bool) -> None:
    if ok:
        assert Endpoint.parse(text).port in (443, 80)
    else:
        with pytest.raises(ValueError):
            Endpoint.parse(text)


async def _ask(path: Path, first: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(first)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


async def test_the_proxy_allows_only_its_endpoints(tmp_path: Path) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello:" + await reader.readline())
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    sock = tmp_path / "egress.sock"
    async with EgressProxy(sock, [Endpoint("127.0.0.1", port)]) as proxy:
        assert await _ask(sock, f"TARGET 127.0.0.1:{port}\nping\n".encode()) == b"OK\nhello:ping\n"
        assert (await _ask(sock, b"TARGET 127.0.0.1:5432\n")).startswith(b"DENIED")
        connect = f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nping\n".encode()
        assert (await _ask(sock, connect)).startswith(b"HTTP/1.1 200")
        denied = await _ask(sock, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        assert denied.startswith(b"HTTP/1.1 403")
        plain = await _ask(sock, b"GET http://example.com/x HTTP/1.1\r\n\r\n")
        assert plain.startswith(b"HTTP/1.1 403")
        assert proxy.denied == ["127.0.0.1:5432", "example.com:443", "example.com:80"]
        assert proxy.agent_env()["HTTPS_PROXY"] == "http://127.0.0.1:3128"
    upstream.close()
    assert not sock.exists()


def test_cgroup_detection_picks_v1_v2_or_rlimits(tmp_path: Path) -> None:
    assert detect_at(tmp_path, "4:memory:/a\n").mechanism is Mechanism.RLIMITS
    for controller in ("memory", "pids"):
        (tmp_path / controller / "a").mkdir(parents=True)
    found = detect_at(tmp_path, "4:memory:/a\n8:pids:/a\n")
    assert found.mechanism is Mechanism.CGROUP_V1
    assert found.parents == (tmp_path / "memory" / "a", tmp_path / "pids" / "a")
    v2 = tmp_path / "v2"
    (v2 / "x").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("memory pids")
    (v2 / "x" / "cgroup.subtree_control").write_text("memory pids")
    assert detect_at(v2, "0::/x\n").parents == (v2 / "x",)


@pytest.mark.parametrize(("euid", "said"), [(0, "NO process limit"), (1000, "RLIMIT_NPROC")])
def test_the_rlimits_fallback_says_what_it_does_not_hold(
    monkeypatch: pytest.MonkeyPatch, euid: int, said: str
) -> None:
    """Without a cgroup the task's memory is not limited as a whole, and as root the kernel
    does not apply RLIMIT_NPROC at all: doctor and startup must say so."""
    monkeypatch.setattr(cgroups, "detect", lambda: cgroups.Hierarchy(Mechanism.RLIMITS, ()))
    monkeypatch.setattr(cgroups.os, "geteuid", lambda: euid)
    line = cgroups.describe(2 * 1024**3, 64)
    assert said in line and "2 GiB is NOT enforced for the task as a whole" in line
