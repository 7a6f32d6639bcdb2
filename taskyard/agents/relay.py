"""The in-box end of the egress path: run as the box's first process, it runs the agent.

    python -I -S relay.py --socket=/path/egress.sock [--forward=PORT:HOST:PORT ...]
                          [--proxy=PORT] -- AGENT ARGV...

The box has no network but loopback. This relay listens on the box's 127.0.0.1 (each
`--forward` port, and the `--proxy` port that HTTPS_PROXY names) and carries each connection
over the unix socket to taskyard's egress proxy outside the box (`taskyard.agents.egress`),
which alone decides what may be reached. A forwarded connection starts with the line
`TARGET host:port` and waits for `OK`; a proxy connection is passed through as it is (the
proxy reads its CONNECT request).

The listeners are bound before the agent starts, so its first connection finds them. The
relay ignores SIGTERM, SIGINT and SIGHUP (the agent gets them and decides), and exits as the
agent did (its code, or the same signal). Standard library only, no `site`: it starts in a
few milliseconds, and it never imports taskyard.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading

_CHUNK = 65536
_IGNORED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _parse(args: list[str]) -> tuple[str, list[tuple[int, str | None]], list[str]]:
    if "--" not in args:
        raise SystemExit("relay: usage: --socket=PATH [--forward=P:H:P] [--proxy=P] -- ARGV")
    split = args.index("--")
    options, argv = args[:split], args[split + 1 :]
    sock_path = ""
    ports: list[tuple[int, str | None]] = []
    for option in options:
        name, _, value = option.partition("=")
        if name == "--socket":
            sock_path = value
        elif name == "--forward":
            port, _, target = value.partition(":")
            ports.append((int(port), target))
        elif name == "--proxy":
            ports.append((int(value), None))
        else:
            raise SystemExit(f"relay: unknown option {name}")
    if not sock_path or not argv:
        raise SystemExit("relay: --socket and an agent argv are required")
    return sock_path, ports, argv


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


def _open_target(sock_path: str, target: str | None) -> socket.socket | None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(sock_path)
        if target is not None:
            upstream.sendall(f"TARGET {target}\n".encode())
            answer = b""
            while not answer.endswith(b"\n") and len(answer) < 512:
                data = upstream.recv(1)
                if not data:
                    break
                answer += data
            if answer.strip() != b"OK":
                raise OSError(answer.decode(errors="replace").strip() or "refused")
    except OSError as exc:
        sys.stderr.write(f"relay: egress to {target or 'proxy'} refused: {exc}\n")
        upstream.close()
        return None
    return upstream


def _serve(client: socket.socket, sock_path: str, target: str | None) -> None:
    upstream = _open_target(sock_path, target)
    if upstream is None:
        client.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _accept(listener: socket.socket, sock_path: str, target: str | None) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve, args=(client, sock_path, target), daemon=True).start()


def _start_agent(argv: list[str], listeners: list[socket.socket]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            for listener in listeners:
                listener.close()
            os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"relay: cannot run {argv[0]}: {exc}\n")
        os._exit(127)
    return pid


def _exit_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def main(args: list[str]) -> None:
    sock_path, ports, argv = _parse(args)
    listeners, served = [], []
    for port, target in ports:
        try:
            listeners.append(_listen(port))
            served.append((port, target))
        except OSError as exc:  # a port below 1024 needs a capability the box has not
            sys.stderr.write(f"relay: cannot listen on 127.0.0.1:{port}: {exc}\n")
    pid = _start_agent(argv, listeners)  # before the relay ignores signals: the agent must not
    for sig in _IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    for listener, (_, target) in zip(listeners, served, strict=True):
        threading.Thread(target=_accept, args=(listener, sock_path, target), daemon=True).start()
    _, status = os.waitpid(pid, 0)
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
