"""The Django admin: read-only inspection of the domain, never key material, cheap to page."""

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from keys import crypto, protection
from keys import services as key_services
from keys.models import Key, KeyVersion
from kvconsole.admin import CappedCountPaginator
from kvconsole.errors import Forbidden
from tests.factories import UserFactory
from vaults import services
from vaults.activity import GENESIS_HASH, entry_hash, request_context, verify_chain
from vaults.models import ActivityEntry, ResourceGroup, RoleAssignment, Vault

pytestmark = pytest.mark.django_db

MakeKey = Callable[..., KeyVersion]


@pytest.fixture
def versions(make_key: MakeKey, system: User) -> list[KeyVersion]:
    """An EC key and a symmetric key with two versions (cheap to generate), and a role
    assignment on the key."""
    ec_version = make_key("ec-key", kty="EC", curve="P-256")
    UserFactory.create(username="reader")
    vault = ec_version.key.vault
    services.role_assignment_create(
        actor=system,
        assignee="reader",
        role="Key Vault Reader",
        scope=f"/resourceGroups/{vault.resource_group.name}/providers/Microsoft.KeyVault/"
        f"vaults/{vault.name}/keys/ec-key",
    )
    make_key("oct-key", kty="oct", size=256)
    oct_version = make_key("oct-key", kty="oct", size=256)
    return [ec_version, oct_version]


@pytest.fixture
def all_versions(versions: list[KeyVersion], make_key: MakeKey) -> list[KeyVersion]:
    """Every key type, RSA included, for the pages that must not show material."""
    return [make_key("rsa-key", kty="RSA", size=2048), *versions]


def admin_url(model: type[Any], view: str, *args: Any) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def every_object(versions: list[KeyVersion]) -> list[Any]:
    return [
        ResourceGroup.objects.first(),
        Vault.objects.first(),
        Key.objects.first(),
        versions[0],
        ActivityEntry.objects.first(),
        RoleAssignment.objects.first(),
    ]


DOMAIN_MODELS = [ResourceGroup, Vault, Key, KeyVersion, ActivityEntry, RoleAssignment]
MODEL_IDS = [model.__name__ for model in DOMAIN_MODELS]


# --- read-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", DOMAIN_MODELS, ids=MODEL_IDS)
def test_changelist_and_change_page_load(
    admin_client: Client, versions: list[KeyVersion], model: type[Any]
) -> None:
    obj = next(o for o in every_object(versions) if isinstance(o, model))
    changelist = admin_client.get(admin_url(model, "changelist"))
    assert changelist.status_code == 200
    assert changelist.context["cl"].result_count >= 1
    # No actions at all, so no "delete selected".
    assert changelist.context["action_form"] is None
    assert "delete_selected" not in changelist.content.decode()
    change = admin_client.get(admin_url(model, "change", obj.pk))
    assert change.status_code == 200
    # View-only: no save buttons, no delete link.
    assert change.context["has_change_permission"] is False
    assert change.context["has_delete_permission"] is False
    content = change.content.decode()
    assert 'name="_save"' not in content
    assert admin_url(model, "delete", obj.pk) not in content


@pytest.mark.parametrize("model", DOMAIN_MODELS, ids=MODEL_IDS)
def test_admin_offers_no_add(admin_client: Client, model: type[Any]) -> None:
    before = model.objects.count()
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    assert admin_client.post(admin_url(model, "add"), {"name": "added"}).status_code == 403
    assert model.objects.count() == before


def test_admin_index_links_to_no_add_page(admin_client: Client) -> None:
    index = admin_client.get(reverse("admin:index")).content.decode()
    for model in DOMAIN_MODELS:
        assert admin_url(model, "changelist") in index
        assert admin_url(model, "add") not in index


@pytest.mark.parametrize("model", DOMAIN_MODELS, ids=MODEL_IDS)
def test_admin_refuses_change_and_delete(
    admin_client: Client, versions: list[KeyVersion], model: type[Any]
) -> None:
    obj = next(o for o in every_object(versions) if isinstance(o, model))
    before = model.objects.count()
    response = admin_client.post(admin_url(model, "change", obj.pk), {"name": "renamed"})
    assert response.status_code == 403
    assert admin_client.get(admin_url(model, "delete", obj.pk)).status_code == 403
    assert admin_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.count() == before
    obj.refresh_from_db()
    if hasattr(obj, "name"):
        assert obj.name != "renamed"


@pytest.mark.parametrize("model", DOMAIN_MODELS, ids=MODEL_IDS)
def test_changelist_refuses_the_delete_action(
    admin_client: Client, versions: list[KeyVersion], model: type[Any]
) -> None:
    obj = next(o for o in every_object(versions) if isinstance(o, model))
    admin_client.post(
        admin_url(model, "changelist"),
        {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"},
    )
    assert model.objects.filter(pk=obj.pk).exists()


def test_the_key_version_inline_offers_no_add_or_delete(
    admin_client: Client, versions: list[KeyVersion]
) -> None:
    key = versions[1].key
    response = admin_client.get(admin_url(Key, "change", key.pk))
    (inline,) = response.context["inline_admin_formsets"]
    assert inline.has_add_permission is False
    assert inline.has_change_permission is False
    assert inline.has_delete_permission is False
    assert len(inline.formset.forms) == 2  # both versions shown


# --- never key material ---------------------------------------------------------------------------


def encodings(data: bytes) -> list[str]:
    """Every way bytes could end up in a page: base64 (both alphabets), hex, Python repr."""
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    return [
        standard,
        standard.rstrip("="),
        urlsafe.rstrip("="),
        data.hex(),
        data.hex().upper(),
        repr(data)[2:-1],
    ]


def secrets_of(version: KeyVersion) -> dict[str, bytes]:
    version.refresh_from_db()
    material = protection.unprotect(
        version.kty,
        protection.ProtectedMaterial(
            version.master_key_id, version.wrapped_data_key, version.sealed_material
        ),
        aad=version.storage_aad,
    )
    return {
        "sealed": bytes(version.sealed_material),
        "wrapped": bytes(version.wrapped_data_key),
        "private": crypto.private_bytes(material),
    }


def assert_no_material(content: str, versions: list[KeyVersion]) -> None:
    lowered = content.lower()
    for name in ("sealed_material", "wrapped_data_key", "sealed material", "wrapped data key"):
        assert name not in lowered
    for version in versions:
        for label, secret in secrets_of(version).items():
            for encoded in encodings(secret):
                # Long enough that a coincidental match is impossible.
                assert encoded[:24] not in content, f"{label} bytes of {version.version}"


def test_key_version_pages_never_show_material(
    admin_client: Client, all_versions: list[KeyVersion]
) -> None:
    versions = list(KeyVersion.objects.all())
    assert len(versions) == 4
    for version in versions:
        response = admin_client.get(admin_url(KeyVersion, "change", version.pk))
        assert response.status_code == 200
        content = response.content.decode()
        assert version.version in content  # the page is about this version
        assert_no_material(content, versions)
    changelist = admin_client.get(admin_url(KeyVersion, "changelist"))
    assert_no_material(changelist.content.decode(), versions)


def test_key_pages_with_inline_never_show_material(
    admin_client: Client, all_versions: list[KeyVersion]
) -> None:
    versions = list(KeyVersion.objects.all())
    for version in versions:
        response = admin_client.get(admin_url(Key, "change", version.key_id))
        assert response.status_code == 200
        assert_no_material(response.content.decode(), versions)
    changelist = admin_client.get(admin_url(Key, "changelist"))
    assert_no_material(changelist.content.decode(), versions)


def test_material_checks_would_catch_a_leak(all_versions: list[KeyVersion]) -> None:
    """The check above is only worth something if it fails on a page that leaks."""
    rsa_version = all_versions[0]
    sealed = secrets_of(rsa_version)["sealed"]
    with pytest.raises(AssertionError):
        assert_no_material(f"<td>{base64.b64encode(sealed).decode()}</td>", [rsa_version])
    with pytest.raises(AssertionError):
        assert_no_material(f"<td>{sealed.hex()}</td>", [rsa_version])
    private = secrets_of(rsa_version)["private"]
    with pytest.raises(AssertionError):
        assert_no_material(base64.urlsafe_b64encode(private).decode(), [rsa_version])
    with pytest.raises(AssertionError):
        assert_no_material("<th>Sealed material:</th>", [])


def test_the_symmetric_public_jwk_holds_no_secret(
    admin_client: Client, versions: list[KeyVersion]
) -> None:
    oct_version = versions[1]
    assert oct_version.public_jwk == {"kty": "oct"}
    response = admin_client.get(admin_url(KeyVersion, "change", oct_version.pk))
    secret = secrets_of(oct_version)["private"]
    assert hashlib.sha256(secret).hexdigest() not in response.content.decode()
    assert_no_material(response.content.decode(), [oct_version])


# --- the activity changelist ----------------------------------------------------------------------


@pytest.fixture
def activity(system: User, outsider: User, make_key: MakeKey) -> None:
    """Entries of several operations, results, faces, actors and vaults."""
    services.resource_group_create(actor=system, name="rg-admin", location="westeurope")
    services.vault_create(actor=system, name="vault-one", resource_group="rg-admin")
    services.vault_create(actor=system, name="vault-two", resource_group="rg-admin")
    make_key("signer", in_vault=Vault.objects.get(name="vault-one"), kty="EC")
    with request_context(face="cli", client_ip="192.0.2.1"):
        key_services.key_sign(
            actor=system,
            vault_name="vault-one",
            name="signer",
            algorithm="ES256",
            digest=hashlib.sha256(b"payload").digest(),
        )
        services.vault_get(actor=system, name="vault-two")
    with pytest.raises(Forbidden):
        services.vault_get(actor=outsider, name="vault-two")


def listed(client: Client, query: str) -> list[ActivityEntry]:
    response = client.get(admin_url(ActivityEntry, "changelist") + query)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.mark.usefixtures("activity")
def test_activity_changelist_lists_newest_first(admin_client: Client) -> None:
    entries = listed(admin_client, "")
    assert [entry.seq for entry in entries] == sorted(
        ActivityEntry.objects.values_list("seq", flat=True), reverse=True
    )


@pytest.mark.usefixtures("activity")
def test_activity_changelist_time_range_lists_newest_first_by_time(admin_client: Client) -> None:
    # The links the admin's date filter makes carry aware datetimes, as these do.
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    query = "?" + urlencode({"time__gte": str(midnight), "time__lt": str(midnight + timedelta(1))})
    entries = listed(admin_client, query)
    assert len(entries) == ActivityEntry.objects.count() > 1
    assert [(entry.time, entry.seq) for entry in entries] == sorted(
        ((entry.time, entry.seq) for entry in entries), reverse=True
    )
    # Ordered by time within a range, so the (time, seq) index serves it without a sort.
    queries = changelist_queries(admin_client, query)
    assert any('ORDER BY "vaults_activityentry"."time" DESC' in sql for sql in queries)


@pytest.mark.usefixtures("activity")
def test_activity_changelist_filters_by_vault(admin_client: Client) -> None:
    entries = listed(admin_client, "?vault=vault-two")
    assert entries and {entry.vault_name for entry in entries} == {"vault-two"}
    assert len(entries) == ActivityEntry.objects.filter(vault_name="vault-two").count()
    response = admin_client.get(admin_url(ActivityEntry, "changelist"))
    assert "?vault=vault-one" in response.content.decode()  # offered as a choice


@pytest.mark.usefixtures("activity")
def test_activity_changelist_filters_by_operation(admin_client: Client) -> None:
    entries = listed(admin_client, "?operation__exact=KeySign")
    assert [(entry.operation, entry.target.split("/")[:4]) for entry in entries] == [
        ("KeySign", ["vaults", "vault-one", "keys", "signer"])
    ]


@pytest.mark.usefixtures("activity")
def test_activity_changelist_filters_by_result(admin_client: Client, outsider: User) -> None:
    entries = listed(admin_client, "?result__exact=Forbidden")
    assert [(entry.result, entry.actor_name) for entry in entries] == [
        ("Forbidden", outsider.username)
    ]


@pytest.mark.usefixtures("activity")
def test_activity_changelist_filters_by_face(admin_client: Client) -> None:
    entries = listed(admin_client, "?face__exact=cli")
    assert [entry.operation for entry in entries] == ["VaultGet", "KeySign"]
    assert {entry.client_ip for entry in entries} == {"192.0.2.1"}


@pytest.mark.usefixtures("activity")
def test_activity_changelist_combines_filters(admin_client: Client) -> None:
    entries = listed(admin_client, "?face__exact=cli&vault=vault-two")
    assert [entry.operation for entry in entries] == ["VaultGet"]


@pytest.mark.usefixtures("activity")
def test_activity_changelist_searches_by_actor_name(admin_client: Client, outsider: User) -> None:
    entries = listed(admin_client, f"?q={outsider.username}")
    assert [entry.actor_name for entry in entries] == [outsider.username]
    # Exact, not a substring: a prefix of the name finds nothing.
    assert listed(admin_client, f"?q={outsider.username[:-1]}") == []


@pytest.mark.usefixtures("activity")
def test_activity_changelist_searches_by_target_prefix(admin_client: Client) -> None:
    entries = listed(admin_client, "?q=vaults/vault-one/keys/")
    assert {entry.operation for entry in entries} == {"KeyCreate", "KeySign"}
    assert all(entry.target.startswith("vaults/vault-one/keys/") for entry in entries)
    assert {entry.target for entry in listed(admin_client, "?q=vaults/vault-t")} == {
        "vaults/vault-two"
    }
    # A prefix search, not a substring search.
    assert listed(admin_client, "?q=vault-one/keys") == []


def test_activity_change_page_shows_the_entry(admin_client: Client, activity: None) -> None:
    entry = ActivityEntry.objects.get(operation="KeySign")
    response = admin_client.get(admin_url(ActivityEntry, "change", entry.seq))
    content = response.content.decode()
    assert entry.hash in content and entry.prev_hash in content
    assert entry.correlation_id in content or entry.correlation_id == ""


def append_entries(count: int, **fields: Any) -> None:
    """Valid chained entries, many at once (a service call per entry would be slow)."""
    head = ActivityEntry.objects.order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = head or (0, GENESIS_HASH)
    now = timezone.now()
    batch = []
    for number in range(count):
        seq += 1
        entry = ActivityEntry(
            seq=seq,
            time=now,
            actor_name=f"app-{number % 7}",
            actor_kind="application",
            operation="KeySign",
            vault_name="vault-one",
            target=f"vaults/vault-one/keys/k{number % 5}",
            result="Success" if number % 9 else "Forbidden",
            status_code=200 if number % 9 else 403,
            duration_ms=0.5,
            face="api",
            client_ip="10.0.0.1",
            prev_hash=prev_hash,
            **fields,
        )
        entry.hash = prev_hash = entry_hash(entry)
        batch.append(entry)
    ActivityEntry.objects.bulk_create(batch)


def test_bulk_appended_entries_form_a_valid_chain(activity: None) -> None:
    append_entries(30)
    report = verify_chain()
    assert report.ok and report.checked == ActivityEntry.objects.count()


COUNT = re.compile(r"\bCOUNT\(", re.IGNORECASE)
CAPPED = re.compile(r"\bCOUNT\(.*\bFROM\s*\(\s*SELECT\b.*\bLIMIT\b", re.IGNORECASE | re.DOTALL)


def changelist_queries(client: Client, query: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(admin_url(ActivityEntry, "changelist") + query)
    assert response.status_code == 200
    return [item["sql"] for item in captured.captured_queries]


@pytest.mark.parametrize(
    ("query", "small"),
    [
        ("", 10),
        ("?p=2", 60),  # a second page needs more than 50 entries
        ("?operation__exact=KeySign&result__exact=Forbidden", 10),
        ("?face__exact=api&time__gte=2000-01-01+00:00:00%2B00:00", 10),
        ("?vault=vault-one&q=vaults/vault-one/keys/k1", 10),
        ("?q=app-3", 10),
    ],
)
def test_activity_changelist_never_counts_the_whole_log(
    admin_client: Client, activity: None, query: str, small: int
) -> None:
    append_entries(small - ActivityEntry.objects.count())
    assert ActivityEntry.objects.count() == small
    small_queries = changelist_queries(admin_client, query)
    append_entries(300)
    large_queries = changelist_queries(admin_client, query)
    for sql in small_queries + large_queries:
        if COUNT.search(sql):
            assert CAPPED.search(sql), f"an uncapped COUNT: {sql}"
    assert len(large_queries) == len(small_queries)


def test_the_count_cap_check_would_catch_an_uncapped_count() -> None:
    assert COUNT.search('SELECT COUNT(*) AS "__count" FROM "vaults_activityentry"')
    assert not CAPPED.search('SELECT COUNT(*) AS "__count" FROM "vaults_activityentry"')
    assert CAPPED.search(
        'SELECT COUNT(*) FROM (SELECT 1 AS "a" FROM "vaults_activityentry" LIMIT 10000) subquery'
    )


def test_activity_changelist_pages_past_the_cap_count(
    admin_client: Client, activity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CappedCountPaginator, "CAP", 60)
    append_entries(200)
    response = admin_client.get(admin_url(ActivityEntry, "changelist"))
    assert response.context["cl"].result_count == 60
    assert len(response.context["cl"].result_list) == 50


# --- principals ---------------------------------------------------------------------------------


def test_principal_admin_pages_load(admin_client: Client, system: User, application: User) -> None:
    changelist = admin_client.get(reverse("admin:accounts_user_changelist") + "?kind__exact=system")
    assert [user.pk for user in changelist.context["cl"].result_list] == [system.pk]
    change = admin_client.get(reverse("admin:accounts_user_change", args=[application.pk]))
    assert change.status_code == 200
    assert str(application.oid) in change.content.decode()
