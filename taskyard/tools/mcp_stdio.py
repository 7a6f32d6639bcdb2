"""The per-task MCP server the agent CLI starts: `python -I -m taskyard.tools.mcp_stdio
--socket <task_dir>/tools.sock`.

It speaks MCP over its stdin and stdout and holds nothing: each `tools/list` and `tools/call`
is forwarded to the worker over the socket (`taskyard.tools.bridge`), where validation, policy
and audit happen. A call's answer comes back as text; a refused or failed call is an MCP tool
error (`isError`) whose text says why ("not allowed: …").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from taskyard.exceptions import ToolBridgeError
from taskyard.tools.base import ToolAnswer, ToolSpec
from taskyard.tools.bridge import BridgeClient

SERVER_NAME = "taskyard"


def _tool(spec: ToolSpec) -> types.Tool:
    return types.Tool(
        name=spec.name, description=spec.description, input_schema=dict(spec.input_schema)
    )


def _result(answer: ToolAnswer) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=answer.text)],
        structured_content=dict(answer.data) if answer.data is not None else None,
        is_error=not answer.ok,
    )


def build_server(client: BridgeClient) -> Server[Any]:
    """An MCP server whose tools are whatever the bridge's handler lists."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(s) for s in await client.list_tools()])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        return _result(await client.call(params.name, dict(params.arguments or {})))

    return Server(SERVER_NAME, on_list_tools=list_tools, on_call_tool=call_tool)


async def serve(socket_path: Path) -> None:
    client = await BridgeClient.connect(socket_path)
    try:
        server = build_server(client)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taskyard.tools.mcp_stdio", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path, help="the task's tool socket")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.socket))
    except ToolBridgeError as exc:
        print(f"taskyard MCP server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
