"""A Slack write whose call may have reached Slack is never sent twice; one that cannot have
(nothing listening) is retried. Real sockets on 127.0.0.1, the real slack-sdk client."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from taskyard.exceptions import PlatformInDoubt, PlatformTransientError
from taskyard.platforms import slack_write as sw
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.slack_write import SlackWriter

TOKEN = "xoxb-TRANSPORTtokenTHATmustNEVERleak"


class Listener:
    """Accepts connections; reads each request; then answers nothing (`hang`) or hangs up."""

    def __init__(self, hang: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hang = hang
        self.accepted = 0
        self.open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.recv(65536)
            if self.hang:
                self.open.append(conn)
            else:
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.open:
            conn.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def writer(port: int, sleeps: list[float]) -> SlackWriter:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return SlackWriter(
        TOKEN,
        base_url=f"http://127.0.0.1:{port}/api/",
        timeout=1.0,
        retry=RetryPolicy(attempts=3, backoff=0.01),
        sleep=sleep,
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    yield port


async def test_nothing_listening_is_retried_as_never_sent(
    closed_port: int, sleeps: list[float]
) -> None:
    with pytest.raises(PlatformTransientError) as caught:
        await writer(closed_port, sleeps).send(sw.post_message("C1", "hello"))
    assert not isinstance(caught.value, PlatformInDoubt)
    assert len(sleeps) == 2  # three attempts in all
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize("hang", [True, False], ids=["no-answer", "hung-up"])
async def test_a_call_that_may_have_arrived_is_sent_once(hang: bool, sleeps: list[float]) -> None:
    listener = Listener(hang)
    try:
        with pytest.raises(PlatformInDoubt) as caught:
            await writer(listener.port, sleeps).send(sw.post_message("C1", "hello"))
    finally:
        listener.close()
    assert listener.accepted == 1 and sleeps == []
    assert str(caught.value).startswith("slack: chat.postMessage C1 failed:")
    assert TOKEN not in str(caught.value)
