"""Console pages for resource groups and vaults, with the console's personas, and what every
console page shares: sign-in for htmx requests and refusals as messages."""

from typing import Any

import pytest
from django.test import Client

from tests.conftest import Personas
from tests.console import htmx_get, htmx_post, is_fragment, text
from tests.factories import UserFactory, VaultFactory
from vaults import services as vault_services
from vaults.models import ActivityEntry, Operation, ResourceGroup, Result, Vault

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_(client: Client, personas: Personas) -> Any:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


# --- what every page shares -------------------------------------------------------------


def test_an_htmx_request_without_a_session_sends_the_page_to_sign_in(client: Client) -> None:
    response = client.get(
        "/vaults/?sku=standard",
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/vaults/?sku=standard",
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/signin/?next=/vaults/%3Fsku%3Dstandard"


def test_a_plain_request_without_a_session_is_redirected_to_sign_in(client: Client) -> None:
    response = client.get("/groups/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/groups/"


def test_a_refusal_in_an_htmx_request_is_an_alert_swapped_into_the_alert_region(
    as_: Any, personas: Personas
) -> None:
    group = personas.vault.resource_group.name
    response = htmx_post(as_("reader"), f"/groups/{group}/delete/")
    assert response.status_code == 404  # the reader cannot see the group at all
    response = htmx_post(as_("reader"), f"/vaults/{personas.vault.name}/delete/")
    assert response.status_code == 403
    assert response["HX-Retarget"] == "#alerts"
    assert is_fragment(response)
    assert 'role="alert"' in text(response)
    assert "Caller is not authorized" in text(response)
    assert Vault.objects.get(pk=personas.vault.pk).deleted_at is None


def test_a_refused_plain_post_is_a_page_with_the_message_and_its_status(
    as_: Any, personas: Personas
) -> None:
    response = as_("reader").post(f"/vaults/{personas.vault.name}/properties/", {"sku": "premium"})
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in text(response)
    assert Vault.objects.get(pk=personas.vault.pk).sku == "standard"


# --- resource groups --------------------------------------------------------------------


def test_groups_are_listed_for_whoever_may_see_them(as_: Any, personas: Personas) -> None:
    group = personas.vault.resource_group.name
    assert group in text(as_("owner").get("/groups/"))
    assert group not in text(as_("outsider").get("/groups/"))


@pytest.mark.parametrize("persona", ["crypto_user", "reader", "outsider"])
def test_only_who_may_create_groups_sees_the_create_button(as_: Any, persona: str) -> None:
    assert "Create resource group" not in text(as_(persona).get("/groups/"))


def test_a_superuser_creates_a_group(client: Client, owner: Any) -> None:
    client.force_login(owner)
    assert "Create resource group" in text(client.get("/groups/"))
    response = htmx_post(client, "/groups/new/", {"name": "team-rg", "location": "West Europe"})
    assert response["HX-Redirect"] == "/groups/team-rg/"
    assert ResourceGroup.objects.get(name="team-rg").location == "westeurope"


def test_a_bad_group_name_is_shown_beside_its_field_and_changes_nothing(
    client: Client, owner: Any
) -> None:
    client.force_login(owner)
    response = htmx_post(client, "/groups/new/", {"name": "ends.", "location": "westeurope"})
    assert response.status_code == 200 and is_fragment(response)
    assert "must not end with a period" in text(response)
    assert not ResourceGroup.objects.filter(name="ends.").exists()


def test_a_taken_group_name_is_a_form_error(client: Client, owner: Any, personas: Personas) -> None:
    client.force_login(owner)
    name = personas.vault.resource_group.name.upper()
    response = client.post("/groups/new/", {"name": name, "location": "westeurope"})
    assert response.status_code == 200
    assert "already exists" in text(response)


def test_group_detail_is_404_for_outsiders(as_: Any, personas: Personas) -> None:
    group = personas.vault.resource_group.name
    assert as_("outsider").get(f"/groups/{group}/").status_code == 404
    page = text(as_("owner").get(f"/groups/{group}/"))
    assert personas.vault.name in page and "Delete" in page


def test_a_group_with_vaults_is_not_deleted(as_: Any, personas: Personas) -> None:
    group = personas.vault.resource_group.name
    response = as_("owner").post(f"/groups/{group}/delete/")
    assert response.status_code == 409
    assert "still holds 1 vault" in text(response)
    assert ResourceGroup.objects.filter(name=group).exists()


def test_an_empty_group_is_deleted_after_confirmation(client: Client, owner: Any) -> None:
    group = ResourceGroup.objects.create(name="empty-rg", location="westeurope")
    client.force_login(owner)
    assert "Delete the resource group" in text(client.get("/groups/empty-rg/delete/"))
    response = client.post("/groups/empty-rg/delete/")
    assert response.status_code == 303 and response["Location"] == "/groups/"
    assert not ResourceGroup.objects.filter(pk=group.pk).exists()


# --- vaults ------------------------------------------------------------------------------


def test_vault_list_filters_and_answers_htmx_with_the_table_only(
    as_: Any, personas: Personas
) -> None:
    group = personas.vault.resource_group
    VaultFactory.create(name="premium-one", resource_group=group, sku="premium")
    client = as_("owner")
    page = text(client.get("/vaults/"))
    assert personas.vault.name in page and "premium-one" in page
    fragment = htmx_get(client, "/vaults/", sku="premium")
    assert is_fragment(fragment)
    assert "premium-one" in text(fragment) and personas.vault.name not in text(fragment)
    assert "<select" not in text(fragment)


def test_vault_list_costs_the_same_queries_for_1_or_20_vaults(
    as_: Any, personas: Personas, django_assert_max_num_queries: Any
) -> None:
    client = as_("owner")
    client.get("/vaults/")
    with django_assert_max_num_queries(12) as few:
        client.get("/vaults/")
    for number in range(20):
        VaultFactory.create(name=f"many-{number}", resource_group=personas.vault.resource_group)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/vaults/")


@pytest.mark.parametrize("persona", ["crypto_user", "reader", "outsider"])
def test_who_may_not_create_vaults_has_no_create_button_nor_form(as_: Any, persona: str) -> None:
    client = as_(persona)
    assert "Create vault" not in text(client.get("/vaults/"))
    assert client.get("/vaults/new/").status_code == 404


def test_vault_creation_shows_azures_rules_beside_the_fields(as_: Any, personas: Personas) -> None:
    response = htmx_post(
        as_("owner"),
        "/vaults/new/",
        {
            "name": "a--b",
            "resource_group": personas.vault.resource_group.name,
            "sku": "standard",
            "retention_days": "3",
            "permission_model": "rbac",
            "tags": "no equals sign",
        },
    )
    page = text(response)
    assert response.status_code == 200 and is_fragment(response)
    assert "contain no &#x27;--&#x27;" in page
    assert "greater than or equal to 7" in page
    assert "Line 1 is not name=value" in page
    assert not Vault.objects.filter(name="a--b").exists()


def test_a_vault_is_created_with_every_property(as_: Any, personas: Personas) -> None:
    group = personas.vault.resource_group.name
    response = htmx_post(
        as_("owner"),
        "/vaults/new/",
        {
            "name": "Team-Vault",
            "resource_group": group,
            "location": "North Europe",
            "sku": "premium",
            "retention_days": "30",
            "purge_protection": "on",
            "permission_model": "access_policy",
            "tags": "env=prod\nteam = payments",
        },
    )
    assert response["HX-Redirect"] == "/vaults/team-vault/"
    vault = Vault.objects.get(name="team-vault")
    assert (vault.location, vault.sku, vault.soft_delete_retention_days) == (
        "northeurope",
        "premium",
        30,
    )
    assert vault.purge_protection and vault.permission_model == "access_policy"
    assert vault.tags == {"env": "prod", "team": "payments"}


def test_a_taken_vault_name_is_a_form_error(as_: Any, personas: Personas) -> None:
    response = as_("owner").post(
        "/vaults/new/",
        {
            "name": personas.vault.name,
            "resource_group": personas.vault.resource_group.name,
            "sku": "standard",
            "retention_days": "90",
            "permission_model": "rbac",
        },
    )
    assert response.status_code == 200
    assert "is already in use" in text(response)


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("crypto_user", 404), ("reader", 200), ("outsider", 404)],
)
def test_vault_properties_by_persona(
    as_: Any, personas: Personas, persona: str, status: int
) -> None:
    response = as_(persona).get(f"/vaults/{personas.vault.name}/properties/")
    assert response.status_code == status
    if status == 200:
        page = text(response)
        assert personas.vault.uri in page
        editable = persona == "owner"
        assert ('id="vault-properties"' in page) is editable
        assert ("Delete vault" in page) is editable


def test_vault_tags_are_edited_and_purge_protection_stays_on(as_: Any, personas: Personas) -> None:
    client = as_("owner")
    url = f"/vaults/{personas.vault.name}/properties/"
    client.post(url, {"sku": "standard", "purge_protection": "on", "tags": "a=1"})
    vault = Vault.objects.get(pk=personas.vault.pk)
    assert vault.purge_protection and vault.tags == {"a": "1"}
    page = text(client.get(url))
    assert 'name="purge_protection"' in page and "disabled" in page
    client.post(url, {"sku": "standard", "tags": ""})
    assert Vault.objects.get(pk=vault.pk).purge_protection


def test_a_vault_with_keys_is_soft_deleted_after_confirmation(
    as_: Any, personas: Personas, make_key: Any
) -> None:
    make_key("k1", kty="EC")
    client = as_("owner")
    url = f"/vaults/{personas.vault.name}/delete/"
    assert "and its 1 key?" in text(client.get(url))
    response = htmx_post(client, url, {"with_keys": "yes"})
    assert response["HX-Redirect"] == "/vaults/"
    vault = Vault.objects.get(pk=personas.vault.pk)
    assert vault.deleted_at is not None
    assert "recovered for 90 days" in text(client.get("/vaults/"))


# --- search ------------------------------------------------------------------------------


def test_search_finds_vaults_and_keys_by_name_and_tag(
    as_: Any, personas: Personas, make_key: Any
) -> None:
    make_key("payments-signer", kty="EC", tags={"team": "payments"})
    Vault.objects.filter(pk=personas.vault.pk).update(tags={"env": "prod"})
    client = as_("reader")
    by_tag = text(client.get("/search/", {"q": "team=payments"}))
    assert "payments-signer" in by_tag
    by_name = text(client.get("/search/", {"q": "signer"}))
    assert "payments-signer" in by_name
    by_vault_tag = text(client.get("/search/", {"q": "prod"}))
    assert personas.vault.name in by_vault_tag
    nothing = text(as_("outsider").get("/search/", {"q": "signer"}))
    assert "payments-signer" not in nothing and "No keys match." in nothing


def test_an_empty_submission_is_answered_with_the_fields_errors(client: Client, owner: Any) -> None:
    client.force_login(owner)
    response = htmx_post(client, "/groups/new/", {})
    assert response.status_code == 200
    assert text(response).count("This field is required.") == 2


def test_a_key_scoped_crypto_user_reaches_their_key_but_not_the_vaults_properties(
    client: Client, system: Any, vault: Vault, make_key: Any
) -> None:
    make_key("mine", kty="EC")
    make_key("not-mine", kty="EC")
    alice = UserFactory.create(username="alice")
    scope = f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault"
    vault_services.role_assignment_create(
        actor=system,
        assignee="alice",
        role="Key Vault Crypto User",
        scope=f"{scope}/vaults/{vault.name}/keys/mine",
    )
    client.force_login(alice)
    keys = text(client.get(f"/vaults/{vault.name}/keys/"))
    assert "mine" in keys and "not-mine" not in keys
    assert client.get(f"/vaults/{vault.name}/keys/mine/").status_code == 200
    assert "Properties" not in keys
    assert client.get(f"/vaults/{vault.name}/properties/").status_code == 404


def test_a_vault_is_not_deleted_past_keys_created_after_the_confirmation(
    as_: Any, personas: Personas, make_key: Any
) -> None:
    client = as_("owner")
    url = f"/vaults/{personas.vault.name}/delete/"
    assert "and its" not in text(client.get(url))
    make_key("arrived-meanwhile", kty="EC")
    response = client.post(url)
    assert response.status_code == 409
    assert Vault.objects.get(pk=personas.vault.pk).deleted_at is None


def test_a_forged_vault_creation_reaches_the_service_and_is_recorded(
    as_: Any, personas: Personas
) -> None:
    response = as_("reader").post(
        "/vaults/new/",
        {
            "name": "forged-vault",
            "resource_group": personas.vault.resource_group.name,
            "sku": "standard",
            "retention_days": "90",
            "permission_model": "rbac",
        },
    )
    assert response.status_code == 403
    assert not Vault.objects.filter(name="forged-vault").exists()
    refused = ActivityEntry.objects.filter(operation=Operation.VAULT_PUT, result=Result.FORBIDDEN)
    assert refused.filter(actor_name=personas.reader.username).exists()


def test_a_stale_csrf_token_in_an_htmx_request_is_an_alert(
    personas: Personas,
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.owner)
    response = client.post(
        f"/vaults/{personas.vault.name}/properties/",
        {"sku": "premium"},
        headers={"HX-Request": "true", "X-CSRFToken": "stale"},
    )
    assert response.status_code == 403
    assert response["HX-Retarget"] == "#alerts"
    assert "out of date" in text(response) and is_fragment(response)


def test_a_missing_page_says_so_in_the_consoles_layout(as_: Any) -> None:
    client = as_("owner")
    unknown_vault = client.get("/vaults/no-such-vault/keys/")
    assert unknown_vault.status_code == 404
    assert "No vault &#x27;no-such-vault&#x27; that you can see." in text(unknown_vault)
    assert '<nav class="primary"' in text(unknown_vault)
    unknown_url = client.get("/no/such/page/")
    assert unknown_url.status_code == 404
    assert "There is nothing here that you can see." in text(unknown_url)
