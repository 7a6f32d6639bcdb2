"""Platform writes, split in two: *planning* a request (pure: what would be sent) and *sending*
it. Dry-run records the planned request and sends nothing, so what a dry run records is
exactly what a live run sends.

`PlannedRequest.body` is the JSON a REST call sends (GitHub), the GraphQL `{query, variables}`
(Linear), or the Web API arguments (Slack). Never a token: writers add credentials when they
send.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    platform: str  # "github" | "linear" | "slack"
    method: str  # HTTP method for GitHub ("POST"…); "POST" for Linear; "POST" for Slack
    path: str  # GitHub REST path ("/repos/acme/api/issues/7/labels"); "graphql"; Slack method
    body: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""  # for people: "add labels bug, P1 to acme/api#7"

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "method": self.method,
            "path": self.path,
            "body": dict(self.body),
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What the platform answered: the created or changed object's id and URL, if any."""

    external_id: str | None = None
    url: str | None = None
    response: Mapping[str, Any] = field(default_factory=dict)


class PlatformWriter(Protocol):
    """Sends planned requests of one platform. Raises PlatformPermanentError (4xx other than
    429) or PlatformTransientError (429/5xx after retries with backoff and Retry-After)."""

    platform: str

    async def send(self, request: PlannedRequest) -> WriteResult: ...
