"""What starts a pull-request fix: `fix_request` (pure, no I/O) reads one GitHub delivery.

A fix is asked for by a person, on an open pull request, in a new comment:
  issue_comment.created               a conversation comment (only on a pull request)
  pull_request_review_comment.created an inline comment: it carries the file, line and hunk
  pull_request_review.submitted       a review that requests changes (other states never fire)
Every kind needs the phrase (default `@taskyard fix`) in its body: case-insensitively, as a
whole phrase (`@taskyard fixed` is not it), outside quoted lines (`> …`), fenced code blocks
and inline code, so a reply that quotes an earlier trigger does not fire again. A
changes-requested review fires without the phrase only when the caller asks for that
(`on_changes_requested`): a review is often a person's notes, not a request to an agent.

Never itself: a body carrying taskyard's hidden marker (what `with_marker` appends to every
body it posts, with a personal token too) never fires, nor does a sender that is taskyard's
own login or any bot, so nothing taskyard writes, even a summary quoting the phrase, starts a
loop. Edits, deletions and reactions are not new requests; draft pull requests are skipped
unless the caller takes drafts. An `issue_comment` payload may not say whether the pull
request is a draft: the request then says `draft_unknown` and the run checks first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskyard.actions.keys import marker
from taskyard.config.routes import DEFAULT_FIX_PHRASE
from taskyard.util.paths import dig

COMMENT = "issue_comment"
INLINE = "pull_request_review_comment"
REVIEW = "pull_request_review"
_NEW = {COMMENT: "created", INLINE: "created", REVIEW: "submitted"}
_CHANGES_REQUESTED = "changes_requested"

_PREFIX, _SUFFIX = marker("\0").split("\0")
_HIDDEN_MARKER = re.compile(re.escape(_PREFIX) + r"\S+?" + re.escape(_SUFFIX))
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_QUOTE = re.compile(r"^ {0,3}>")
_INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class InlineComment:
    """Where an inline review comment sits. `line` is the comment's line in the file at
    `commit_id` (its original line when the comment is outdated); `start_line` is set for a
    comment on a range of lines; `side` is RIGHT (the new file) or LEFT (the old)."""

    path: str
    line: int | None
    start_line: int | None
    side: str | None
    diff_hunk: str | None
    commit_id: str | None


@dataclass(frozen=True, slots=True)
class FixRequest:
    """A person asked taskyard to fix a pull request: what the run stage needs to start."""

    kind: str  # COMMENT, INLINE or REVIEW
    repo: str  # "owner/name"
    number: int
    comment_id: int | None  # the comment's id, or the review's
    url: str | None  # the comment's (or review's) html_url
    body: str  # the comment or review body, without any hidden marker
    author: str | None  # the login that asked
    head_ref: str | None = None  # unknown for an issue_comment: its payload has no head
    head_sha: str | None = None
    base_ref: str | None = None
    inline: InlineComment | None = None  # set for an inline review comment
    draft_unknown: bool = False  # the payload does not say whether the PR is a draft
    trigger: str = ""  # what fired, in words: "phrase '@taskyard fix'", "changes requested"


@dataclass(frozen=True, slots=True)
class FixSkip:
    """The delivery asks for no fix, and why, in words a routing decision can record."""

    reason: str


def fix_request(
    event_type: str,
    payload: Mapping[str, Any],
    phrase: str = DEFAULT_FIX_PHRASE,
    bot_logins: Iterable[str] = (),
    *,
    on_changes_requested: bool = False,
    drafts: bool = False,
) -> FixRequest | FixSkip:
    """The fix this delivery asks for, or why it asks for none. `event_type` is GitHub's event
    name, with or without its action and the `github:` source (`issue_comment`,
    `issue_comment.created`, `github:issue_comment.created`); `bot_logins` are taskyard's own
    logins (its bot user, its app's `name[bot]`)."""
    kind, action = _kind_and_action(event_type, payload)
    data: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    why_not = _why_not(kind, action, data, bot_logins, drafts)
    if why_not is not None:
        return FixSkip(why_not)
    item = _item(kind, data)
    body = _str(item.get("body")) or ""
    if _HIDDEN_MARKER.search(body):
        return FixSkip("the body carries taskyard's hidden marker: taskyard wrote it")
    trigger = _trigger(kind, body, phrase, on_changes_requested)
    if isinstance(trigger, FixSkip):
        return trigger
    return _request(kind, data, item, body, trigger)


def mentions(body: str, phrase: str) -> bool:
    """Whether `body` says `phrase` (case-insensitively, as a whole phrase) outside quoted
    lines, fenced code blocks and inline code."""
    if not phrase.strip():
        return False
    pattern = re.compile(r"(?<!\w)" + re.escape(phrase.strip()) + r"(?!\w)", re.IGNORECASE)
    return pattern.search(_said(body)) is not None


def _said(body: str) -> str:
    """The body without what it only quotes or shows as code."""
    kept: list[str] = []
    fence: str | None = None
    for line in body.splitlines():
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        if not _QUOTE.match(line):
            kept.append(line)
    return _INLINE_CODE.sub(" ", "\n".join(kept))


def _kind_and_action(event_type: str, payload: Any) -> tuple[str, str | None]:
    name = event_type.removeprefix("github:")
    kind, _, action = name.partition(".")
    if not action and isinstance(payload, Mapping) and isinstance(payload.get("action"), str):
        action = payload["action"]
    return kind, action or None


def _why_not(
    kind: str,
    action: str | None,
    payload: Mapping[str, Any],
    bot_logins: Iterable[str],
    drafts: bool,
) -> str | None:
    """The reason a delivery of this kind and action cannot ask for a fix, before its body."""
    if kind not in _NEW:
        return f"{kind or 'the event'} is not a pull request comment or review"
    if action != _NEW[kind]:
        return f"the {_noun(kind)} was {action or 'changed'}, not {_NEW[kind]}"
    if kind == COMMENT and dig(payload, "issue.pull_request") is None:
        return "the comment is on an issue, not a pull request"
    state = dig(payload, "review.state")
    if kind == REVIEW and str(state).casefold() != _CHANGES_REQUESTED:
        return f"the review is {str(state or 'without a state').lower()}, not changes requested"
    if not isinstance(_pull(kind, payload).get("number"), int):
        return "the event names no pull request"
    if not isinstance(dig(payload, "repository.full_name"), str):
        return "the event names no repository"
    return _sender_not(payload, bot_logins) or _pull_not(kind, payload, drafts)


def _sender_not(payload: Mapping[str, Any], bot_logins: Iterable[str]) -> str | None:
    login = dig(payload, "sender.login")
    name = login if isinstance(login, str) and login else "the sender"
    ours = {b.casefold() for b in bot_logins if b}
    ours |= {f"{b}[bot]" for b in ours if not b.endswith("[bot]")}
    if isinstance(login, str) and login.casefold() in ours:
        return f"{name} is taskyard itself"
    if dig(payload, "sender.type") == "Bot" or name.endswith("[bot]"):
        return f"{name} is a bot; a fix is asked for by a person"
    return None


def _pull_not(kind: str, payload: Mapping[str, Any], drafts: bool) -> str | None:
    pull = _pull(kind, payload)
    if pull.get("state") == "closed":
        return "the pull request is closed"
    if pull.get("draft") is True and not drafts:
        return "the pull request is a draft"
    return None


def _trigger(kind: str, body: str, phrase: str, on_changes_requested: bool) -> str | FixSkip:
    if kind == REVIEW and on_changes_requested:
        return "changes requested"
    if mentions(body, phrase):
        return f"phrase {phrase.strip()!r}"
    return FixSkip(f"the {_noun(kind)} does not ask for {phrase.strip()!r}")


def _request(
    kind: str, payload: Mapping[str, Any], item: Mapping[str, Any], body: str, trigger: str
) -> FixRequest:
    pull = _pull(kind, payload)
    author = dig(payload, "sender.login")
    return FixRequest(
        kind=kind,
        repo=str(dig(payload, "repository.full_name")),
        number=int(pull["number"]),
        comment_id=_int(item.get("id")),
        url=_str(item.get("html_url")),
        body=_HIDDEN_MARKER.sub("", body).strip(),
        author=author if isinstance(author, str) else None,
        head_ref=_str(dig(pull, "head.ref")),
        head_sha=_str(dig(pull, "head.sha")),
        base_ref=_str(dig(pull, "base.ref")),
        inline=_inline(item) if kind == INLINE else None,
        draft_unknown=kind == COMMENT and not isinstance(pull.get("draft"), bool),
        trigger=trigger,
    )


def _inline(comment: Mapping[str, Any]) -> InlineComment:
    line = _int(comment.get("line"))
    start = _int(comment.get("start_line"))
    return InlineComment(
        path=str(comment.get("path") or ""),
        line=line if line is not None else _int(comment.get("original_line")),
        start_line=start if start is not None else _int(comment.get("original_start_line")),
        side=_str(comment.get("side")),
        diff_hunk=_str(comment.get("diff_hunk")),
        commit_id=_str(comment.get("commit_id")),
    )


def _pull(kind: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pull request: the payload's own, or for a conversation comment the issue it is."""
    pull = payload.get("issue" if kind == COMMENT else "pull_request")
    return pull if isinstance(pull, Mapping) else {}


def _item(kind: str, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    item = payload.get("review" if kind == REVIEW else "comment")
    return item if isinstance(item, Mapping) else {}


def _noun(kind: str) -> str:
    return "review" if kind == REVIEW else "comment"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
