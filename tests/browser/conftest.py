"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, and a page that
records every console error and uncaught exception (each test asserts there were none)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

CHROMIUM = Path(os.environ.get("TASKYARD_CHROMIUM", "/usr/bin/chromium"))
INSTALL = "bash .ci/install-browser (Debian's chromium and chromium-driver)"


@dataclass
class Console:
    """What the pages said went wrong: console messages of type error, and page errors."""

    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running in this thread while it
    is open, which every asyncio test after it would trip over."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found; install it with: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()

    def said(message: ConsoleMessage) -> None:
        if message.type == "error":
            console.errors.append(f"{page.url}: console error: {message.text} {message.location}")

    def raised(error: Error) -> None:
        console.errors.append(f"{page.url}: page error: {error}")

    page.on("console", said)
    page.on("pageerror", raised)
    yield page
    context.close()
    assert console.errors == [], "the pages reported errors"
