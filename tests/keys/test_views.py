"""Console pages for a vault's keys: the Keys and Deleted keys tabs, creating, importing and
restoring keys, recovering and purging, with the console's personas.

Imported keys are checked against `cryptography` directly: the test holds the private key,
and the public part the vault stored must be that key's."""

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from keys import services
from keys.models import Key, KeyVersion
from tests.conftest import Personas
from tests.console import htmx_get, htmx_post, is_fragment, text
from tests.factories import VaultFactory
from vaults.models import Vault

pytestmark = pytest.mark.django_db

SignIn = Callable[[str], Client]


@pytest.fixture
def as_(client: Client, personas: Personas) -> SignIn:
    def sign_in(name: str) -> Client:
        client.force_login(personas.each()[name])
        return client

    return sign_in


def b64url_int(value: int) -> str:
    return (
        base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8))
        .rstrip(b"=")
        .decode()
    )


def int_of(jwk: dict[str, Any], name: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(jwk[name] + "=" * (-len(jwk[name]) % 4)))


def current(vault: Vault, name: str) -> KeyVersion:
    key = Key.objects.select_related("current_version").get(vault=vault, name=name)
    assert key.current_version is not None
    return key.current_version


# --- who sees what -----------------------------------------------------------------------------


def test_a_vault_opens_on_its_keys_tab(as_: SignIn, personas: Personas) -> None:
    response = as_("reader").get(f"/vaults/{personas.vault.name}/")
    assert response.status_code == 302
    assert response["Location"] == f"/vaults/{personas.vault.name}/keys/"


@pytest.mark.parametrize(
    "page",
    [
        "keys/",
        "new-key/",
        "import-key/",
        "restore-key/",
        "deleted-keys/",
        "deleted-keys/gone/purge/",
    ],
)
def test_every_key_page_of_a_vault_is_404_for_outsiders(
    as_: SignIn, personas: Personas, make_key: Any, page: str
) -> None:
    make_key("gone", kty="oct")
    services.key_delete(actor=personas.owner, vault_name=personas.vault.name, name="gone")
    assert as_("outsider").get(f"/vaults/{personas.vault.name}/{page}").status_code == 404


def test_an_outsider_cannot_recover_a_deleted_key(
    as_: SignIn, personas: Personas, make_key: Any
) -> None:
    make_key("gone", kty="oct")
    services.key_delete(actor=personas.owner, vault_name=personas.vault.name, name="gone")
    url = f"/vaults/{personas.vault.name}/deleted-keys/gone/recover/"
    assert as_("outsider").post(url).status_code == 404
    assert Key.objects.get(name="gone").deleted_at is not None


@pytest.mark.parametrize(
    ("persona", "buttons"),
    [("owner", True), ("crypto_user", False), ("reader", False)],
)
def test_the_keys_tab_lists_keys_and_offers_only_what_the_operator_may_do(
    as_: SignIn, personas: Personas, make_key: Any, persona: str, buttons: bool
) -> None:
    make_key("signer", kty="EC", curve="P-384", tags={"team": "payments"})
    response = as_(persona).get(f"/vaults/{personas.vault.name}/keys/")
    page = text(response)
    assert response.status_code == 200
    assert f'href="/vaults/{personas.vault.name}/keys/signer/"' in page
    assert "EC P-384" in page and "team=payments" in page
    assert 'aria-current="page">Keys</a>' in page
    for button in ("Create key", "Import key", "Restore backup"):
        assert (button in page) is buttons


@pytest.mark.parametrize("page", ["new-key/", "import-key/", "restore-key/"])
def test_a_reader_gets_no_form_to_create_import_or_restore(
    as_: SignIn, personas: Personas, page: str
) -> None:
    response = as_("reader").get(f"/vaults/{personas.vault.name}/{page}")
    assert response.status_code == 403
    assert "<form id=" not in text(response)
    assert 'role="alert"' in text(response)


# --- the Keys tab: search, filters, sorting, pages -----------------------------------------------


@pytest.fixture
def assorted(make_key: Any, system: Any, vault: Vault) -> None:
    """An RSA key tagged for payments, a disabled EC key, an expired and an expiring oct key,
    and a key that never expires."""
    now = timezone.now()
    make_key("alpha-rsa", kty="RSA", tags={"team": "payments", "env": "prod"})
    make_key("beta-ec", kty="EC", enabled=False, tags={"team": "identity"})
    make_key("gamma-old", kty="oct", expires=now + timedelta(seconds=2), size=128)
    make_key("delta-soon", kty="oct", expires=now + timedelta(days=10), size=128)
    make_key("omega-later", kty="oct", expires=now + timedelta(days=90), size=128)
    KeyVersion.objects.filter(key__name="gamma-old").update(expires=now - timedelta(days=1))


def listed(response: Any) -> list[str]:
    names = ["alpha-rsa", "beta-ec", "gamma-old", "delta-soon", "omega-later"]
    page = text(response)
    found = [name for name in names if f"/keys/{name}/" in page]
    return sorted(found, key=lambda name: page.index(f"/keys/{name}/"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "ta-"}, ["beta-ec", "delta-soon"]),
        ({"q": "team=payments"}, ["alpha-rsa"]),
        ({"q": "identity"}, ["beta-ec"]),
        ({"kty": "oct"}, ["delta-soon", "gamma-old", "omega-later"]),
        ({"enabled": "no"}, ["beta-ec"]),
        ({"enabled": "yes", "kty": "EC"}, []),
        ({"expiry": "expired"}, ["gamma-old"]),
        ({"expiry": "soon"}, ["delta-soon"]),
        ({"sort": "-name"}, ["omega-later", "gamma-old", "delta-soon", "beta-ec", "alpha-rsa"]),
        ({"sort": "expires"}, ["gamma-old", "delta-soon", "omega-later", "alpha-rsa", "beta-ec"]),
        ({"sort": "-expires"}, ["omega-later", "delta-soon", "gamma-old", "alpha-rsa", "beta-ec"]),
        (
            {"kty": "bogus", "sort": "bogus"},
            ["alpha-rsa", "beta-ec", "delta-soon", "gamma-old", "omega-later"],
        ),
    ],
)
def test_the_keys_tab_searches_filters_and_sorts(
    as_: SignIn, personas: Personas, assorted: None, query: dict[str, str], expected: list[str]
) -> None:
    response = as_("reader").get(f"/vaults/{personas.vault.name}/keys/", query)
    assert response.status_code == 200
    assert listed(response) == expected


def test_type_sorts_group_the_types_both_ways(
    as_: SignIn, personas: Personas, assorted: None
) -> None:
    url = f"/vaults/{personas.vault.name}/keys/"
    kinds = {"alpha-rsa": "RSA", "beta-ec": "EC"}
    ascending = [
        kinds.get(name, "oct") for name in listed(as_("reader").get(url, {"sort": "type"}))
    ]
    descending = [
        kinds.get(name, "oct") for name in listed(as_("reader").get(url, {"sort": "-type"}))
    ]
    # The database's collation decides how "oct" sorts against "EC" and "RSA".
    assert list(dict.fromkeys(descending)) == list(reversed(dict.fromkeys(ascending)))
    assert len(list(dict.fromkeys(ascending))) == 3
    octs = listed(as_("reader").get(url, {"sort": "-type", "kty": "oct"}))
    assert octs == ["delta-soon", "gamma-old", "omega-later"]


def test_created_sorts_by_creation(as_: SignIn, personas: Personas, assorted: None) -> None:
    url = f"/vaults/{personas.vault.name}/keys/"
    newest_first = listed(as_("reader").get(url, {"sort": "-created"}))
    assert newest_first == ["omega-later", "delta-soon", "gamma-old", "beta-ec", "alpha-rsa"]


def test_expiry_badges_mark_expired_and_expiring_keys(
    as_: SignIn, personas: Personas, assorted: None
) -> None:
    page = text(as_("reader").get(f"/vaults/{personas.vault.name}/keys/"))
    assert page.count('class="badge bad">Expired') == 1
    assert page.count('class="badge warn">Expires soon') == 1
    assert page.count('class="badge off">Disabled') == 1


def test_an_htmx_filter_gets_the_table_only_and_the_page_keeps_its_url(
    as_: SignIn, personas: Personas, assorted: None
) -> None:
    url = f"/vaults/{personas.vault.name}/keys/"
    page = text(as_("reader").get(url))
    assert 'hx-push-url="true"' in page and 'hx-target="#key-table"' in page
    fragment = htmx_get(as_("reader"), url, kty="EC", sort="-name")
    assert fragment.status_code == 200 and is_fragment(fragment)
    body = text(fragment)
    assert body.lstrip().startswith('<div id="key-table">')
    assert 'id="key-filters"' not in body
    # The sort travels with the filter form, and the headers offer the reverse order.
    assert 'name="sort" value="-name" form="key-filters"' in body
    assert 'aria-sort="descending"' in body
    assert "?kty=EC&amp;sort=name" in body
    assert listed(fragment) == ["beta-ec"]


def test_the_keys_tab_pages_by_25(as_: SignIn, personas: Personas, make_key: Any) -> None:
    for number in range(27):
        make_key(f"k{number:02d}", kty="oct", size=128)
    url = f"/vaults/{personas.vault.name}/keys/"
    first = text(as_("reader").get(url))
    assert "/keys/k24/" in first and "/keys/k25/" not in first
    assert "Page 1 of 2" in first and "?page=2" in first
    second = htmx_get(as_("reader"), url, page="2")
    assert is_fragment(second)
    assert "/keys/k25/" in text(second) and "/keys/k26/" in text(second)
    assert "/keys/k00/" not in text(second)


def test_the_keys_tab_costs_the_same_queries_for_1_or_30_keys(
    as_: SignIn, personas: Personas, make_key: Any, django_assert_max_num_queries: Any
) -> None:
    make_key("first", kty="oct", size=128)
    client = as_("owner")
    url = f"/vaults/{personas.vault.name}/keys/"
    client.get(url)
    with django_assert_max_num_queries(12) as few:
        client.get(url, {"q": "r", "sort": "-expires"})
    for number in range(30):
        make_key(f"more-{number}", kty="oct", size=128, tags={"n": str(number)})
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(url, {"q": "r", "sort": "-expires"})
    assert text(response).count("<tr>") == 25 + 1


# --- creating ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "kty", "size", "curve", "ops"),
    [
        (
            {"kty": "RSA", "size": "3072", "ops": ["sign", "verify"]},
            "RSA",
            3072,
            "",
            ["sign", "verify"],
        ),
        ({"kty": "EC", "curve": "P-256K", "ops": ["sign"]}, "EC", None, "P-256K", ["sign"]),
        (
            {"kty": "oct", "size": "192", "ops": ["wrapKey", "unwrapKey"]},
            "oct",
            192,
            "",
            ["wrapKey", "unwrapKey"],
        ),
    ],
)
def test_the_owner_creates_each_type_of_key(
    as_: SignIn,
    personas: Personas,
    fields: dict[str, Any],
    kty: str,
    size: int | None,
    curve: str,
    ops: list[str],
) -> None:
    vault = personas.vault.name
    response = htmx_post(
        as_("owner"),
        f"/vaults/{vault}/new-key/",
        {
            "name": "made-here",
            "enabled": "on",
            "not_before": "2030-01-02T03:04",
            "expires": "2031-01-02T03:04",
            "tags": "env=test",
            **fields,
        },
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/vaults/{vault}/keys/made-here/"
    version = current(personas.vault, "made-here")
    assert (version.kty, version.size, version.curve, version.key_ops) == (kty, size, curve, ops)
    assert version.enabled and version.tags == {"env": "test"}
    assert version.not_before is not None and version.expires is not None
    assert version.not_before.isoformat() == "2030-01-02T03:04:00+00:00"
    assert version.expires.isoformat() == "2031-01-02T03:04:00+00:00"


def test_the_create_form_offers_only_what_fits_the_type(as_: SignIn, personas: Personas) -> None:
    url = f"/vaults/{personas.vault.name}/new-key/"
    rsa_form = text(as_("owner").get(url))
    assert 'value="4096"' in rsa_form and "P-256K" not in rsa_form
    assert 'hx-post="/vaults/' in rsa_form and 'hx-include="closest form"' in rsa_form
    ec_form = htmx_post(
        as_("owner"),
        url,
        {"refresh": "1", "kty": "EC", "name": "kept", "tags": "a=b", "ops": "encrypt"},
    )
    body = text(ec_form)
    assert is_fragment(ec_form) and body.lstrip().startswith('<form id="key-form"')
    assert "P-256K" in body and 'name="size"' not in body
    assert 'value="sign"' in body and 'value="encrypt"' not in body
    assert 'value="kept"' in body and "a=b" in body
    oct_form = text(as_("owner").get(url, {"kty": "oct"}))
    assert 'value="128"' in oct_form and 'value="2048"' not in oct_form
    assert 'value="wrapKey"' in oct_form and 'value="sign"' not in oct_form


def test_a_change_of_type_keeps_what_was_filled_in_but_not_the_old_size(
    as_: SignIn, personas: Personas
) -> None:
    url = f"/vaults/{personas.vault.name}/new-key/"
    client = as_("owner")
    body = text(
        htmx_post(client, url, {"refresh": "1", "kty": "oct", "size": "4096", "name": "kept"})
    )
    assert '<option value="256" selected>' in body
    # The enabled box was unticked (so not sent): it stays unticked.
    assert 'name="enabled" id="id_enabled" checked' not in body
    body = text(htmx_post(client, url, {"refresh": "1", "kty": "oct", "enabled": "on"}))
    assert 'name="enabled" id="id_enabled" checked' in body
    # Without JavaScript the same refresh is a plain post of the whole form.
    body = text(client.post(url, {"refresh": "1", "kty": "EC", "name": "kept"}))
    assert "P-256K" in body and 'value="kept"' in body
    assert not Key.objects.filter(name="kept").exists()


def test_an_empty_submission_says_what_is_missing(as_: SignIn, personas: Personas) -> None:
    for page in ("new-key/", "import-key/", "restore-key/"):
        response = htmx_post(as_("owner"), f"/vaults/{personas.vault.name}/{page}", {})
        assert response.status_code == 200 and is_fragment(response)
        assert "This field is required." in text(response)
    assert not Key.objects.exists()


def test_creating_shows_the_rules_beside_the_fields_and_changes_nothing(
    as_: SignIn, personas: Personas
) -> None:
    response = htmx_post(
        as_("owner"),
        f"/vaults/{personas.vault.name}/new-key/",
        {
            "name": "bad_name",
            "kty": "EC",
            "curve": "P-999",
            "ops": ["encrypt"],
            "not_before": "2031-01-01T00:00",
            "expires": "2030-01-01T00:00",
            "tags": "no equals",
        },
    )
    page = text(response)
    assert response.status_code == 200 and is_fragment(response)
    assert "Use 1-127 letters, digits and hyphens." in page
    assert "Select a valid choice. P-999" in page
    assert "Select a valid choice. encrypt" in page
    assert "must be earlier than the expiry" in page
    assert "Line 1 is not name=value" in page
    assert not Key.objects.exists()


def test_a_deleted_keys_name_is_refused_inside_the_form(
    as_: SignIn, personas: Personas, make_key: Any
) -> None:
    make_key("taken", kty="oct", size=128)
    services.key_delete(actor=personas.owner, vault_name=personas.vault.name, name="taken")
    response = as_("owner").post(
        f"/vaults/{personas.vault.name}/new-key/",
        {"name": "taken", "kty": "oct", "size": "128", "ops": ["encrypt"]},
    )
    assert response.status_code == 200
    assert "deleted but recoverable state" in text(response)
    assert Key.objects.get(name="taken").versions.count() == 1


def test_creating_can_lead_to_the_rotation_policy(as_: SignIn, personas: Personas) -> None:
    vault = personas.vault.name
    response = as_("owner").post(
        f"/vaults/{vault}/new-key/",
        {
            "name": "rotated",
            "kty": "oct",
            "size": "128",
            "ops": ["encrypt"],
            "next_rotation_policy": "on",
        },
    )
    assert response.status_code == 303
    assert response["Location"] == f"/vaults/{vault}/keys/rotated/rotation-policy/"


@pytest.mark.parametrize("persona", ["crypto_user", "reader"])
def test_a_forged_create_is_refused_and_creates_nothing(
    as_: SignIn, personas: Personas, persona: str
) -> None:
    response = as_(persona).post(
        f"/vaults/{personas.vault.name}/new-key/",
        {"name": "forged", "kty": "oct", "size": "128", "ops": ["encrypt"]},
    )
    assert response.status_code == 403
    assert "Caller is not authorized" in text(response)
    assert not Key.objects.filter(name="forged").exists()


# --- importing ---------------------------------------------------------------------------------


def test_the_owner_imports_a_pasted_ec_jwk(as_: SignIn, personas: Personas) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.private_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_int(numbers.public_numbers.x),
        "y": b64url_int(numbers.public_numbers.y),
        "d": b64url_int(numbers.private_value),
        "key_ops": ["sign", "verify"],
    }
    vault = personas.vault.name
    response = htmx_post(
        as_("owner"), f"/vaults/{vault}/import-key/", {"name": "pasted", "pasted": json.dumps(jwk)}
    )
    assert response["HX-Redirect"] == f"/vaults/{vault}/keys/pasted/"
    stored = current(personas.vault, "pasted")
    assert stored.origin == KeyVersion.Origin.IMPORTED and stored.key_ops == ["sign", "verify"]
    assert (int_of(stored.public_jwk, "x"), int_of(stored.public_jwk, "y")) == (
        numbers.public_numbers.x,
        numbers.public_numbers.y,
    )


def test_the_owner_imports_an_encrypted_pem_file(as_: SignIn, personas: Personas) -> None:
    private = rsa.generate_private_key(65537, 2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse"),
    )
    vault = personas.vault.name
    response = as_("owner").post(
        f"/vaults/{vault}/import-key/",
        {
            "name": "from-file",
            "file": SimpleUploadedFile("key.pem", pem),
            "pem_password": "correct horse",
            "ops": ["encrypt", "decrypt"],
            "tags": "source=pem",
        },
    )
    assert response.status_code == 303
    stored = current(personas.vault, "from-file")
    public = private.public_key().public_numbers()
    assert (int_of(stored.public_jwk, "n"), int_of(stored.public_jwk, "e")) == (public.n, public.e)
    assert stored.key_ops == ["encrypt", "decrypt"] and stored.tags == {"source": "pem"}


def test_a_refused_import_never_shows_the_key_again(as_: SignIn, personas: Personas) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right"),
    ).decode()
    response = htmx_post(
        as_("owner"),
        f"/vaults/{personas.vault.name}/import-key/",
        {"name": "secret", "pasted": pem, "pem_password": "wrong"},
    )
    page = text(response)
    assert response.status_code == 200 and is_fragment(response)
    assert "The password does not decrypt the private key." in page
    assert "was cleared and is not shown again" in page
    body = pem.splitlines()[1]
    assert body not in page and "wrong" not in page
    assert not Key.objects.filter(name="secret").exists()


def test_an_import_needs_exactly_one_source(as_: SignIn, personas: Personas) -> None:
    url = f"/vaults/{personas.vault.name}/import-key/"
    response = as_("owner").post(url, {"name": "nothing"})
    assert "Paste the key or choose a file, one of the two." in text(response)
    response = as_("owner").post(url, {"name": "broken", "pasted": "{not json"})
    assert "The key is neither PEM nor JWK JSON." in text(response)
    assert not Key.objects.exists()


def test_a_crypto_user_may_not_import(as_: SignIn, personas: Personas) -> None:
    response = as_("crypto_user").post(
        f"/vaults/{personas.vault.name}/import-key/",
        {"name": "forged", "pasted": json.dumps({"kty": "oct", "k": "AAAAAAAAAAAAAAAAAAAAAA"})},
    )
    assert response.status_code == 403
    assert not Key.objects.filter(name="forged").exists()


# --- restoring ---------------------------------------------------------------------------------


def test_a_backup_is_restored_into_another_vault(
    as_: SignIn, personas: Personas, make_key: Any
) -> None:
    made = make_key("travelling", kty="EC", tags={"a": "b"})
    services.key_rotate(actor=personas.owner, vault_name=personas.vault.name, name="travelling")
    other = VaultFactory.create(name="other-vault", resource_group=personas.vault.resource_group)
    client = as_("owner")
    backup = client.post(f"/vaults/{personas.vault.name}/keys/travelling/backup/")
    assert backup.status_code == 200
    assert backup["Content-Disposition"] == (
        f'attachment; filename="{personas.vault.name}-travelling.keybackup"'
    )
    form = text(client.get(f"/vaults/{personas.vault.name}/restore-key/"))
    assert f'<option value="{personas.vault.name}" selected>' in form
    assert '<option value="other-vault">' in form
    response = htmx_post(
        client,
        f"/vaults/{personas.vault.name}/restore-key/",
        {"vault": "other-vault", "file": SimpleUploadedFile("k.keybackup", backup.content)},
    )
    assert response["HX-Redirect"] == "/vaults/other-vault/keys/travelling/"
    restored = Key.objects.get(vault=other, name="travelling")
    original = Key.objects.get(vault=personas.vault, name="travelling")
    assert sorted(restored.versions.values_list("version", flat=True)) == sorted(
        original.versions.values_list("version", flat=True)
    )
    assert restored.current_version is not None and original.current_version is not None
    assert restored.current_version.public_jwk == original.current_version.public_jwk
    assert made.version in set(restored.versions.values_list("version", flat=True))


def test_a_bad_backup_is_a_form_error(as_: SignIn, personas: Personas) -> None:
    response = as_("owner").post(
        f"/vaults/{personas.vault.name}/restore-key/",
        {"vault": personas.vault.name, "file": SimpleUploadedFile("x", b"not a backup")},
    )
    assert response.status_code == 200
    assert "is not a kvconsole key backup" in text(response)
    assert not Key.objects.exists()


def test_restoring_offers_only_vaults_the_operator_may_restore_into(
    as_: SignIn, personas: Personas
) -> None:
    VaultFactory.create(name="elsewhere")
    form = text(as_("owner").get(f"/vaults/{personas.vault.name}/restore-key/"))
    assert personas.vault.name in form and "elsewhere" not in form


# --- the Deleted keys tab ------------------------------------------------------------------------


@pytest.fixture
def deleted(make_key: Any, personas: Personas) -> Key:
    make_key("gone", kty="oct", size=128)
    return services.key_delete(actor=personas.owner, vault_name=personas.vault.name, name="gone")


@pytest.mark.parametrize(
    ("persona", "buttons"), [("owner", True), ("crypto_user", False), ("reader", False)]
)
def test_deleted_keys_are_listed_with_their_dates(
    as_: SignIn, personas: Personas, deleted: Key, persona: str, buttons: bool
) -> None:
    response = as_(persona).get(f"/vaults/{personas.vault.name}/deleted-keys/")
    page = text(response)
    assert response.status_code == 200 and "gone" in page
    assert deleted.scheduled_purge_at is not None
    assert f"{deleted.scheduled_purge_at:%Y-%m-%d %H:%M}" in page
    assert ">Recover<" in page if buttons else ">Recover<" not in page
    assert ("/deleted-keys/gone/purge/" in page) is buttons
    live = text(as_(persona).get(f"/vaults/{personas.vault.name}/keys/"))
    assert "/keys/gone/" not in live


def test_a_deleted_key_is_recovered(as_: SignIn, personas: Personas, deleted: Key) -> None:
    vault = personas.vault.name
    response = htmx_post(as_("owner"), f"/vaults/{vault}/deleted-keys/gone/recover/")
    assert response["HX-Redirect"] == f"/vaults/{vault}/keys/gone/"
    assert Key.objects.get(pk=deleted.pk).deleted_at is None


def test_a_reader_cannot_recover_nor_purge(as_: SignIn, personas: Personas, deleted: Key) -> None:
    vault = personas.vault.name
    response = htmx_post(as_("reader"), f"/vaults/{vault}/deleted-keys/gone/recover/")
    assert response.status_code == 403 and response["HX-Retarget"] == "#alerts"
    response = as_("reader").post(f"/vaults/{vault}/deleted-keys/gone/purge/", {"confirm": "gone"})
    assert response.status_code == 403
    assert Key.objects.get(pk=deleted.pk).deleted_at is not None


def test_purging_asks_for_the_key_name(as_: SignIn, personas: Personas, deleted: Key) -> None:
    url = f"/vaults/{personas.vault.name}/deleted-keys/gone/purge/"
    confirm = text(as_("owner").get(url))
    assert 'data-confirm-name="gone"' in confirm
    wrong = htmx_post(as_("owner"), url, {"confirm": "Gone"})
    assert wrong.status_code == 200 and is_fragment(wrong)
    assert "Type gone exactly to confirm." in text(wrong)
    assert Key.objects.filter(pk=deleted.pk).exists()
    right = htmx_post(as_("owner"), url, {"confirm": "gone"})
    assert right["HX-Redirect"] == f"/vaults/{personas.vault.name}/deleted-keys/"
    assert not Key.objects.filter(pk=deleted.pk).exists()


def test_a_live_key_has_no_purge_page(as_: SignIn, personas: Personas, make_key: Any) -> None:
    make_key("alive", kty="oct", size=128)
    url = f"/vaults/{personas.vault.name}/deleted-keys/alive/purge/"
    assert as_("owner").get(url).status_code == 404


def test_the_deleted_keys_tab_costs_the_same_queries_for_1_or_20_keys(
    as_: SignIn, personas: Personas, make_key: Any, django_assert_max_num_queries: Any
) -> None:
    client = as_("owner")
    url = f"/vaults/{personas.vault.name}/deleted-keys/"

    def delete(name: str) -> None:
        make_key(name, kty="oct", size=128)
        services.key_delete(actor=personas.owner, vault_name=personas.vault.name, name=name)

    delete("one")
    client.get(url)
    with django_assert_max_num_queries(12) as few:
        client.get(url)
    for number in range(20):
        delete(f"many-{number}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(url)
    assert text(response).count(">Recover<") == 21
