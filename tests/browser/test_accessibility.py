"""The console's pages against axe-core's WCAG 2 A and AA rules, at desktop and phone widths."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from accounts.models import User
from tests.browser.conftest import WIDTHS, accessibility_violations
from tests.conftest import Personas

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_main_pages_pass_the_accessibility_rules(
    open_page: Callable[..., Page], owner: User, personas: Personas, width: int
) -> None:
    vault, group = personas.vault.name, personas.vault.resource_group.name
    page = open_page(owner, width=width, audit=True)
    found = {}
    for path in (
        "/",
        "/groups/",
        f"/groups/{group}/",
        "/vaults/",
        "/vaults/new/",
        f"/vaults/{vault}/properties/",
        f"/search/?q={vault}",
    ):
        page.goto(path)
        violations = accessibility_violations(page)
        if violations:
            found[path] = violations
    assert not found, found


def test_the_sign_in_page_passes_the_accessibility_rules(open_page: Callable[..., Page]) -> None:
    page = open_page(audit=True)
    page.goto("/signin/")
    assert accessibility_violations(page) == []
