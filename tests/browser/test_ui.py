"""The web UI in headless Chromium against a real `taskyard serve` (see `harness`):

1. a merge waiting for approval is approved by clicking (with a reason) on the approvals
   page; the task resumes, the merge reaches GitHub once, and the task's page shows it
   succeeded with the merge applied;
2. a running task's page shows the agent's new log lines as they are written, without
   reloading, then its outcome once it ends;
3. every page, in every test, without a console error or an uncaught exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from taskyard.records import ApprovalStatus
from tests.browser.conftest import Console
from tests.browser.harness import (
    API_TOKEN,
    GITHUB_TOKEN,
    MERGE,
    Yard,
    issue,
    pull_request,
    wait_for,
)
from tests.platform_servers import PlatformServer, github_problems, github_server

pytestmark = pytest.mark.slow
LIVE_SECONDS = 30_000  # ms: how long a page may take to show what the server did


@pytest.fixture(scope="module")
def github() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory, github: PlatformServer) -> Iterator[Yard]:
    yard = Yard(tmp_path_factory.mktemp("browser"), github.base_url)
    yard.start()
    try:
        yield yard
    finally:
        yard.stop()
        log = (yard.home / "serve.log").read_text()
        assert API_TOKEN not in log and GITHUB_TOKEN not in log


def sign_in(page: Page, yard: Yard, then: str = "/") -> None:
    """Any page asks for the API token first, and comes back to the page asked for."""
    page.goto(yard.url + then)
    expect(page).to_have_url(f"{yard.url}/ui/login?next={quote(then)}")
    page.get_by_label("API token").fill(API_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(yard.url + then)


def test_a_merge_is_approved_by_clicking_and_the_task_completes(
    page: Page, console: Console, yard: Yard, github: PlatformServer
) -> None:
    event_id = yard.deliver("pull_request", pull_request())
    task_id = yard.task_of(event_id, "awaiting_approval")
    with yard.store() as store:
        (approval,) = store.list_approvals(ApprovalStatus.PENDING, task_id)
    mark = github.mark()
    sign_in(page, yard)
    page.get_by_role("navigation").get_by_role("link", name="Approvals").click()
    card = page.locator(f"article[data-approval='{approval.id}']")
    expect(card).to_contain_text("merge_pr")
    expect(card).to_contain_text("critical")
    expect(card).to_contain_text(f"PUT {MERGE[1]}")
    card.get_by_label("Reason").fill("Diff read, checks green: ship it.")
    card.get_by_role("button", name="Approve").click()

    expect(page).to_have_url(f"{yard.url}/ui/approvals")
    expect(page.locator(".flash")).to_contain_text(f"{approval.id} approved by web:operator")
    expect(page.locator(f"article[data-approval='{approval.id}']")).to_have_count(0)
    decided = page.locator(f"tr[data-approval='{approval.id}']")
    expect(decided).to_contain_text("Diff read, checks green: ship it.")
    decided.get_by_role("link", name=task_id).click()

    expect(page).to_have_url(f"{yard.url}/ui/tasks/{task_id}")
    status = page.locator("[data-task-status]")
    expect(status).to_have_attribute("data-task-status", "succeeded", timeout=LIVE_SECONDS)
    merge = page.locator("tr[data-action-type='merge_pr']")
    expect(merge).to_contain_text("applied")
    expect(merge).to_contain_text(f"PUT {MERGE[1]}")
    expect(page.locator("[data-approval] .status")).to_have_text("approved")
    expect(page.locator("ol.log")).to_contain_text("read the pull request: the checks pass")
    expect(page.locator("summary", has_text="event.json")).to_be_visible()
    expect(page.locator("p.summary")).to_have_text("Ready to merge.")

    merges = [r for r in github.since(mark) if (r.method, r.path) == MERGE]
    assert len(merges) == 1 and merges[0].json() == {"merge_method": "squash"}
    assert github_problems(merges[0]) == []
    with yard.store() as store:
        decided_as = store.get_approval(approval.id)
    assert (decided_as.status, decided_as.decided_by, decided_as.decided_via) == (
        ApprovalStatus.APPROVED,
        "web:operator",
        "web",
    )
    assert decided_as.reason == "Diff read, checks green: ship it."
    assert console.errors == []


def test_a_running_tasks_log_updates_live(page: Page, console: Console, yard: Yard) -> None:
    event_id = yard.deliver("issues", issue())
    task_id = yard.task_of(event_id, "running")
    wait_for(lambda: "first line" in yard.log_text(task_id), 30, "the agent's first line")
    sign_in(page, yard, f"/ui/tasks/{task_id}")
    log = page.locator("ol.log")
    expect(log).to_contain_text("first line: looking at the issue")
    expect(log).not_to_contain_text("second line")
    expect(page.locator("[data-log-state]")).to_contain_text("Live")
    page.evaluate("window.__samePage = 'not reloaded'")

    yard.open_gate("gate-1", task_id)
    expect(log).to_contain_text("second line: <b>found it</b>", timeout=LIVE_SECONDS)
    assert log.locator("b").count() == 0  # a log line is text, never HTML
    assert page.evaluate("window.__samePage") == "not reloaded"
    expect(page.locator("[data-task-status]")).to_have_attribute("data-task-status", "running")

    yard.open_gate("gate-2", task_id)
    expect(page.locator("[data-task-status]")).to_have_attribute(
        "data-task-status", "succeeded", timeout=LIVE_SECONDS
    )
    # Once ended, the page shows the task as it ended (rendered again, the stream closed).
    expect(page.locator("[data-log-state]")).to_contain_text("lines.", timeout=LIVE_SECONDS)
    expect(log).to_contain_text("a plain third line")
    expect(log.locator("li")).to_have_count(_lines(yard, task_id))
    assert console.errors == []


def _lines(yard: Yard, task_id: str) -> int:
    return sum(1 for line in yard.log_text(task_id).splitlines() if line.strip())


def test_every_page_shows_without_console_errors(page: Page, console: Console, yard: Yard) -> None:
    ignored = yard.deliver("ping", {"zen": "<script>window.__pwned = 1</script>", "hook_id": 1})
    event_id = yard.deliver("issues", issue())
    task_id = yard.task_of(event_id, "running")
    sign_in(page, yard)
    pages = [
        ("/", "Overview"),
        ("/ui/events", "Events"),
        (f"/ui/events/{ignored}", f"Event {ignored}"),
        (f"/ui/events/{event_id}", f"Event {event_id}"),
        ("/ui/tasks", "Tasks"),
        (f"/ui/tasks/{task_id}", f"Task {task_id}"),
        ("/ui/approvals", "Approvals"),
        ("/ui/dlq", "Dead letters"),
        ("/ui/dlq?status=all", "Dead letters"),
    ]
    for path, heading in pages:
        answer = page.goto(yard.url + path)
        assert answer is not None and answer.status == 200, path
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
    page.goto(f"{yard.url}/ui/events/{ignored}")
    expect(page.locator("pre.body")).to_contain_text("<script>window.__pwned = 1</script>")
    assert page.evaluate("window.__pwned") is None
    page.goto(f"{yard.url}/ui/tasks/{task_id}")
    expect(page.locator("[data-log-state]")).to_contain_text("Live")
    yard.open_gate("gate-1", task_id)
    yard.open_gate("gate-2", task_id)
    expect(page.locator("[data-log-state]")).to_contain_text("lines.", timeout=LIVE_SECONDS)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{yard.url}/ui/login")
    assert console.errors == []
