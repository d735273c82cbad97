"""The console in a real browser: Debian's Chromium driven by Playwright against the live
HTTPS deployment of the test process (the same server the SDK tests use).

Browser downloads are impossible here, so Playwright starts the system's Chromium by path.
Screenshots are written to var/test-artifacts/screenshots/, at 1280 and 390 px wide.
"""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from accounts.models import User
from tests import twofactor
from tests.live import LiveDeployment
from tests.processes import ROOT

SCREENSHOTS = ROOT / "var" / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"  # what tests.factories.UserFactory gives everyone
WIDTHS = {"desktop": 1280, "phone": 390}
# Flags that keep Chromium from reaching for Google's services on a machine with no
# internet, and let it run as root in a container.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("The browser tests need Debian's chromium package (apt-get install chromium).")
    # Playwright's synchronous API runs an event loop in this thread while it is open; the
    # tests' own database work is synchronous all the same.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE")
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def console_url(deployment: LiveDeployment, transactional_db: None) -> str:
    return f"https://localhost:{deployment.port}"


@pytest.fixture
def open_page(browser: Browser, console_url: str) -> Iterator[Callable[..., Page]]:
    """A page in a browser context of its own (its own cookies), signed in as `user`."""
    contexts = []
    # What no console page may do: break its Content-Security-Policy or any script, or
    # reach for anything but its own host.
    errors: list[str] = []
    elsewhere: list[str] = []

    def open_as(
        user: User | None = None, *, width: int = WIDTHS["desktop"], audit: bool = False
    ) -> Page:
        context = browser.new_context(
            base_url=console_url,
            ignore_https_errors=True,
            viewport={"width": width, "height": 900},
            # An accessibility audit injects axe-core, which the page's policy would refuse.
            bypass_csp=audit,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda message: _note_error(message.type, message.text, errors))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((console_url, "data:", "blob:"))
                else elsewhere.append(request.url)
            ),
        )
        if user is not None:
            sign_in(page, user)
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert not errors, errors
    assert not elsewhere, elsewhere


def _note_error(kind: str, text: str, errors: list[str]) -> None:
    # A refused request (a 403 or 404 the test provoked) is logged by the browser as an
    # error too; only script and policy errors count here.
    if kind == "error" and "Failed to load resource" not in text:
        errors.append(text)


def sign_in(page: Page, user: User) -> None:
    """Sign in as a person does; a superuser also types their authenticator's code."""
    device = twofactor.enrol(user) if user.is_superuser else None
    page.goto("/signin/")
    page.get_by_label("User name").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    if device is not None:
        page.wait_for_url(lambda url: urlsplit(url).path == "/signin/code/")
        page.get_by_label("Code from your authenticator app").fill(twofactor.code(device))
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")


def screenshot(page: Page, name: str) -> None:
    """The page as it is now, at each width, saved under var/test-artifacts/screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        path: Path = SCREENSHOTS / f"{name}-{label}-{width}.png"
        page.screenshot(path=path, full_page=True)
    if size is not None:
        page.set_viewport_size(size)
    # Taking a screenshot leaves empty style attributes behind, which htmx would copy in its
    # next swap against the page's policy: start again from a fresh copy of the page.
    page.goto(page.url)


AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"


def accessibility_violations(page: Page) -> list[str]:
    """What axe-core (WCAG 2 A and AA rules) finds wrong with the page as it is now."""
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `npm ci --prefix tests/js`.")
    page.add_script_tag(path=AXE)
    found = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
        ".map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)"
    )
    return list(found)
