"""What an operator does in a day, in Chromium: keys of each type, rotation, the crypto
playground, delete, recover and purge, access given and taken away as another person sees
it, a reader who can change nothing, and the activity tab that shows all of it."""

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from playwright.sync_api import Page, expect

from accounts.models import User
from keys.models import Key
from tests.browser.conftest import screenshot
from tests.conftest import Personas
from tests.factories import UserFactory

pytestmark = pytest.mark.slow


def create_key(page: Page, vault: str, name: str, kty: str, size_or_curve: str) -> None:
    page.goto(f"/vaults/{vault}/keys/")
    page.get_by_role("link", name="Create key").click()
    page.get_by_label("Name", exact=True).fill(name)
    if kty != "RSA":
        page.get_by_label("Key type").select_option(kty)
        # The form comes back from the server with the sizes or curves of the new type.
        label = "Curve" if kty == "EC" else "Key size"
        expect(page.get_by_label(label)).to_be_visible()
    if kty == "EC":
        page.get_by_label("Curve").select_option(size_or_curve)
    else:
        page.get_by_label("Key size").select_option(size_or_curve)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text(f"Key {name} created")).to_be_visible()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_keys_of_each_type_rotation_the_playground_and_the_activity_tab(
    open_page: Callable[..., Page], personas: Personas
) -> None:
    vault = personas.vault.name
    page = open_page(personas.owner)
    create_key(page, vault, "app-rsa", "RSA", "3072")
    create_key(page, vault, "app-ec", "EC", "P-384")
    create_key(page, vault, "app-oct", "oct", "256")
    page.goto(f"/vaults/{vault}/keys/")
    for name in ("app-rsa", "app-ec", "app-oct"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    screenshot(page, "key-list")
    rsa_key = Key.objects.get(name="app-rsa")
    assert rsa_key.current_version is not None and rsa_key.current_version.size == 3072
    ec_key = Key.objects.get(name="app-ec")
    assert ec_key.current_version is not None and ec_key.current_version.curve == "P-384"

    # Rotate, and see the new version become current.
    page.get_by_role("link", name="app-rsa", exact=True).click()
    first = rsa_key.current_version.version
    page.get_by_role("button", name="Rotate now").click()
    expect(page.get_by_text("Key app-rsa rotated")).to_be_visible()
    rsa_key.refresh_from_db()
    second = rsa_key.current_version.version
    assert second != first
    expect(page.locator("tr.current")).to_contain_text(second)
    expect(page.get_by_role("link", name=first, exact=True)).to_be_visible()
    screenshot(page, "key-detail")

    # Encrypt, then decrypt, in the playground of the current version.
    page.get_by_role("link", name=f"Playground for {second}").click()
    expect(page.get_by_role("heading", name="Crypto playground")).to_be_visible()
    page.locator("#id_encrypt-algorithm").select_option("RSA-OAEP-256")
    page.locator("#id_encrypt-plaintext").fill("meet at noon")
    page.get_by_role("button", name="Encrypt", exact=True).click()
    ciphertext = page.locator("#op-encrypt-result code[id*='ciphertext']")
    expect(ciphertext).not_to_be_empty()
    page.locator("#id_decrypt-algorithm").select_option("RSA-OAEP-256")
    page.locator("#id_decrypt-ciphertext_as").select_option("base64")
    page.locator("#id_decrypt-ciphertext").fill(ciphertext.inner_text())
    page.get_by_role("button", name="Decrypt", exact=True).click()
    expect(page.locator("#op-decrypt-result")).to_contain_text("meet at noon")
    screenshot(page, "playground")

    # Sign a message, check the signature with cryptography, and verify it in the page.
    page.get_by_role("link", name="Sign / verify").click()
    page.locator("#id_sign-algorithm").select_option("PS256")
    page.locator("#id_sign-message").fill("release 1.4.2")
    page.get_by_role("button", name="Sign", exact=True).click()
    signature = page.locator("#op-sign-result code[id*='signature']")
    expect(signature).not_to_be_empty()
    jwk = rsa_key.current_version.public_jwk
    public = rsa.RSAPublicNumbers(
        int.from_bytes(b64url_decode(jwk["e"])), int.from_bytes(b64url_decode(jwk["n"]))
    ).public_key()
    public.verify(
        b64url_decode(signature.inner_text()),
        b"release 1.4.2",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    page.locator("#id_verify-algorithm").select_option("PS256")
    page.locator("#id_verify-message").fill("release 1.4.2")
    page.locator("#id_verify-signature_as").select_option("base64")
    page.locator("#id_verify-signature").fill(signature.inner_text())
    page.get_by_role("button", name="Verify", exact=True).click()
    expect(page.locator("#op-verify-result")).to_contain_text("Valid.")

    # Soft delete, recover, delete again and purge with the name typed.
    page.goto(f"/vaults/{vault}/keys/app-ec/")
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete app-ec").click()
    expect(page.get_by_text("Key app-ec deleted")).to_be_visible()
    page.get_by_role("navigation", name="Vault").get_by_role("link", name="Deleted keys").click()
    page.get_by_role("button", name="Recover app-ec").click()
    expect(page.get_by_text("Key app-ec recovered.")).to_be_visible()
    assert Key.objects.get(name="app-ec").deleted_at is None
    page.goto(f"/vaults/{vault}/keys/app-ec/delete/")
    page.get_by_role("button", name="Delete app-ec").click()
    page.goto(f"/vaults/{vault}/deleted-keys/")
    screenshot(page, "deleted-keys")
    page.get_by_role("link", name="Purge app-ec").click()
    purge = page.get_by_role("button", name="Purge app-ec")
    expect(purge).to_be_disabled()
    page.get_by_label("Type the name to confirm").fill("app-e")
    expect(purge).to_be_disabled()
    page.get_by_label("Type the name to confirm").fill("app-ec")
    purge.click()
    expect(page.get_by_text("Key app-ec purged")).to_be_visible()
    assert not Key.objects.filter(name="app-ec").exists()

    # The vault's activity tab shows every one of those operations.
    page.goto(f"/vaults/{vault}/activity/")
    table = page.locator("#activity-table")
    for operation in (
        "KeyCreate",
        "KeyRotate",
        "KeyEncrypt",
        "KeyDecrypt",
        "KeySign",
        "KeyVerify",
        "KeyDelete",
        "KeyRecover",
        "KeyPurge",
    ):
        expect(table.get_by_role("cell", name=operation, exact=True).first).to_be_visible()
    screenshot(page, "vault-activity")


def test_a_role_assignment_gives_and_takes_a_right_as_the_other_person_sees_it(
    open_page: Callable[..., Page], personas: Personas, make_key: Callable[..., object]
) -> None:
    make_key("shared-key", kty="EC")
    vault = personas.vault.name
    colleague = UserFactory.create(username="colleague")
    theirs = open_page(colleague)
    theirs.goto(f"/vaults/{vault}/keys/")
    expect(theirs.get_by_role("heading", name="Not found")).to_be_visible()

    page = open_page(personas.owner)
    page.goto(f"/vaults/{vault}/access/")
    page.get_by_label("Principal", exact=True).fill("colleague")
    # The picker suggests as one types (and its request is done before the form is sent).
    expect(page.locator("datalist option[value='colleague']")).to_have_count(1)
    page.get_by_label("Role", exact=True).select_option(label="Key Vault Reader")
    page.get_by_role("button", name="Add role assignment").click()
    assigned = page.get_by_role("row").filter(has_text=colleague.display_name)
    expect(assigned).to_contain_text("Key Vault Reader")
    screenshot(page, "vault-access")

    theirs.goto(f"/vaults/{vault}/keys/")
    expect(theirs.get_by_role("link", name="shared-key")).to_be_visible()

    assigned.get_by_role("link", name="Remove").click()
    page.get_by_role("button", name="Remove").click()
    expect(page.get_by_role("row").filter(has_text=colleague.display_name)).to_have_count(0)

    theirs.goto(f"/vaults/{vault}/keys/")
    expect(theirs.get_by_role("heading", name="Not found")).to_be_visible()


def test_a_reader_sees_no_key_controls_and_forged_posts_are_refused(
    open_page: Callable[..., Page], personas: Personas, make_key: Callable[..., object]
) -> None:
    make_key("guarded", kty="EC")
    vault = personas.vault.name
    page = open_page(personas.reader)
    page.goto(f"/vaults/{vault}/keys/")
    expect(page.get_by_role("link", name="guarded")).to_be_visible()
    expect(page.get_by_role("link", name="Create key")).to_have_count(0)
    page.get_by_role("link", name="guarded").click()
    for control in ("Rotate now", "Delete", "Download backup"):
        expect(page.get_by_role("button", name=control)).to_have_count(0)
        expect(page.get_by_role("link", name=control, exact=True)).to_have_count(0)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    for action in ("rotate", "delete"):
        forged = page.request.post(
            f"/vaults/{vault}/keys/guarded/{action}/",
            headers={"X-CSRFToken": token, "Referer": page.url},
        )
        assert forged.status == 403, action
    key = Key.objects.get(name="guarded")
    assert key.deleted_at is None and key.versions.count() == 1


def test_an_application_is_registered_and_its_secret_shown_once(
    open_page: Callable[..., Page], owner: User, personas: Personas
) -> None:
    page = open_page(owner)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Applications").click()
    page.get_by_role("link", name="Register application").click()
    page.get_by_label("Display name").fill("billing-service")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Application billing-service registered")).to_be_visible()
    page.get_by_role("link", name="New client secret").click()
    page.get_by_label("Description").fill("ci")
    page.get_by_role("button", name="Add secret").click()
    shown = page.locator("#new-secret")
    expect(shown).not_to_be_empty()
    expect(page.get_by_role("button", name="Copy value")).to_be_visible()
    secret = shown.inner_text()
    page.reload()
    assert secret not in page.content()
    screenshot(page, "application-detail")
    page.goto("/applications/")
    screenshot(page, "application-list")


def test_the_main_pages_are_captured(
    open_page: Callable[..., Page], personas: Personas, make_key: Callable[..., object]
) -> None:
    make_key("expiring", kty="EC")
    page = open_page(personas.owner)
    for path, name in (
        ("/", "overview"),
        ("/groups/", "group-list"),
        (f"/groups/{personas.vault.resource_group.name}/", "group-detail"),
        ("/vaults/", "vault-list"),
        (f"/vaults/{personas.vault.name}/properties/", "vault-properties"),
        (f"/vaults/{personas.vault.name}/new-key/", "key-create"),
        ("/activity/", "activity"),
        (f"/search/?q={personas.vault.name}", "search"),
    ):
        page.goto(path)
        expect(page.locator("main h1").first).to_be_visible()
        screenshot(page, name)
