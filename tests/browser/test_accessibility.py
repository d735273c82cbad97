"""The console's pages against axe-core's WCAG 2 A and AA rules, at desktop and phone widths."""

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from accounts.models import User
from keys.models import KeyVersion
from tests import twofactor
from tests.browser.conftest import PASSWORD, WIDTHS, accessibility_violations
from tests.conftest import Personas
from vaults import services as vault_services

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_main_pages_pass_the_accessibility_rules(
    open_page: Callable[..., Page],
    owner: User,
    personas: Personas,
    make_key: Callable[..., KeyVersion],
    width: int,
) -> None:
    vault, group = personas.vault.name, personas.vault.resource_group.name
    version = make_key("audited", kty="RSA").version
    key = f"/vaults/{vault}/keys/audited"
    application = vault_services.application_create(actor=owner, display_name="audited-app")
    vault_services.alert_rule_create(
        actor=owner,
        name="audited-rule",
        event_types=["KeyNearExpiry", "UnauthorizedAccessAttempts"],
        channel="email",
        target="keys@example.com",
        vault_name=vault,
    )
    page = open_page(owner, width=width, audit=True)
    found = {}
    for path in (
        "/",
        "/groups/",
        f"/groups/{group}/",
        f"/groups/{group}/access/",
        "/vaults/",
        "/vaults/new/",
        f"/vaults/{vault}/keys/",
        f"/vaults/{vault}/deleted-keys/",
        f"/vaults/{vault}/new-key/",
        f"/vaults/{vault}/import-key/",
        f"/vaults/{vault}/restore-key/",
        f"{key}/",
        f"{key}/versions/{version}/",
        f"{key}/versions/{version}/playground/",
        f"{key}/versions/{version}/playground/?family=sign",
        f"{key}/rotation-policy/",
        f"{key}/access/",
        f"/vaults/{vault}/access/",
        f"/vaults/{vault}/access/effective/",
        f"/vaults/{vault}/activity/",
        f"/vaults/{vault}/properties/",
        "/activity/",
        "/applications/",
        f"/applications/{application.client_id}/",
        "/alerts/",
        "/alerts/new/",
        "/alerts/audited-rule/delete/",
        f"/search/?q={vault}",
    ):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        violations = accessibility_violations(page)
        # Wide tables scroll inside their own frame; the page itself never scrolls sideways.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            violations.append(f"the page is {overflow} px wider than the window")
        if violations:
            found[path] = violations
    assert not found, found


def test_the_sign_in_page_passes_the_accessibility_rules(open_page: Callable[..., Page]) -> None:
    page = open_page(audit=True)
    page.goto("/signin/")
    assert accessibility_violations(page) == []


@pytest.mark.parametrize("width", WIDTHS.values())
def test_the_two_factor_pages_pass_the_accessibility_rules(
    open_page: Callable[..., Page], personas: Personas, width: int
) -> None:
    page = open_page(personas.reader, width=width, audit=True)
    page.goto("/account/two-factor/")
    page.get_by_role("img", name="QR code holding your authenticator's secret").wait_for()
    assert accessibility_violations(page) == []
    device = twofactor.enrol(personas.crypto_user)
    other = open_page(width=width, audit=True)
    other.goto("/signin/")
    other.get_by_label("User name").fill(personas.crypto_user.username)
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    other.wait_for_url(lambda url: urlsplit(url).path == "/signin/code/")
    assert accessibility_violations(other) == []
    assert device.confirmed


def test_signing_in_and_moving_around_work_from_the_keyboard(
    open_page: Callable[..., Page], owner: User, personas: Personas
) -> None:
    device = twofactor.enrol(owner)
    page = open_page()
    page.goto("/signin/")
    # The user name field has the focus from the start, and so has the code's.
    page.keyboard.type(owner.username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == "/signin/code/")
    page.keyboard.type(twofactor.code(device))
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    # The first stop is the skip link, which leads past the navigation to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.goto("/vaults/")
    link = page.get_by_role("link", name=personas.vault.name)
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/vaults/{personas.vault.name}/keys/")
