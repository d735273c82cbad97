"""The console driven in Chromium: the flows an operator goes through, end to end."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.browser.conftest import screenshot
from tests.conftest import Personas
from vaults.models import Vault

pytestmark = pytest.mark.slow


def test_an_operator_signs_in_and_creates_a_vault(
    open_page: Callable[..., Page], owner: User, personas: Personas
) -> None:
    page = open_page(owner)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    screenshot(page, "overview")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Vaults").click()
    expect(page.get_by_role("link", name=personas.vault.name)).to_be_visible()
    screenshot(page, "vault-list")
    page.get_by_role("link", name="Create vault").click()
    screenshot(page, "vault-create")
    page.get_by_label("Name", exact=True).fill("browser-vault")
    page.get_by_label("Soft-delete retention (days)").fill("30")
    page.get_by_label("Purge protection").check()
    page.get_by_label("Tags").fill("env=test")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("Vault browser-vault created.")).to_be_visible()
    vault = Vault.objects.get(name="browser-vault")
    assert vault.soft_delete_retention_days == 30 and vault.purge_protection
    assert vault.tags == {"env": "test"}


def test_a_bad_vault_name_is_explained_beside_the_field(
    open_page: Callable[..., Page], owner: User, personas: Personas
) -> None:
    page = open_page(owner)
    page.goto("/vaults/new/")
    page.get_by_label("Name", exact=True).fill("9lives")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("start with a letter")).to_be_visible()
    # The fragment was swapped in place: the page around it is still there.
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    assert not Vault.objects.filter(name="9lives").exists()


def test_filters_push_the_url_and_survive_a_reload(
    open_page: Callable[..., Page], owner: User, personas: Personas
) -> None:
    page = open_page(owner)
    page.goto("/vaults/")
    page.get_by_label("SKU").select_option("premium")
    page.wait_for_url("**/vaults/?*sku=premium*")
    expect(page.get_by_text("No vaults you can see with these filters.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("SKU")).to_have_value("premium")
    page.go_back()
    expect(page.get_by_role("link", name=personas.vault.name)).to_be_visible()


def test_an_expired_session_sends_the_whole_page_to_sign_in(
    open_page: Callable[..., Page], owner: User, personas: Personas
) -> None:
    page = open_page(owner)
    page.goto("/vaults/")
    page.context.clear_cookies()
    page.get_by_label("SKU").select_option("premium")
    page.wait_for_url("**/signin/?next=**")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_reader_sees_no_write_controls_and_a_forged_post_is_refused(
    open_page: Callable[..., Page], personas: Personas
) -> None:
    page = open_page(personas.reader)
    page.goto(f"/vaults/{personas.vault.name}/properties/")
    expect(page.get_by_role("heading", name=personas.vault.name)).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.get_by_role("link", name="Delete vault")).to_have_count(0)
    screenshot(page, "vault-properties-reader")
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    forged = page.request.post(
        f"/vaults/{personas.vault.name}/delete/",
        headers={"X-CSRFToken": token, "Referer": page.url},
    )
    assert forged.status == 403
    assert Vault.objects.get(pk=personas.vault.pk).deleted_at is None
