"""Console access pages: role assignments at resource group, vault and key scope, access
policies and their templates, switching a vault's permission model, effective access and the
principal picker, with the console's personas."""

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import User
from keys.models import Key
from tests.conftest import Personas
from tests.console import htmx_get, htmx_post, is_fragment, text
from tests.factories import UserFactory, VaultFactory
from vaults import services
from vaults.forms_access import ACCESS_POLICY_TEMPLATES, KEY_PERMISSION_GROUPS
from vaults.models import KEY_PERMISSIONS, RoleAssignment, Vault
from vaults.permissions import Action, may, policy_entries
from vaults.selectors import PRINCIPAL_SUGGESTIONS

pytestmark = pytest.mark.django_db

CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
READER = "21090545-7ca7-4776-b22c-e363652d74d2"


@pytest.fixture
def as_(client: Client, personas: Personas) -> Callable[[str], Client]:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


@pytest.fixture
def key(make_key: Callable[..., Any]) -> Key:
    version = make_key("signer", kty="EC")
    return version.key


@pytest.fixture
def alice(db: None) -> User:
    return UserFactory.create(username="alice", display_name="Alice Liddell")


def access_url(vault: Vault) -> str:
    return f"/vaults/{vault.name}/access/"


def vault_scope(vault: Vault) -> str:
    group = vault.resource_group.name
    return f"/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{vault.name}"


def fresh(key: Key) -> Key:
    """The key as stored now, with its vault's current permission model."""
    return Key.objects.select_related("vault__resource_group").get(pk=key.pk)


def use_access_policies(vault: Vault, system: User) -> None:
    services.vault_permission_model_set(
        actor=system, name=vault.name, permission_model=Vault.PermissionModel.ACCESS_POLICY
    )


def ticked(page: str, form_id: str = "policy-form") -> set[str]:
    """The key permissions whose boxes are ticked in the access-policy form of `page`."""
    form = page[page.index(f'id="{form_id}"') :]
    form = form[: form.index("</form>")]
    boxes = re.findall(r"<input[^>]*>", form)
    return {
        re.search(r'value="([^"]*)"', box)[1]  # type: ignore[index]
        for box in boxes
        if 'type="checkbox"' in box and " checked" in box
    }


def template_post(principal: str, template: str, **extra: Any) -> dict[str, Any]:
    return {"principal": principal, "principal_kind": "", "template": template, **extra}


# --- the vault's Access tab -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("crypto_user", 200), ("reader", 200), ("outsider", 404)],
)
def test_access_tab_by_persona(as_: Any, personas: Personas, persona: str, status: int) -> None:
    response = as_(persona).get(access_url(personas.vault))
    assert response.status_code == status
    if status != 200:
        return
    page = text(response)
    assert 'aria-current="page">Access</a>' in page
    owner = persona == "owner"
    assert ('id="assignment-form"' in page) is owner
    assert ("/role-assignments/" in page) is owner
    assert ("Switch to access policies" in page) is owner
    if persona == "crypto_user":
        assert "You may not read the role assignments" in page
        assert f"/access/effective/?principal={personas.crypto_user.username}" in page
    else:
        assert "Key Vault Crypto User" in page and "Key Vault Reader" in page


def test_assignments_are_listed_with_where_they_were_made(as_: Any, personas: Personas) -> None:
    page = text(as_("owner").get(access_url(personas.vault)))
    group = personas.vault.resource_group.name
    # The owner's roles come from the resource group, the reader's from the vault itself.
    assert f'<a href="/groups/{group}/access/">Resource group {group}</a>' in page
    assert "(inherited)" in page and "This vault" in page
    # A reader of the vault reads the assignments made on it, not those on its group.
    page = text(as_("reader").get(access_url(personas.vault)))
    assert "Key Vault Reader" in page and "(inherited)" not in page


def test_owner_assigns_a_role_on_the_vault_and_removes_it(
    as_: Any, personas: Personas, key: Key, alice: User
) -> None:
    client = as_("owner")
    vault = personas.vault
    assert not may(alice, Action.KEY_SIGN, key)
    response = htmx_post(
        client, access_url(vault), {"principal": "alice", "principal_kind": "", "role": CRYPTO_USER}
    )
    assert response["HX-Redirect"] == access_url(vault)
    assignment = RoleAssignment.objects.get(user=alice)
    assert assignment.scope == vault_scope(vault)
    assert may(alice, Action.KEY_SIGN, key)
    page = text(client.get(access_url(vault)))
    assert "Key Vault Crypto User assigned to Alice Liddell at vault" in page
    assert "Alice Liddell" in page

    confirm_url = f"/role-assignments/{assignment.uid}/delete/?next={access_url(vault)}"
    confirm = htmx_get(client, confirm_url)
    assert is_fragment(confirm)
    assert "Remove <strong>Key Vault Crypto User</strong> from <strong>Alice Liddell" in text(
        confirm
    )
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()
    response = client.post(
        f"/role-assignments/{assignment.uid}/delete/", {"next": access_url(vault)}
    )
    assert response.status_code == 303 and response["Location"] == access_url(vault)
    assert not RoleAssignment.objects.filter(pk=assignment.pk).exists()
    assert not may(alice, Action.KEY_SIGN, key)


def test_a_group_principal_is_assigned_and_its_members_gain_the_right(
    as_: Any, personas: Personas, key: Key, alice: User
) -> None:
    team = Group.objects.create(name="payments-team")
    alice.groups.add(team)
    response = as_("owner").post(
        access_url(personas.vault),
        {"principal": "payments-team", "principal_kind": "group", "role": CRYPTO_USER},
    )
    assert response.status_code == 303
    assert RoleAssignment.objects.get(group=team).role_id.hex == CRYPTO_USER.replace("-", "")
    assert may(alice, Action.KEY_ENCRYPT, key)


def test_a_bad_assignment_is_shown_in_the_form_and_changes_nothing(
    as_: Any, personas: Personas
) -> None:
    before = RoleAssignment.objects.count()
    response = htmx_post(
        as_("owner"),
        access_url(personas.vault),
        {"principal": "nobody-by-that-name", "principal_kind": "", "role": CRYPTO_USER},
    )
    assert response.status_code == 200 and is_fragment(response)
    page = text(response)
    assert page.lstrip().startswith('<form id="assignment-form"')
    assert "No user, group or application matches" in page
    missing_role = htmx_post(
        as_("owner"), access_url(personas.vault), {"principal": "reader", "role": ""}
    )
    assert "This field is required." in text(missing_role)
    assert RoleAssignment.objects.count() == before


def test_an_existing_assignment_is_a_form_error(as_: Any, personas: Personas) -> None:
    response = as_("owner").post(
        access_url(personas.vault), {"principal": "reader", "principal_kind": "", "role": READER}
    )
    assert response.status_code == 200
    assert "The role assignment already exists." in text(response)


def test_a_readers_forged_assignment_and_removal_are_refused_and_change_nothing(
    as_: Any, personas: Personas, alice: User
) -> None:
    client = as_("reader")
    before = set(RoleAssignment.objects.values_list("uid", flat=True))
    response = htmx_post(
        client, access_url(personas.vault), {"principal": "alice", "role": CRYPTO_USER}
    )
    assert response.status_code == 403
    assert response["HX-Retarget"] == "#alerts" and is_fragment(response)
    assert "Caller is not authorized" in text(response)
    own = RoleAssignment.objects.get(user=personas.reader)
    response = client.post(f"/role-assignments/{own.uid}/delete/")
    assert response.status_code == 403
    assert set(RoleAssignment.objects.values_list("uid", flat=True)) == before


def test_assignments_outsiders_cannot_read_are_404(as_: Any, personas: Personas) -> None:
    assignment = RoleAssignment.objects.get(user=personas.reader)
    url = f"/role-assignments/{assignment.uid}/delete/"
    assert as_("outsider").get(url).status_code == 404
    assert as_("outsider").post(url).status_code == 404
    # The crypto user may use the vault's keys but not read who else may.
    assert as_("crypto_user").get(url).status_code == 404
    assert RoleAssignment.objects.filter(pk=assignment.pk).exists()


def test_a_removal_goes_back_only_to_a_page_of_this_host(as_: Any, personas: Personas) -> None:
    assignment = RoleAssignment.objects.get(user=personas.reader)
    response = as_("owner").post(
        f"/role-assignments/{assignment.uid}/delete/", {"next": "https://elsewhere.example/"}
    )
    assert response["Location"] == access_url(personas.vault)


def test_the_access_tab_costs_the_same_queries_for_few_or_many_assignments(
    as_: Any,
    personas: Personas,
    system: User,
    make_key: Callable[..., Any],
    django_assert_max_num_queries: Any,
) -> None:
    client = as_("owner")
    url = access_url(personas.vault)
    client.get(url)
    with django_assert_max_num_queries(40) as few:
        client.get(url)
    for number in range(12):
        person = UserFactory.create(username=f"person{number}", display_name=f"Person {number}")
        services.role_assignment_create(
            actor=system,
            assignee=person.username,
            role="Key Vault Reader",
            scope=vault_scope(personas.vault),
        )
        make_key(f"key{number}", kty="EC")
        services.role_assignment_create(
            actor=system,
            assignee=person.username,
            role="Key Vault Crypto User",
            scope=f"{vault_scope(personas.vault)}/keys/key{number}",
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = text(client.get(url))
    assert page.count("<td>Person 11</td>") == 2


# --- resource group and key scope -----------------------------------------------------------


def test_group_detail_links_to_its_access(as_: Any, personas: Personas) -> None:
    group = personas.vault.resource_group.name
    assert f'href="/groups/{group}/access/"' in text(as_("owner").get(f"/groups/{group}/"))


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("crypto_user", 404), ("reader", 404), ("outsider", 404)],
)
def test_group_access_by_persona(as_: Any, personas: Personas, persona: str, status: int) -> None:
    response = as_(persona).get(f"/groups/{personas.vault.resource_group.name}/access/")
    assert response.status_code == status


def test_a_group_assignment_is_inherited_by_its_vaults_and_keys(
    as_: Any, personas: Personas, key: Key, alice: User
) -> None:
    client = as_("owner")
    group = personas.vault.resource_group.name
    url = f"/groups/{group}/access/"
    response = htmx_post(
        client, url, {"principal": "alice", "principal_kind": "user", "role": CRYPTO_USER}
    )
    assert response["HX-Redirect"] == url
    assert RoleAssignment.objects.get(user=alice).scope == f"/resourceGroups/{group}"
    assert may(alice, Action.KEY_DECRYPT, key)
    vault_page = text(client.get(access_url(personas.vault)))
    row = vault_page[vault_page.index("<td>Alice Liddell</td>") :]
    row = row[: row.index("</tr>")]
    assert f"Resource group {group}</a>" in row and "(inherited)" in row
    assert "/role-assignments/" not in row  # removed where it was made
    assert "/role-assignments/" in text(client.get(url))


@pytest.mark.parametrize(
    ("persona", "status"),
    [("owner", 200), ("crypto_user", 200), ("reader", 200), ("outsider", 404)],
)
def test_key_access_by_persona(
    as_: Any, personas: Personas, key: Key, persona: str, status: int
) -> None:
    response = as_(persona).get(f"/vaults/{personas.vault.name}/keys/{key.name}/access/")
    assert response.status_code == status
    if status == 200:
        page = text(response)
        assert f'<a href="/vaults/{personas.vault.name}/keys/">Keys</a>' in page
        assert ('id="assignment-form"' in page) is (persona == "owner")


def test_a_missing_key_has_no_access_page(as_: Any, personas: Personas) -> None:
    assert as_("owner").get(f"/vaults/{personas.vault.name}/keys/nope/access/").status_code == 404


def test_a_key_assignment_applies_to_that_key_only(
    as_: Any, personas: Personas, make_key: Callable[..., Any], alice: User
) -> None:
    first = make_key("first", kty="EC").key
    second = make_key("second", kty="EC").key
    client = as_("owner")
    url = f"/vaults/{personas.vault.name}/keys/first/access/"
    response = client.post(url, {"principal": "alice", "role": CRYPTO_USER})
    assert response.status_code == 303 and response["Location"] == url
    assert may(alice, Action.KEY_SIGN, first) and not may(alice, Action.KEY_SIGN, second)
    key_page = text(client.get(url))
    assert "This key" in key_page and "Alice Liddell" in key_page
    vault_page = text(client.get(access_url(personas.vault)))
    keys_section = vault_page[vault_page.index('id="key-assignments"') :]
    assert f'<a href="{url}">first</a>' in keys_section and "Alice Liddell" in keys_section
    assert "Alice Liddell" not in vault_page[: vault_page.index('id="key-assignments"')]
    second_page = text(client.get(f"/vaults/{personas.vault.name}/keys/second/access/"))
    assert "Alice Liddell" not in second_page


# --- access policies ------------------------------------------------------------------------


def test_the_templates_are_azures() -> None:
    management = {
        "get",
        "list",
        "update",
        "create",
        "import",
        "delete",
        "recover",
        "backup",
        "restore",
    }
    assert {key: set(t.key_permissions) for key, t in ACCESS_POLICY_TEMPLATES.items()} == {
        "key-management": management,
        "key-secret-certificate-management": management,
        "sql-server-connector": {"get", "list", "unwrapKey", "wrapKey"},
    }
    grouped = [permission for _, _, choices in KEY_PERMISSION_GROUPS for permission, _ in choices]
    assert sorted(grouped) == sorted(KEY_PERMISSIONS)


@pytest.mark.parametrize("template", list(ACCESS_POLICY_TEMPLATES))
def test_a_template_ticks_its_permissions_and_they_are_saved(
    as_: Any, personas: Personas, system: User, alice: User, template: str
) -> None:
    vault = personas.vault
    use_access_policies(vault, system)
    client = as_("owner")
    url = f"/vaults/{vault.name}/access/policies/edit/"
    expected = set(ACCESS_POLICY_TEMPLATES[template].key_permissions)
    applied = htmx_post(client, url, {**template_post("alice", template), "apply": "template"})
    assert applied.status_code == 200 and is_fragment(applied)
    assert ticked(text(applied)) == expected
    assert policy_entries(vault) == []  # applying a template saves nothing
    boxes: dict[str, list[str]] = {}
    for field, _, choices in KEY_PERMISSION_GROUPS:
        boxes[field] = [permission for permission, _ in choices if permission in expected]
    response = htmx_post(client, url, {**template_post("alice", template), **boxes})
    assert response["HX-Redirect"] == access_url(vault)
    [entry] = policy_entries(vault)
    assert entry.principal == alice and set(entry.permissions) == expected


def test_without_javascript_a_template_is_applied_by_its_own_button(
    as_: Any, personas: Personas, system: User
) -> None:
    vault = personas.vault
    use_access_policies(vault, system)
    response = as_("owner").post(
        f"/vaults/{vault.name}/access/policies/edit/",
        {**template_post("alice", "sql-server-connector"), "apply": "template"},
    )
    page = text(response)
    assert response.status_code == 200 and "<html" in page
    assert ticked(page) == {"get", "list", "unwrapKey", "wrapKey"}
    assert 'value="alice"' in page


def test_a_policy_grants_key_operations_under_access_policies_and_is_removed(
    as_: Any, personas: Personas, system: User, key: Key, alice: User
) -> None:
    vault = personas.vault
    use_access_policies(vault, system)
    key = fresh(key)
    client = as_("owner")
    assert not may(alice, Action.KEY_WRAP, key)
    client.post(
        f"/vaults/{vault.name}/access/policies/edit/",
        {"principal": "alice", "principal_kind": "user", "keys_crypto": ["wrapKey", "unwrapKey"]},
    )
    assert may(alice, Action.KEY_WRAP, key) and not may(alice, Action.KEY_SIGN, key)
    page = text(client.get(access_url(vault)))
    assert "Unwrap Key, Wrap Key" in page
    edit = text(client.get(f"/vaults/{vault.name}/access/policies/edit/?principal=alice&kind=user"))
    assert "Access policy of Alice Liddell" in edit
    assert ticked(edit) == {"wrapKey", "unwrapKey"}
    delete_url = f"/vaults/{vault.name}/access/policies/delete/"
    confirm = htmx_get(client, delete_url, principal="alice", kind="user")
    assert is_fragment(confirm) and "Delete the access policy of <strong>Alice Liddell" in text(
        confirm
    )
    response = client.post(delete_url, {"principal": "alice", "kind": "user"})
    assert response.status_code == 303
    assert policy_entries(vault) == [] and not may(alice, Action.KEY_WRAP, key)


def test_a_policy_without_permissions_is_a_form_error(
    as_: Any, personas: Personas, system: User
) -> None:
    use_access_policies(personas.vault, system)
    response = htmx_post(
        as_("owner"),
        f"/vaults/{personas.vault.name}/access/policies/edit/",
        {"principal": "alice", "principal_kind": ""},
    )
    assert response.status_code == 200 and is_fragment(response)
    assert "Tick at least one key permission" in text(response)
    assert policy_entries(personas.vault) == []


def test_a_readers_forged_policy_change_is_refused(
    as_: Any, personas: Personas, system: User
) -> None:
    vault = personas.vault
    use_access_policies(vault, system)
    services.access_policy_set(
        actor=system, vault_name=vault.name, principal="crypto", key_permissions=["get"]
    )
    before = policy_entries(vault)
    client = as_("reader")
    page = text(client.get(access_url(vault)))
    assert "Add an access policy" not in page and "/access/policies/" not in page
    response = client.post(
        f"/vaults/{vault.name}/access/policies/edit/",
        {"principal": "reader", "keys_management": ["get", "list"]},
    )
    assert response.status_code == 403
    response = htmx_post(
        client,
        f"/vaults/{vault.name}/access/policies/delete/",
        {"principal": "crypto", "kind": "user"},
    )
    assert response.status_code == 403 and response["HX-Retarget"] == "#alerts"
    assert policy_entries(vault) == before


def test_policies_kept_under_rbac_are_shown_as_ignored(
    as_: Any, personas: Personas, system: User, alice: User
) -> None:
    services.access_policy_set(
        actor=system,
        vault_name=personas.vault.name,
        principal="alice",
        key_permissions=["get"],
    )
    page = text(as_("reader").get(access_url(personas.vault)))
    assert "Access policies (ignored)" in page and "Alice Liddell" in page


# --- switching the permission model ---------------------------------------------------------


def test_the_owner_switches_the_model_after_a_warning(as_: Any, personas: Personas) -> None:
    client = as_("owner")
    url = f"/vaults/{personas.vault.name}/access/model/"
    page = text(client.get(url))
    assert f"Switch {personas.vault.name} to Vault access policy?" in page
    assert "loses that access at once" in page and "Nothing is deleted" in page
    response = htmx_post(client, url, {"permission_model": "access_policy"})
    assert response["HX-Redirect"] == access_url(personas.vault)
    assert Vault.objects.get(pk=personas.vault.pk).permission_model == "access_policy"
    access = text(client.get(access_url(personas.vault)))
    assert "Switch to Azure RBAC" in access and "Add an access policy" in access
    client.post(url, {"permission_model": "rbac"})
    assert Vault.objects.get(pk=personas.vault.pk).permission_model == "rbac"


def test_a_switch_takes_effect_on_key_operations_at_once(
    as_: Any, personas: Personas, key: Key
) -> None:
    assert may(personas.crypto_user, Action.KEY_SIGN, key)
    as_("owner").post(
        f"/vaults/{personas.vault.name}/access/model/", {"permission_model": "access_policy"}
    )
    assert not may(personas.crypto_user, Action.KEY_SIGN, fresh(key))


@pytest.mark.parametrize("persona", ["reader", "crypto_user"])
def test_who_may_not_switch_sees_why_and_is_refused(
    as_: Any, personas: Personas, persona: str
) -> None:
    client = as_(persona)
    url = f"/vaults/{personas.vault.name}/access/model/"
    page = text(client.get(url))
    assert "which you do not hold here" in page and 'name="permission_model"' not in page
    assert client.post(url, {"permission_model": "access_policy"}).status_code == 403
    assert Vault.objects.get(pk=personas.vault.pk).permission_model == "rbac"


def test_outsiders_do_not_reach_any_access_page(as_: Any, personas: Personas, key: Key) -> None:
    client = as_("outsider")
    vault = personas.vault.name
    for url in (
        f"/vaults/{vault}/access/",
        f"/vaults/{vault}/access/effective/?principal=reader",
        f"/vaults/{vault}/access/policies/edit/",
        f"/vaults/{vault}/access/policies/delete/?principal=reader&kind=user",
        f"/vaults/{vault}/access/model/",
        f"/vaults/{vault}/keys/{key.name}/access/",
        f"/vaults/{vault}/keys/{key.name}/access/effective/",
    ):
        assert client.get(url).status_code == 404, url
    assert (
        client.post(f"/vaults/{vault}/access/model/", {"permission_model": "rbac"}).status_code
        == 404
    )


# --- effective access -----------------------------------------------------------------------


def rights_table(page: str, heading: str) -> str:
    section = page[page.index(f"<h3>{heading}</h3>") :]
    return section[: section.index("</table>")]


def right_row(table: str, label: str) -> str:
    row = table[table.index(f"<td>{label}<br>") :]
    return row[: row.index("</tr>")]


def test_effective_access_names_the_granting_assignment(as_: Any, personas: Personas) -> None:
    assignment = RoleAssignment.objects.get(user=personas.crypto_user)
    response = as_("owner").get(
        f"/vaults/{personas.vault.name}/access/effective/", {"principal": "crypto"}
    )
    page = text(response)
    keys = rights_table(page, "Keys")
    sign = right_row(keys, "Keys: Sign")
    assert "Allowed" in sign and "Key Vault Crypto User at" in sign
    assert vault_scope(personas.vault) in sign and str(assignment.uid) in sign
    assert "Denied" in right_row(keys, "Keys: Delete")
    management = rights_table(page, "Management")
    assert "Denied" in right_row(management, "Change the vault")


def test_effective_access_under_access_policies_names_the_policy_and_the_ignored_roles(
    as_: Any, personas: Personas, system: User
) -> None:
    vault = personas.vault
    use_access_policies(vault, system)
    services.access_policy_set(
        actor=system, vault_name=vault.name, principal="crypto", key_permissions=["verify"]
    )
    page = text(as_("owner").get(f"/vaults/{vault.name}/access/effective/?principal=crypto"))
    keys = rights_table(page, "Keys")
    verify = right_row(keys, "Keys: Verify")
    assert "Allowed" in verify and "Access policy" in verify
    sign = right_row(keys, "Keys: Sign")
    assert "Denied" in sign and "Ignored under this permission model: Key Vault Crypto User" in sign


def test_effective_access_at_key_scope_includes_the_keys_own_assignments(
    as_: Any, personas: Personas, system: User, key: Key, alice: User
) -> None:
    services.role_assignment_create(
        actor=system,
        assignee="alice",
        role="Key Vault Crypto Service Encryption User",
        scope=f"{vault_scope(personas.vault)}/keys/{key.name}",
    )
    url = f"/vaults/{personas.vault.name}/keys/{key.name}/access/effective/"
    page = text(as_("owner").get(url, {"principal": "alice"}))
    wrap = right_row(rights_table(page, "Keys"), "Keys: Wrap Key")
    assert "Allowed" in wrap and f"/keys/{key.name}" in wrap
    vault_page = text(
        as_("owner").get(f"/vaults/{personas.vault.name}/access/effective/?principal=alice")
    )
    assert 'class="badge ok"' not in rights_table(vault_page, "Keys")


def test_effective_access_answers_htmx_with_the_result_only(as_: Any, personas: Personas) -> None:
    response = htmx_get(
        as_("reader"), f"/vaults/{personas.vault.name}/access/effective/", principal="reader"
    )
    assert is_fragment(response)
    page = text(response)
    assert page.lstrip().startswith('<div id="effective">')
    assert "Key Vault Reader at" in page


def test_a_crypto_user_sees_its_own_access_but_not_others(as_: Any, personas: Personas) -> None:
    client = as_("crypto_user")
    url = f"/vaults/{personas.vault.name}/access/effective/"
    own = client.get(url, {"principal": "crypto"})
    assert own.status_code == 200 and "Key Vault Crypto User at" in text(own)
    assert client.get(url, {"principal": "reader"}).status_code == 403


def test_effective_access_of_a_group_or_nobody_is_a_form_error(
    as_: Any, personas: Personas
) -> None:
    Group.objects.create(name="auditors")
    url = f"/vaults/{personas.vault.name}/access/effective/"
    group = text(as_("owner").get(url, {"principal": "auditors"}))
    assert "a group&#x27;s members each have their own" in group.lower()
    nobody = text(as_("owner").get(url, {"principal": "no-such-person"}))
    assert "No user, group or application matches" in nobody


# --- the principal picker -------------------------------------------------------------------


def test_the_picker_suggests_users_groups_and_applications(
    as_: Any, personas: Personas, system: User
) -> None:
    UserFactory.create(username="dana", display_name="Dana Scully")
    Group.objects.create(name="data-team")
    application = services.application_create(actor=system, display_name="Data pipeline")
    response = htmx_get(
        as_("owner"), "/principals/", principal="da", list="assignment-principal-options"
    )
    assert is_fragment(response)
    page = text(response)
    assert page.startswith('<datalist id="assignment-principal-options">')
    assert 'value="dana" label="Dana Scully (user)"' in page
    assert 'value="data-team" label="data-team (group)"' in page
    assert f'value="{application.client_id}" label="Data pipeline (application)"' in page
    assert 'id="alerts"' not in page  # typing leaves the page's alerts alone


def test_the_picker_is_a_page_without_htmx(as_: Any, personas: Personas) -> None:
    page = text(as_("reader").get("/principals/", {"principal": "read"}))
    assert "<html" in page and ">reader</td>" in page


def test_the_picker_lists_at_most_its_limit_at_a_constant_cost(
    as_: Any, personas: Personas, django_assert_max_num_queries: Any
) -> None:
    client = as_("owner")
    for number in range(3):
        UserFactory.create(username=f"match-{number}")
    with django_assert_max_num_queries(10) as few:
        response = htmx_get(client, "/principals/", principal="match")
    assert text(response).count("<option") == 3
    for number in range(3, 45):
        UserFactory.create(username=f"match-{number}")
        Group.objects.create(name=f"match-group-{number}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = htmx_get(client, "/principals/", principal="match")
    assert text(response).count("<option") == PRINCIPAL_SUGGESTIONS


def test_the_picker_ignores_a_list_id_that_is_not_an_id(as_: Any, personas: Personas) -> None:
    page = text(htmx_get(as_("owner"), "/principals/", principal="r", list='x"><script>'))
    assert page.startswith('<datalist id="principal-options">')


def test_the_add_form_carries_the_picker(as_: Any, personas: Personas) -> None:
    page = text(as_("owner").get(access_url(personas.vault)))
    assert 'list="assignment-principal-options"' in page
    assert '<datalist id="assignment-principal-options"></datalist>' in page
    assert 'hx-get="/principals/"' in page


def test_access_pages_answer_htmx_with_fragments(
    as_: Any, personas: Personas, system: User, alice: User
) -> None:
    client = as_("owner")
    assert not is_fragment(client.get(access_url(personas.vault)))
    fragment = htmx_get(client, access_url(personas.vault))
    assert is_fragment(fragment) and text(fragment).lstrip().startswith(
        '<form id="assignment-form"'
    )
    model = htmx_get(client, f"/vaults/{personas.vault.name}/access/model/")
    assert is_fragment(model) and 'id="model-form"' in text(model)
    other = VaultFactory.create(resource_group=personas.vault.resource_group)
    assert other.name in text(client.get(access_url(other)))


def test_an_application_is_given_a_role_and_a_policy_by_its_client_id(
    as_: Any, personas: Personas, system: User, key: Key
) -> None:
    application = services.application_create(actor=system, display_name="Billing API")
    client = as_("owner")
    response = client.post(
        access_url(personas.vault), {"principal": str(application.client_id), "role": READER}
    )
    assert response.status_code == 303
    assert RoleAssignment.objects.get(user=application.user).scope == vault_scope(personas.vault)
    row = text(client.get(access_url(personas.vault)))
    assert "<td>Billing API</td>" in row and "Application</span>" in row
    effective = text(
        client.get(
            f"/vaults/{personas.vault.name}/access/effective/",
            {"principal": str(application.client_id)},
        )
    )
    assert "Billing API" in effective and "Key Vault Reader at" in effective

    use_access_policies(personas.vault, system)
    client.post(
        f"/vaults/{personas.vault.name}/access/policies/edit/",
        {"principal": str(application.client_id), "keys_crypto": ["sign"]},
    )
    assert may(application.user, Action.KEY_SIGN, fresh(key))
    page = text(client.get(access_url(personas.vault)))
    edit = f"principal={application.user.oid}&amp;kind=application"
    assert edit in page
    response = client.post(
        f"/vaults/{personas.vault.name}/access/policies/delete/",
        {"principal": str(application.user.oid), "kind": "application"},
    )
    assert response.status_code == 303
    assert policy_entries(personas.vault) == []


@pytest.mark.parametrize(("principal", "kind"), [("ops+kv", "user"), ("R&D", "group")])
def test_a_policys_edit_and_delete_links_name_any_principal_exactly(
    client: Client, personas: Personas, system: User, principal: str, kind: str
) -> None:
    vault = personas.vault
    use_access_policies(vault, system)
    if kind == "user":
        UserFactory.create(username=principal)
    else:
        Group.objects.create(name=principal)
    services.access_policy_set(
        actor=system,
        vault_name=vault.name,
        principal=principal,
        principal_kind=kind,
        key_permissions=["get"],
    )
    client.force_login(personas.owner)
    page = text(client.get(f"/vaults/{vault.name}/access/"))
    for action in ("edit", "delete"):
        link = re.search(rf'href="(/vaults/[^"]*/access/policies/{action}/\?[^"]*)"', page)
        assert link is not None, action
        opened = text(client.get(html.unescape(link.group(1))))
        assert principal in html.unescape(opened), action
