"""What starts a fix for failing CI: `ci_fix_request` (pure, no I/O) reads one GitHub delivery.

A route opts in (`fix: {on_ci_failure: true}`). It fires on a completed check that failed:
  check_run.completed     one check (its `name`)
  check_suite.completed   every check of one app on a commit (named by the app)
with the conclusion `failure` or `timed_out`; `cancelled`, `neutral`, `skipped`, `success`,
`stale` and `action_required` are no failure of the code. The delivery names the pull
requests whose head the checked commit is (`pull_requests`); one whose head has moved on is
left out, and a delivery that names none asks for nothing. A check of taskyard's own app
never fires (it never triggers on itself).

What the payload cannot say is decided with the store when the task is created
(`taskyard.routing.admission`): that taskyard pushed the head, at most
`taskyard.records.CI_FIXES_PER_HEAD` fixes per head, and a check failing again on a head it
was fixed on being a flaky rerun rather than the model's to retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskyard.routing.fixes import FixSkip
from taskyard.util.paths import dig

CHECK_RUN = "check_run"
CHECK_SUITE = "check_suite"
CHECK_KINDS = frozenset({CHECK_RUN, CHECK_SUITE})
FAILED = frozenset({"failure", "timed_out"})


@dataclass(frozen=True, slots=True)
class CiPull:
    """A pull request whose head is the failing commit."""

    number: int
    head_ref: str | None
    base_ref: str | None


@dataclass(frozen=True, slots=True)
class CiFixRequest:
    """A check failed on the head of one or more pull requests: what a fix task needs."""

    kind: str  # CHECK_RUN or CHECK_SUITE
    repo: str  # "owner/name"
    pulls: tuple[CiPull, ...]  # never empty
    head_sha: str
    check: str  # the check run's name, or the suite's app
    conclusion: str  # "failure" or "timed_out"
    check_id: int | None
    url: str | None  # the check run's html_url (a suite has none)

    @property
    def trigger(self) -> str:
        return f"check {self.check!r} {self.conclusion.replace('_', ' ')}"


def is_check_event(event_type: str) -> bool:
    """Whether `event_type` (`check_run`, `github:check_suite.completed`, …) is a check's."""
    return event_type.removeprefix("github:").partition(".")[0] in CHECK_KINDS


def ci_fix_request(
    event_type: str, payload: Mapping[str, Any], bot_logins: Iterable[str] = ()
) -> CiFixRequest | FixSkip:
    """The fix this check delivery asks for, or why it asks for none. `bot_logins` are
    taskyard's own logins: a check of an app by that name is taskyard's own."""
    name = event_type.removeprefix("github:")
    kind, _, action = name.partition(".")
    data: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    action = action or _str(data.get("action")) or ""
    check = data.get(kind)
    if kind not in CHECK_KINDS or not isinstance(check, Mapping):
        return FixSkip(f"{kind or 'the event'} is not a check run or check suite")
    why_not = _why_not(kind, action, data, check, bot_logins)
    if why_not is not None:
        return FixSkip(why_not)
    head_sha = str(check["head_sha"])
    pulls = _pulls(check, head_sha)
    if not pulls:
        return FixSkip(f"no pull request's head is {head_sha[:12]} any more")
    return CiFixRequest(
        kind=kind,
        repo=str(dig(data, "repository.full_name")),
        pulls=pulls,
        head_sha=head_sha,
        check=_name(kind, check),
        conclusion=str(check["conclusion"]),
        check_id=_int(check.get("id")),
        url=_str(check.get("html_url")),
    )


def _why_not(
    kind: str,
    action: str,
    payload: Mapping[str, Any],
    check: Mapping[str, Any],
    bot_logins: Iterable[str],
) -> str | None:
    noun = kind.replace("_", " ")
    if action != "completed":
        return f"the {noun} was {action or 'changed'}, not completed"
    conclusion = _str(check.get("conclusion"))
    if conclusion not in FAILED:
        return f"the {noun} ended {conclusion or 'without a conclusion'}, not in failure"
    if not isinstance(dig(payload, "repository.full_name"), str):
        return "the event names no repository"
    if not _str(check.get("head_sha")):
        return f"the {noun} names no head commit"
    if not _pull_list(check):
        return f"the {noun} names no pull request"
    return _ours(check, bot_logins)


def _ours(check: Mapping[str, Any], bot_logins: Iterable[str]) -> str | None:
    """Why the check is taskyard's own app's, or None."""
    ours = {b.casefold().removesuffix("[bot]") for b in bot_logins if b}
    app = dig(check, "app.slug") or dig(check, "check_suite.app.slug")
    if isinstance(app, str) and app.casefold() in ours:
        return f"the check is taskyard's own ({app})"
    return None


def _pulls(check: Mapping[str, Any], head_sha: str) -> tuple[CiPull, ...]:
    """The named pull requests whose head is still `head_sha` (a head unknown counts)."""
    found: list[CiPull] = []
    for pull in _pull_list(check):
        number = _int(pull.get("number"))
        sha = dig(pull, "head.sha")
        if number is None or (isinstance(sha, str) and sha != head_sha):
            continue
        found.append(CiPull(number, _str(dig(pull, "head.ref")), _str(dig(pull, "base.ref"))))
    return tuple(found)


def _pull_list(check: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    pulls = check.get("pull_requests")
    if not isinstance(pulls, list):
        return []
    return [p for p in pulls if isinstance(p, Mapping)]


def _name(kind: str, check: Mapping[str, Any]) -> str:
    if kind == CHECK_RUN and _str(check.get("name")):
        return str(check["name"])
    app = check.get("app")
    if isinstance(app, Mapping):
        return _str(app.get("name")) or _str(app.get("slug")) or kind
    return kind


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
