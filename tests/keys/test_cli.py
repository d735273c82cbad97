"""The `kv` command: through call_command, and as a real process against a database file."""

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from django.core.management import CommandError

from accounts.models import User
from keys.models import Key, KeyVersion
from tests.cli import kv
from tests.processes import make_deployment, query, run_kv, stored_bytes
from vaults.models import ActivityEntry, Vault

ROOT = Path(__file__).resolve().parents[2]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


@pytest.fixture
def cli_vault(db: None) -> str:
    kv("group", "create", "--name", "cli-rg", "--location", "West Europe")
    kv("vault", "create", "--name", "cli-vault", "--resource-group", "cli-rg")
    return "cli-vault"


def test_vault_create_prints_the_azure_shape(cli_vault: str) -> None:
    shown = kv("vault", "show", "--name", cli_vault)
    assert shown["type"] == "Microsoft.KeyVault/vaults"
    assert shown["location"] == "westeurope"
    assert shown["properties"]["softDeleteRetentionInDays"] == 90
    assert shown["properties"]["vaultUri"].startswith("https://cli-vault.")


def test_key_create_defaults_and_sign_verifies_with_cryptography(cli_vault: str) -> None:
    bundle = kv("key", "create", "--vault-name", cli_vault, "--name", "signer")
    assert bundle["key"]["kty"] == "RSA"
    assert bundle["key"]["key_ops"] == [
        "encrypt",
        "decrypt",
        "sign",
        "verify",
        "wrapKey",
        "unwrapKey",
    ]
    public_key = rsa.RSAPublicNumbers(
        b64url_int(bundle["key"]["e"]), b64url_int(bundle["key"]["n"])
    ).public_key()
    digest = hashlib.sha256(b"message").digest()
    signed = kv(
        "key",
        "sign",
        "--vault-name",
        cli_vault,
        "--name",
        "signer",
        "--algorithm",
        "PS256",
        "--digest",
        b64(digest),
    )
    signature = base64.urlsafe_b64decode(signed["value"] + "==")
    public_key.verify(
        signature,
        digest,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        utils.Prehashed(hashes.SHA256()),
    )
    assert signed["kid"] == bundle["key"]["kid"]
    verified = kv(
        "key",
        "verify",
        "--vault-name",
        cli_vault,
        "--name",
        "signer",
        "--algorithm",
        "PS256",
        "--digest",
        b64(digest),
        "--signature",
        b64(signature),
    )
    assert verified == {"value": True}


def test_key_lifecycle_rotate_revert_delete_recover(cli_vault: str) -> None:
    first = kv(
        "key",
        "create",
        "--vault-name",
        cli_vault,
        "--name",
        "k",
        "--kty",
        "EC",
        "--curve",
        "P-384",
        "--tags",
        "team=platform",
    )
    second = kv("key", "rotate", "--vault-name", cli_vault, "--name", "k")
    assert second["key"]["crv"] == "P-384" and second["key"]["x"] != first["key"]["x"]
    assert second["tags"] == {"team": "platform"}
    first_version = first["key"]["kid"].rsplit("/", 1)[1]
    reverted = kv(
        "key", "revert", "--vault-name", cli_vault, "--name", "k", "--version", first_version
    )
    assert reverted["key"]["x"] == first["key"]["x"]
    assert len(kv("key", "list-versions", "--vault-name", cli_vault, "--name", "k")) == 3

    deleted = kv("key", "delete", "--vault-name", cli_vault, "--name", "k")
    assert deleted["recoveryId"].endswith("/deletedkeys/k")
    assert deleted["scheduledPurgeDate"] - deleted["deletedDate"] == 90 * 86400
    assert kv("key", "list", "--vault-name", cli_vault) == []
    assert [
        item["recoveryId"] for item in kv("key", "list-deleted", "--vault-name", cli_vault)
    ] == [deleted["recoveryId"]]
    recovered = kv("key", "recover", "--vault-name", cli_vault, "--name", "k")
    assert recovered["key"]["kid"] == reverted["key"]["kid"]


def test_set_attributes_changes_only_the_named_version(cli_vault: str) -> None:
    old = kv("key", "create", "--vault-name", cli_vault, "--name", "k", "--kty", "oct")
    kv("key", "rotate", "--vault-name", cli_vault, "--name", "k")
    old_version = old["key"]["kid"].rsplit("/", 1)[1]
    updated = kv(
        "key",
        "set-attributes",
        "--vault-name",
        cli_vault,
        "--name",
        "k",
        "--version",
        old_version,
        "--enabled",
        "false",
        "--expires",
        "2030-01-01T00:00:00Z",
        "--ops",
        "decrypt",
        "unwrapKey",
    )
    assert updated["attributes"]["enabled"] is False
    assert updated["attributes"]["exp"] == 1893456000
    assert updated["key"]["key_ops"] == ["decrypt", "unwrapKey"]
    current = kv("key", "show", "--vault-name", cli_vault, "--name", "k")
    assert current["attributes"]["enabled"] is True


def test_oct_encrypt_decrypt_round_trip_through_cli(cli_vault: str) -> None:
    kv("key", "create", "--vault-name", cli_vault, "--name", "aes", "--kty", "oct", "--size", "128")
    encrypted = kv(
        "key",
        "encrypt",
        "--vault-name",
        cli_vault,
        "--name",
        "aes",
        "--algorithm",
        "A128GCM",
        "--value",
        b64(b"secret text"),
    )
    assert set(encrypted) >= {"kid", "value", "iv", "tag"}
    decrypted = kv(
        "key",
        "decrypt",
        "--vault-name",
        cli_vault,
        "--name",
        "aes",
        "--algorithm",
        "A128GCM",
        # base64url output may begin with "-"; the = form keeps argparse from taking it
        # for an option.
        f"--value={encrypted['value']}",
        f"--iv={encrypted['iv']}",
        f"--tag={encrypted['tag']}",
    )
    assert base64.urlsafe_b64decode(decrypted["value"] + "==") == b"secret text"


def test_import_pem_file_and_backup_restore(cli_vault: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    private_key = ec.generate_private_key(ec.SECP256R1())
    pem_path = tmp_path / "key.pem"
    pem_path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    imported = kv(
        "key", "import", "--vault-name", cli_vault, "--name", "imp", "--pem-file", str(pem_path)
    )
    assert b64url_int(imported["key"]["x"]) == private_key.public_key().public_numbers().x

    backup_path = tmp_path / "imp.backup"
    kv("key", "backup", "--vault-name", cli_vault, "--name", "imp", "--file", str(backup_path))
    kv("vault", "create", "--name", "other-vault", "--resource-group", "cli-rg")
    restored = kv("key", "restore", "--vault-name", "other-vault", "--file", str(backup_path))
    assert restored["key"]["kid"].endswith(imported["key"]["kid"].split("/keys/", 1)[1])
    assert restored["key"]["x"] == imported["key"]["x"]


def test_errors_exit_with_azure_codes_and_change_nothing(cli_vault: str) -> None:
    with pytest.raises(CommandError, match=r"\(KeyNotFound\)") as not_found:
        kv("key", "show", "--vault-name", cli_vault, "--name", "missing")
    assert not_found.value.returncode == 3
    with pytest.raises(CommandError, match=r"\(BadParameter\) Unsupported key operation") as bad:
        kv(
            "key",
            "create",
            "--vault-name",
            cli_vault,
            "--name",
            "e",
            "--kty",
            "EC",
            "--ops",
            "sign",
            "wrapKey",
        )
    assert bad.value.returncode == 2
    assert not Key.objects.filter(name="e").exists()
    with pytest.raises(CommandError, match=r"\(VaultNotFound\)"):
        kv("key", "list", "--vault-name", "no-such-vault")


def test_as_runs_as_that_principal_and_forbidden_exits_4(cli_vault: str) -> None:
    User.objects.create_user(username="mallory", password="pw-not-used-here")
    with pytest.raises(CommandError, match=r"\(Forbidden\)") as forbidden:
        kv("key", "create", "--vault-name", cli_vault, "--name", "k", "--as", "mallory")
    assert forbidden.value.returncode == 4
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.actor_name, entry.result, entry.face) == ("mallory", "Forbidden", "cli")


def test_default_actor_is_the_cli_system_principal(cli_vault: str) -> None:
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    principal = User.objects.get(username=entry.actor_name)
    assert principal.kind == User.Kind.SYSTEM and principal.username.startswith("cli:")
    assert entry.face == "cli"


def test_table_output(cli_vault: str) -> None:
    kv("key", "create", "--vault-name", cli_vault, "--name", "tabled", "--kty", "EC")
    table = kv("key", "list", "--vault-name", cli_vault, "--output", "table")
    assert "tabled" in table and "kid" in table


def test_activity_verify_reports_ok_then_tampering(cli_vault: str) -> None:
    from django.db import connection

    report = kv("activity", "verify")
    assert report["ok"] is True and report["checked"] == report["head"]["seq"] >= 2
    with connection.cursor() as cursor:
        cursor.execute("UPDATE vaults_activityentry SET actor_name = 'someone' WHERE seq = 1")
    with pytest.raises(CommandError, match="ActivityChainBroken") as broken:
        kv("activity", "verify")
    assert broken.value.returncode == 6


def test_master_key_rotate_through_cli(cli_vault: str, fresh_keyring: Path) -> None:
    kv("key", "create", "--vault-name", cli_vault, "--name", "r", "--kty", "EC")
    before = json.loads(fresh_keyring.read_text())["primary"]
    result = kv("master-key", "rotate", "--batch-size", "1")
    assert result["rewrapped"] == 1 and result["primaryKeyId"] != before
    assert set(KeyVersion.objects.values_list("master_key_id", flat=True)) == {
        result["primaryKeyId"]
    }


# --- as a real process ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_deployment(tmp_path_factory.mktemp("deployment"))


def test_subprocess_flow_exit_codes_and_stderr(deployment: dict[str, str]) -> None:
    assert (
        run_kv(deployment, "group", "create", "-n", "proc-rg", "-l", "northeurope").returncode == 0
    )
    created = run_kv(
        deployment,
        "vault",
        "create",
        "-n",
        "proc-vault",
        "-g",
        "proc-rg",
        "--retention-days",
        "7",
        "--enable-purge-protection",
        "true",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["properties"]["enablePurgeProtection"] is True

    key = run_kv(
        deployment,
        "key",
        "create",
        "--vault-name",
        "proc-vault",
        "-n",
        "p1",
        "--kty",
        "EC",
        "--curve",
        "P-256K",
    )
    assert key.returncode == 0, key.stderr
    bundle = json.loads(key.stdout)

    digest = hashlib.sha256(b"subprocess").digest()
    signed = run_kv(
        deployment,
        "key",
        "sign",
        "--vault-name",
        "proc-vault",
        "-n",
        "p1",
        "-a",
        "ES256K",
        "--digest",
        b64(digest),
    )
    assert signed.returncode == 0, signed.stderr
    raw = base64.urlsafe_b64decode(json.loads(signed.stdout)["value"] + "==")
    public_key = ec.EllipticCurvePublicNumbers(
        b64url_int(bundle["key"]["x"]), b64url_int(bundle["key"]["y"]), ec.SECP256K1()
    ).public_key()
    public_key.verify(
        utils.encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        ),
        digest,
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )

    wrong = run_kv(
        deployment,
        "key",
        "sign",
        "--vault-name",
        "proc-vault",
        "-n",
        "p1",
        "-a",
        "ES256K",
        "--digest",
        b64(b"short"),
    )
    assert wrong.returncode == 2
    assert "BadParameter" in wrong.stderr and wrong.stdout == ""

    assert (
        run_kv(deployment, "key", "delete", "--vault-name", "proc-vault", "-n", "p1").returncode
        == 0
    )
    protected = run_kv(deployment, "key", "purge", "--vault-name", "proc-vault", "-n", "p1")
    assert protected.returncode == 4 and "purge protection" in protected.stderr

    listed = run_kv(deployment, "activity", "list", "--vault-name", "proc-vault", "--top", "3")
    entries = json.loads(listed.stdout)
    assert [entry["operationName"] for entry in entries] == ["KeyPurge", "KeyDelete", "KeySign"]
    assert entries[0]["resultType"] == "Forbidden" and entries[0]["face"] == "cli"
    assert entries[2]["resultType"] == "BadParameter"

    verified = run_kv(deployment, "activity", "verify")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True


def test_subprocess_bad_option_is_a_usage_error(deployment: dict[str, str]) -> None:
    result = run_kv(deployment, "key", "create", "--vault-name", "x")
    assert result.returncode != 0
    assert "--name" in result.stderr


# --- the raw database file ------------------------------------------------------------------


def _encodings(number: int) -> list[bytes]:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return [
        raw,
        raw.hex().encode(),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def test_database_file_holds_no_private_material(
    deployment: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    """Scan every byte the database stores (tests/processes.py, stored_bytes) for the private
    parts of stored keys."""
    from cryptography.hazmat.primitives import serialization

    from keys import protection

    directory = Path(deployment["KVCONSOLE_VAR_DIR"])
    run_kv(deployment, "group", "create", "-n", "scan-rg", "-l", "westeurope")
    run_kv(deployment, "vault", "create", "-n", "scan-vault", "-g", "scan-rg")
    for name, options in {
        "rsa": ["--kty", "RSA"],
        "ec": ["--kty", "EC", "--curve", "P-521"],
        "oct": ["--kty", "oct", "--size", "256"],
    }.items():
        assert (
            run_kv(
                deployment, "key", "create", "--vault-name", "scan-vault", "-n", name, *options
            ).returncode
            == 0
        )
    imported = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "imported.pem"
    pem.write_bytes(
        imported.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    assert (
        run_kv(
            deployment,
            "key",
            "import",
            "--vault-name",
            "scan-vault",
            "-n",
            "imported",
            "--file",
            str(pem),
        ).returncode
        == 0
    )

    settings.KVCONSOLE_MASTER_KEY_FILE = directory / "master-keys.json"
    rows = query(
        deployment,
        "SELECT v.kty, v.version, v.master_key_id, v.wrapped_data_key, v.sealed_material,"
        " CAST(v.public_jwk AS TEXT), k.name, CAST(vault.uid AS TEXT) FROM keys_keyversion v"
        " JOIN keys_key k ON v.key_id = k.id JOIN vaults_vault vault ON k.vault_id = vault.id"
        " WHERE vault.name = 'scan-vault'",
    )
    secrets: list[int] = []
    for kty, version, master_key_id, wrapped, sealed, public_jwk, name, vault_uid in rows:
        # An unsaved row with the stored values, only to compute what the material is bound to.
        row = KeyVersion(
            key=Key(vault=Vault(uid=uuid.UUID(vault_uid)), name=name),
            version=version,
            kty=kty,
            public_jwk=json.loads(public_jwk),
        )
        material = protection.unprotect(
            kty, protection.ProtectedMaterial(master_key_id, wrapped, sealed), aad=row.storage_aad
        )
        key = material.key
        if isinstance(key, rsa.RSAPrivateKey):
            numbers = key.private_numbers()
            secrets += [numbers.d, numbers.p, numbers.q]
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            secrets.append(key.private_numbers().private_value)
        else:
            secrets.append(int.from_bytes(key, "big"))
    assert len(rows) == 4
    assert imported.private_numbers().d in secrets

    stored = stored_bytes(deployment)
    for secret in secrets:
        for encoding in _encodings(secret):
            assert encoding not in stored


def test_wrap_and_unwrap_through_cli(cli_vault: str) -> None:
    kv("key", "create", "--vault-name", cli_vault, "--name", "kek", "--kty", "oct")
    data_key = os.urandom(32)
    wrapped = kv("key", "wrap", "--vault-name", cli_vault, "--name", "kek",
                 "--algorithm", "A256KW", "--value", b64(data_key))  # fmt: skip
    assert len(base64.urlsafe_b64decode(wrapped["value"] + "==")) == 40
    unwrapped = kv("key", "unwrap", "--vault-name", cli_vault, "--name", "kek",
                   "--algorithm", "A256KW", f"--value={wrapped['value']}")  # fmt: skip
    assert base64.urlsafe_b64decode(unwrapped["value"] + "==") == data_key


def test_import_encrypted_pem_with_a_password_file(cli_vault: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    imported = kv("key", "import", "--vault-name", cli_vault, "--name", "enc",
                  "--pem-file", str(pem), "--pem-password-file", str(password))  # fmt: skip
    assert b64url_int(imported["key"]["n"]) == private_key.public_key().public_numbers().n
    password.write_text("wrong")
    with pytest.raises(CommandError, match=r"\(BadParameter\)"):
        kv("key", "import", "--vault-name", cli_vault, "--name", "enc2",
           "--pem-file", str(pem), "--pem-password-file", str(password))  # fmt: skip
