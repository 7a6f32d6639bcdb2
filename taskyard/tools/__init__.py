"""A task's MCP tools: the handler interface, the worker-side socket bridge and the stdio MCP
server the agent CLI starts (see `taskyard.tools.bridge` for how they connect)."""

from taskyard.tools.base import NOT_ALLOWED, ToolAnswer, ToolHandler, ToolSpec
from taskyard.tools.bridge import SOCKET_NAME, BridgeClient, ToolBridge

__all__ = [
    "NOT_ALLOWED",
    "SOCKET_NAME",
    "BridgeClient",
    "ToolAnswer",
    "ToolBridge",
    "ToolHandler",
    "ToolSpec",
]
