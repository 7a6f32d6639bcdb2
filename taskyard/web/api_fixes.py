"""`GET /api/fixes/stats?repo=owner/name`: whether a repository's pull-request fixes are good
enough to push on their own (`taskyard.routing.fixstats`): the success rate of its last 50
fixes, reverted fixes (null: unknown), incidents, cost per fix, and its failing checks by
outcome. Without `repo`, every repository with fixes."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.routing.fixstats import all_fix_stats
from taskyard.store.base import Store
from taskyard.web import params

REPO = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


def repo_of(request: Request) -> str | None:
    """The `repo` asked for ("owner/name"), or None for every repository."""
    repo = params.query(request, "repo")
    if not repo:
        return None
    if not REPO.fullmatch(repo):
        raise params.bad("repo must be owner/name")
    return repo


def fix_routes(store: Store) -> list[Route]:
    async def fix_stats(request: Request) -> Response:
        repo = repo_of(request)

        def read() -> dict[str, Any]:
            return {"repos": [s.to_json() for s in all_fix_stats(store, repo)]}

        return JSONResponse(await asyncio.to_thread(read))

    return [Route("/api/fixes/stats", fix_stats, methods=["GET"])]
