"""Console pages for one key: the versions table, a version's attributes, enabling and
disabling, reverting, rotating, the rotation policy editor, deleting and backing up, with the
console's personas."""

import html
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from keys import services
from keys.models import Key, KeyRotationPolicy, KeyVersion
from tests.conftest import Personas
from tests.console import htmx_get, htmx_post, is_fragment, text

pytestmark = pytest.mark.django_db

SignIn = Callable[[str], Client]


@pytest.fixture
def as_(client: Client, personas: Personas) -> SignIn:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


@pytest.fixture
def signer(make_key: Any, personas: Personas) -> KeyVersion:
    """An EC key with two versions; the second is current."""
    make_key("signer", kty="EC", tags={"team": "payments"})
    return services.key_rotate(actor=personas.owner, vault_name=personas.vault.name, name="signer")


def key_url(personas: Personas, tail: str = "") -> str:
    return f"/vaults/{personas.vault.name}/keys/signer/{tail}"


def versions_of(name: str = "signer") -> list[KeyVersion]:
    return list(KeyVersion.objects.filter(key__name=name).order_by("created_at", "id"))


@pytest.mark.parametrize(
    ("method", "tail"),
    [
        ("get", ""),
        ("get", "rotation-policy/"),
        ("post", "rotation-policy/"),
        ("get", "delete/"),
        ("post", "delete/"),
        ("post", "rotate/"),
        ("post", "backup/"),
        ("get", "VERSION/"),
        ("post", "VERSION/"),
        ("post", "VERSION/enabled/"),
        ("post", "VERSION/revert/"),
    ],
)
def test_every_page_of_a_key_is_404_for_outsiders(
    as_: SignIn, personas: Personas, signer: KeyVersion, method: str, tail: str
) -> None:
    url = key_url(personas, tail.replace("VERSION", f"versions/{signer.version}"))
    response = getattr(as_("outsider"), method)(url)
    assert response.status_code == 404
    assert len(versions_of()) == 2
    assert Key.objects.get(name="signer").deleted_at is None


def test_an_unknown_key_or_version_is_404(as_: SignIn, personas: Personas, signer: Any) -> None:
    client = as_("owner")
    assert client.get(f"/vaults/{personas.vault.name}/keys/nope/").status_code == 404
    assert client.get(key_url(personas, f"versions/{'0' * 32}/")).status_code == 404


@pytest.mark.parametrize(
    ("persona", "offered"),
    [
        ("owner", {"Rotate now", "Rotation policy", "Download backup", "Delete"}),
        ("crypto_user", {"Download backup"}),
        ("reader", {"Rotation policy"}),
    ],
)
def test_the_key_page_offers_only_what_the_operator_may_do(
    as_: SignIn, personas: Personas, signer: KeyVersion, persona: str, offered: set[str]
) -> None:
    response = as_(persona).get(key_url(personas))
    page = text(response)
    assert response.status_code == 200
    shown = {
        button
        for button in ("Rotate now", "Rotation policy", "Download backup", ">Delete<")
        if button in page
    }
    assert {button.strip("<>") for button in shown} == offered


def test_the_versions_table_marks_the_current_version_newest_first(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    first, second = versions_of()
    page = text(as_("reader").get(key_url(personas)))
    assert page.index(second.version) < page.index(first.version)
    assert page.count('<tr class="current">') == 1
    current_row = page[page.index('<tr class="current">') :]
    current_row = current_row[: current_row.index("</tr>")]
    assert second.version in current_row and 'class="badge info">Current' in current_row
    assert "sign, verify" in current_row and "team=payments" in current_row
    assert 'class="badge ok">Enabled' in current_row and 'class="badge ok">Active' in current_row


def test_the_versions_table_pages_by_htmx_and_costs_the_same_for_2_or_30_versions(
    as_: SignIn, personas: Personas, signer: KeyVersion, django_assert_max_num_queries: Any
) -> None:
    client = as_("owner")
    client.get(key_url(personas))
    with django_assert_max_num_queries(14) as few:
        client.get(key_url(personas))
    for _ in range(28):
        services.key_rotate(actor=personas.owner, vault_name=personas.vault.name, name="signer")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = text(client.get(key_url(personas)))
    assert "Page 1 of 2" in page
    second = htmx_get(client, key_url(personas), page="2")
    assert is_fragment(second) and text(second).lstrip().startswith('<div id="versions">')
    oldest = versions_of()[0]
    assert oldest.version in text(second) and oldest.version not in page


# --- a version's page --------------------------------------------------------------------------


def test_each_version_links_to_its_crypto_playground_and_the_key_to_its_access(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    client = as_("crypto_user")
    playground = key_url(personas, f"versions/{signer.version}/playground/")
    assert f'href="{playground}"' in text(client.get(key_url(personas)))
    assert f'href="{playground}"' in text(
        client.get(key_url(personas, f"versions/{signer.version}/"))
    )
    assert f'href="{key_url(personas, "access/")}"' in text(client.get(key_url(personas)))
    assert client.get(playground).status_code == 200


@pytest.mark.parametrize(
    ("persona", "editable"), [("owner", True), ("crypto_user", True), ("reader", False)]
)
def test_a_version_page_shows_the_attributes_form_to_who_may_update(
    as_: SignIn, personas: Personas, signer: KeyVersion, persona: str, editable: bool
) -> None:
    page = text(as_(persona).get(key_url(personas, f"versions/{signer.version}/")))
    assert signer.version in page and '"crv": "P-256"' in html.unescape(page)
    assert ('id="version-attributes"' in page) is editable
    assert ("Disable this version" in page) is editable


def test_the_attributes_of_a_version_are_changed(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    url = key_url(personas, f"versions/{signer.version}/")
    response = htmx_post(
        as_("crypto_user"),
        url,
        {
            "enabled": "on",
            "not_before": "2029-05-06T07:08",
            "expires": "2040-01-01T00:00",
            "ops": ["verify"],
            "tags": "team=identity\nstage=2",
        },
    )
    assert response["HX-Redirect"] == url
    changed = KeyVersion.objects.get(pk=signer.pk)
    assert changed.key_ops == ["verify"] and changed.tags == {"team": "identity", "stage": "2"}
    assert changed.not_before is not None and changed.expires is not None
    assert (changed.not_before.isoformat(), changed.expires.year) == (
        "2029-05-06T07:08:00+00:00",
        2040,
    )
    page = text(as_("crypto_user").get(url))
    assert 'value="2029-05-06T07:08"' in page
    assert 'class="badge warn">Not yet active' in page


def test_bad_attributes_are_shown_beside_their_fields(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    response = htmx_post(
        as_("owner"),
        key_url(personas, f"versions/{signer.version}/"),
        {
            "enabled": "on",
            "not_before": "2040-01-01T00:00",
            "expires": "2030-01-01T00:00",
            "ops": ["encrypt"],
        },
    )
    page = text(response)
    assert response.status_code == 200 and is_fragment(response)
    assert "must be earlier than the expiry" in page and "Select a valid choice. encrypt" in page
    assert KeyVersion.objects.get(pk=signer.pk).key_ops == ["sign", "verify"]


def test_a_reader_cannot_change_a_version(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    base = key_url(personas, f"versions/{signer.version}/")
    response = as_("reader").post(base, {"enabled": "", "ops": ["sign"]})
    assert response.status_code == 403
    response = htmx_post(as_("reader"), f"{base}enabled/", {"enabled": "false"})
    assert response.status_code == 403 and response["HX-Retarget"] == "#alerts"
    assert KeyVersion.objects.get(pk=signer.pk).enabled


def test_a_version_is_disabled_and_enabled_again(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    url = key_url(personas, f"versions/{signer.version}/enabled/")
    response = htmx_post(as_("owner"), url, {"enabled": "false"})
    assert response["HX-Redirect"] == key_url(personas, f"versions/{signer.version}/")
    assert not KeyVersion.objects.get(pk=signer.pk).enabled
    page = text(as_("owner").get(key_url(personas, f"versions/{signer.version}/")))
    assert "Enable this version" in page and 'class="badge off">Disabled' in page
    htmx_post(as_("owner"), url, {"enabled": "true"})
    assert KeyVersion.objects.get(pk=signer.pk).enabled


def test_reverting_makes_an_earlier_versions_material_current(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    first = versions_of()[0]
    page = text(as_("owner").get(key_url(personas, f"versions/{first.version}/")))
    assert "Revert to this version" in page
    current_page = text(as_("owner").get(key_url(personas, f"versions/{signer.version}/")))
    assert "Revert to this version" not in current_page
    response = htmx_post(as_("owner"), key_url(personas, f"versions/{first.version}/revert/"))
    assert response["HX-Redirect"] == key_url(personas)
    key = Key.objects.select_related("current_version").get(name="signer")
    assert key.current_version is not None
    assert key.current_version.source_version == first.version
    assert key.current_version.public_jwk == first.public_jwk


def test_reverting_to_a_disabled_version_is_refused_with_a_message(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    first = versions_of()[0]
    services.key_update(
        actor=personas.owner,
        vault_name=personas.vault.name,
        name="signer",
        version=first.version,
        enabled=False,
    )
    response = htmx_post(as_("owner"), key_url(personas, f"versions/{first.version}/revert/"))
    assert response.status_code == 400 and response["HX-Retarget"] == "#alerts"
    assert "is disabled; enable it first" in text(response)
    assert len(versions_of()) == 2


def test_a_crypto_user_may_not_revert(as_: SignIn, personas: Personas, signer: KeyVersion) -> None:
    first = versions_of()[0]
    page = text(as_("crypto_user").get(key_url(personas, f"versions/{first.version}/")))
    assert "Revert to this version" not in page
    response = as_("crypto_user").post(key_url(personas, f"versions/{first.version}/revert/"))
    assert response.status_code == 403
    assert len(versions_of()) == 2


# --- rotating ----------------------------------------------------------------------------------


def test_rotating_now_makes_a_new_current_version(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    response = htmx_post(as_("owner"), key_url(personas, "rotate/"))
    assert response["HX-Redirect"] == key_url(personas)
    newest = versions_of()[-1]
    assert Key.objects.get(name="signer").current_version_id == newest.pk
    assert newest.kty == "EC" and newest.curve == "P-256" and newest.origin == "rotated"
    page = text(as_("owner").get(key_url(personas)))
    assert f"version {newest.version} is now current" in page


@pytest.mark.parametrize("persona", ["crypto_user", "reader"])
def test_a_forged_rotation_is_refused(
    as_: SignIn, personas: Personas, signer: KeyVersion, persona: str
) -> None:
    response = as_(persona).post(key_url(personas, "rotate/"))
    assert response.status_code == 403
    assert len(versions_of()) == 2


# --- the rotation policy -----------------------------------------------------------------------


def test_a_key_without_a_policy_shows_azures_default(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    page = text(as_("owner").get(key_url(personas, "rotation-policy/")))
    assert 'id="rotation-policy"' in page
    assert 'name="notify_before" value="P30D"' in page
    assert "default policy" in page


def test_the_owner_sets_a_rotation_policy(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    response = htmx_post(
        as_("owner"),
        key_url(personas, "rotation-policy/"),
        {
            "expiry_time": "P90D",
            "rotate_trigger": "timeBeforeExpiry",
            "rotate_time": "P30D",
            "notify_before": "P14D",
        },
    )
    assert response["HX-Redirect"] == key_url(personas)
    stored = KeyRotationPolicy.objects.get(key__name="signer")
    assert stored.expiry_time == "P90D"
    assert stored.lifetime_actions == [
        {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Rotate"}},
        {"trigger": {"timeBeforeExpiry": "P14D"}, "action": {"type": "Notify"}},
    ]
    page = text(as_("owner").get(key_url(personas, "rotation-policy/")))
    assert 'value="P90D"' in page and 'value="timeBeforeExpiry" selected' in page


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"expiry_time": "P10D"}, "expiry_time", "must be at least 28 days"),
        ({"expiry_time": "soon"}, "expiry_time", "must be an ISO-8601 duration"),
        (
            {"rotate_trigger": "timeAfterCreate", "rotate_time": "P3D"},
            "rotate_time",
            "at least 7 days",
        ),
        (
            {"rotate_trigger": "timeBeforeExpiry", "rotate_time": "P30D"},
            "rotate_time",
            "needs attributes.expiryTime",
        ),
        ({"rotate_trigger": "timeAfterCreate"}, "rotate_time", "Say when to rotate."),
        (
            {"expiry_time": "P60D", "notify_before": "P90D"},
            "notify_before",
            "must come before the versions expire",
        ),
    ],
)
def test_azures_policy_rules_are_shown_beside_their_fields(
    as_: SignIn,
    personas: Personas,
    signer: KeyVersion,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = htmx_post(as_("owner"), key_url(personas, "rotation-policy/"), fields)
    page = text(response)
    assert response.status_code == 200 and is_fragment(response)
    # The message sits in the field's own block, after its input.
    block = page[page.index(f'name="{field}"') :]
    block = block[: block.index('<div class="field')] if '<div class="field' in block else block
    assert message in block
    assert not KeyRotationPolicy.objects.exists()


def test_a_reader_sees_the_policy_but_may_not_change_it(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    page = text(as_("reader").get(key_url(personas, "rotation-policy/")))
    assert 'id="rotation-policy"' not in page and "P30D" in page
    response = as_("reader").post(key_url(personas, "rotation-policy/"), {"expiry_time": "P90D"})
    assert response.status_code == 403
    assert not KeyRotationPolicy.objects.exists()


def test_a_crypto_user_may_not_read_the_policy(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    assert as_("crypto_user").get(key_url(personas, "rotation-policy/")).status_code == 403


# --- deleting and backing up ---------------------------------------------------------------------


def test_deleting_asks_first_then_soft_deletes(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    confirm = text(as_("owner").get(key_url(personas, "delete/")))
    assert "can be recovered from Deleted keys for 90 days" in confirm
    response = htmx_post(as_("owner"), key_url(personas, "delete/"))
    assert response["HX-Redirect"] == f"/vaults/{personas.vault.name}/keys/"
    assert Key.objects.get(name="signer").deleted_at is not None
    assert as_("owner").get(key_url(personas)).status_code == 404


@pytest.mark.parametrize("persona", ["crypto_user", "reader"])
def test_a_forged_delete_is_refused(
    as_: SignIn, personas: Personas, signer: KeyVersion, persona: str
) -> None:
    assert as_(persona).post(key_url(personas, "delete/")).status_code == 403
    assert Key.objects.get(name="signer").deleted_at is None


def test_a_crypto_user_downloads_a_backup_and_a_reader_may_not(
    as_: SignIn, personas: Personas, signer: KeyVersion
) -> None:
    response = as_("crypto_user").post(key_url(personas, "backup/"))
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].endswith('-signer.keybackup"')
    assert len(response.content) > 100
    assert "no-store" in response["Cache-Control"]
    assert as_("reader").post(key_url(personas, "backup/")).status_code == 403


def test_a_key_named_like_a_vault_page_is_still_reachable(
    as_: SignIn, personas: Personas, make_key: Any
) -> None:
    for name in ("new", "import", "restore"):
        make_key(name, kty="oct", size=128)
        page = text(as_("reader").get(f"/vaults/{personas.vault.name}/keys/{name}/"))
        assert f"<h1>{name}</h1>" in page
