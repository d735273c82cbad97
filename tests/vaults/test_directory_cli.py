"""`kv ad app ...`: through call_command, and as a real process against a database file."""

import hashlib
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts import tokens
from accounts.models import Application, ClientSecret, User, WorkloadIdentity
from kvconsole.errors import Unauthorized
from tests.accounts.certificates import der, key_body, make_certificate, pem, private_pem
from tests.cli import kv, kv_fails
from tests.factories import UserFactory
from tests.processes import make_deployment, run_kv, stored_bytes
from vaults import services
from vaults.models import ActivityEntry, Operation, Result

pytestmark = pytest.mark.django_db


@pytest.fixture
def app_id(db: None) -> str:
    return str(kv("ad", "app", "create", "--display-name", "billing-service")["appId"])


def test_create_prints_the_graph_shape(db: None) -> None:
    created = kv("ad", "app", "create", "--display-name", "billing-service")
    app = Application.objects.select_related("user").get(client_id=created["appId"])
    assert created == {
        "appId": str(app.client_id),
        "displayName": "billing-service",
        "id": str(app.user.oid),
        "accountEnabled": True,
        # The CLI runs as a system principal, which owns nothing.
        "owner": None,
        "createdDateTime": created["createdDateTime"],
    }
    assert created["createdDateTime"].endswith("Z")
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.operation, entry.face) == (Operation.APPLICATION_CREATE, "cli")


def test_a_person_creating_with_as_becomes_the_owner(db: None) -> None:
    UserFactory.create(username="alice")
    created = kv("ad", "app", "create", "--display-name", "mine", "--as", "alice")
    assert created["owner"] == "alice"


def test_list_show_update(app_id: str) -> None:
    assert [item["appId"] for item in kv("ad", "app", "list")] == [app_id]
    assert kv("ad", "app", "show", "--id", app_id)["displayName"] == "billing-service"
    updated = kv(
        "ad", "app", "update", "--id", app_id, "--display-name", "billing", "--enabled", "false"
    )
    assert (updated["displayName"], updated["accountEnabled"]) == ("billing", False)
    assert not User.objects.get(application__client_id=app_id).is_active
    table = kv("ad", "app", "list", "--output", "table")
    assert "billing" in table and "appId" in table


def test_errors_exit_with_codes(app_id: str) -> None:
    bad = kv_fails("ad", "app", "show", "--id", "not-a-guid")
    assert bad.returncode == 2 and "(BadParameter)" in str(bad)
    missing = kv_fails("ad", "app", "show", "--id", "4b0f3f6e-0000-4000-8000-000000000000")
    assert missing.returncode == 3 and "(ApplicationNotFound)" in str(missing)
    UserFactory.create(username="mallory")
    forbidden = kv_fails(
        "ad", "app", "update", "--id", app_id, "--enabled", "false", "--as", "mallory"
    )
    assert forbidden.returncode == 4 and "(Authorization_RequestDenied)" in str(forbidden)
    assert Application.objects.get(client_id=app_id).enabled


def test_credential_reset_prints_the_password_once_and_it_signs_in(app_id: str) -> None:
    reset = kv("ad", "app", "credential", "reset", "--id", app_id, "--display-name", "ci")
    assert set(reset) == {"appId", "password"}  # no "tenant": the deployment has none
    assert reset["appId"] == app_id and len(reset["password"]) == 40
    principal = services.application_sign_in(client_id=app_id, secret=reset["password"])
    assert principal.username == f"app:{app_id}"

    listed = kv("ad", "app", "credential", "list", "--id", app_id)
    shown = json.dumps(listed) + json.dumps(kv("ad", "app", "show", "--id", app_id))
    assert reset["password"] not in shown
    [password] = listed["passwordCredentials"]
    assert password["hint"] == reset["password"][:3] and password["displayName"] == "ci"
    assert set(password) == {"keyId", "displayName", "hint", "startDateTime", "endDateTime"}
    secret = ClientSecret.objects.get()
    assert secret.salt not in shown and secret.secret_hash not in shown
    assert reset["password"] not in "".join(str(row) for row in ActivityEntry.objects.values_list())


def test_reset_replaces_unless_appended(app_id: str) -> None:
    first = kv("ad", "app", "credential", "reset", "--id", app_id)["password"]
    second = kv("ad", "app", "credential", "reset", "--id", app_id)["password"]
    with pytest.raises(Unauthorized, match="AADSTS7000215"):
        services.application_sign_in(client_id=app_id, secret=first)
    third = kv("ad", "app", "credential", "reset", "--id", app_id, "--append")["password"]
    for password in (second, third):
        assert services.application_sign_in(client_id=app_id, secret=password)
    assert ClientSecret.objects.count() == 2


def test_reset_validity_options(app_id: str) -> None:
    two_years = kv("ad", "app", "credential", "reset", "--id", app_id, "--years", "2", "--append")
    assert two_years["password"]
    secret = ClientSecret.objects.get()
    assert secret.expires_at.year - secret.created_at.year == 2
    too_long = kv_fails("ad", "app", "credential", "reset", "--id", app_id, "--years", "3")
    assert too_long.returncode == 2 and "at most 2 years" in str(too_long)
    past = kv_fails("ad", "app", "credential", "reset", "--id", app_id, "--end-date", "2020-01-01")
    assert past.returncode == 2 and "in the future" in str(past)
    far = kv_fails("ad", "app", "credential", "reset", "--id", app_id, "--end-date", "2099-01-01")
    assert far.returncode == 2
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None
    assert (entry.operation, entry.result) == (
        Operation.APPLICATION_SECRET_ADD,
        Result.BAD_PARAMETER,
    )
    # Refused resets replaced nothing.
    assert ClientSecret.objects.count() == 1
    end = (timezone.now() + timedelta(days=400)).date()
    dated = kv("ad", "app", "credential", "reset", "--id", app_id, "--end-date", end.isoformat())
    assert dated["password"]
    # A date without a time or zone is midnight UTC, as az takes it.
    assert ClientSecret.objects.get().expires_at == datetime.combine(end, time(), tzinfo=UTC)


def test_credential_delete_revokes(app_id: str) -> None:
    password = kv("ad", "app", "credential", "reset", "--id", app_id)["password"]
    [listed] = kv("ad", "app", "credential", "list", "--id", app_id)["passwordCredentials"]
    assert (
        kv("ad", "app", "credential", "delete", "--id", app_id, "--key-id", listed["keyId"]) == ""
    )
    with pytest.raises(Unauthorized, match="AADSTS7000215"):
        services.application_sign_in(client_id=app_id, secret=password)
    gone = kv_fails(
        "ad", "app", "credential", "delete", "--id", app_id, "--key-id", listed["keyId"]
    )
    assert gone.returncode == 3 and "(CredentialNotFound)" in str(gone)


def test_cert_upload_from_a_path_or_at_path(app_id: str, tmp_path: Path) -> None:
    first, _ = make_certificate("one.example")
    second, _ = make_certificate("two.example")
    (tmp_path / "one.pem").write_bytes(pem(first))
    (tmp_path / "two.cer").write_bytes(der(second))
    uploaded = kv(
        "ad",
        "app",
        "cert",
        "upload",
        "--id",
        app_id,
        "--cert",
        str(tmp_path / "one.pem"),
        "--display-name",
        "prod",
    )
    assert uploaded["customKeyIdentifier"] == hashlib.sha1(der(first)).hexdigest().upper()  # noqa: S324
    assert uploaded["thumbprintSha256"] == hashlib.sha256(der(first)).hexdigest().upper()
    assert (uploaded["type"], uploaded["usage"], uploaded["displayName"]) == (
        "AsymmetricX509Cert",
        "Verify",
        "prod",
    )
    kv("ad", "app", "cert", "upload", "--id", app_id, "--cert", f"@{tmp_path / 'two.cer'}")
    listed = kv("ad", "app", "credential", "list", "--id", app_id)["keyCredentials"]
    assert sorted(item["subject"] for item in listed) == [
        "O=Example\\, Inc.,CN=one.example",
        "O=Example\\, Inc.,CN=two.example",
    ]
    assert {item["customKeyIdentifier"] for item in listed} == {
        hashlib.sha1(der(certificate)).hexdigest().upper()  # noqa: S324
        for certificate in (first, second)
    }
    duplicate = kv_fails(
        "ad", "app", "cert", "upload", "--id", app_id, "--cert", str(tmp_path / "one.pem")
    )
    assert duplicate.returncode == 5
    revoked = kv("ad", "app", "credential", "delete", "--id", app_id, "--key-id", uploaded["keyId"])
    assert revoked == ""
    assert len(kv("ad", "app", "credential", "list", "--id", app_id)["keyCredentials"]) == 1


def test_cert_upload_refuses_a_private_key_without_echoing_it(app_id: str, tmp_path: Path) -> None:
    certificate, key = make_certificate()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(certificate) + private_pem(key))
    refused = kv_fails("ad", "app", "cert", "upload", "--id", app_id, "--cert", str(bundle))
    assert refused.returncode == 2 and "only the public certificate" in str(refused)
    assert key_body(key) not in str(refused)
    missing = kv_fails("ad", "app", "cert", "upload", "--id", app_id, "--cert", "@/nonexistent.pem")
    assert missing.returncode == 2 and "Cannot read" in str(missing)


def test_delete(app_id: str) -> None:
    assert kv("ad", "app", "delete", "--id", app_id) == ""
    assert not Application.objects.exists()
    assert not User.objects.filter(username=f"app:{app_id}").exists()


# --- as a real process ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_deployment(tmp_path_factory.mktemp("deployment"))


def test_the_database_file_never_holds_a_secret_value(deployment: dict[str, str]) -> None:
    """Scan every byte the database stores (tests/processes.py, stored_bytes) for the secrets
    a real process made."""
    created = run_kv(deployment, "ad", "app", "create", "--display-name", "scanned")
    assert created.returncode == 0, created.stderr
    app_id = json.loads(created.stdout)["appId"]
    passwords = []
    for options in ([], ["--append"], ["--append", "--years", "2"]):
        reset = run_kv(deployment, "ad", "app", "credential", "reset", "--id", app_id, *options)
        assert reset.returncode == 0, reset.stderr
        passwords.append(json.loads(reset.stdout)["password"])
    listed = run_kv(deployment, "ad", "app", "credential", "list", "--id", app_id)
    assert len(json.loads(listed.stdout)["passwordCredentials"]) == 3
    activity = run_kv(deployment, "activity", "list", "--top", "10")
    assert activity.returncode == 0, activity.stderr

    stored = stored_bytes(deployment)
    assert app_id.encode() in stored  # the scan does see the application's rows
    for password in passwords:
        assert password.encode() not in stored
        assert password not in listed.stdout + activity.stdout


def test_identity_add_prints_the_workload_environment_once(app_id: str) -> None:
    added = kv("ad", "app", "identity", "add", "--id", app_id, "--display-name", "billing worker")
    assert added["identityEndpoint"].endswith("/msi/token")
    secret = added["identityHeader"]
    assert len(secret) == 43 and added["hint"] == secret[:3]
    stored = WorkloadIdentity.objects.get(key_id=added["keyId"])
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    listed = kv("ad", "app", "identity", "list", "--id", app_id)
    assert listed == [
        {
            "keyId": added["keyId"],
            "displayName": "billing worker",
            "hint": secret[:3],
            "createdDateTime": added["createdDateTime"],
        }
    ]
    assert secret not in json.dumps(listed)
    issued, application = services.managed_identity_token_issue(
        api_version="2019-08-01", identity_secret=secret, resource=tokens.vault_resource()
    )
    assert str(application.client_id) == app_id and issued.access_token
    kv("ad", "app", "identity", "delete", "--id", app_id, "--key-id", added["keyId"])
    assert kv("ad", "app", "identity", "list", "--id", app_id) == []
    with pytest.raises(Unauthorized):
        services.managed_identity_token_issue(
            api_version="2019-08-01", identity_secret=secret, resource=tokens.vault_resource()
        )
    error = kv_fails("ad", "app", "identity", "delete", "--id", app_id, "--key-id", added["keyId"])
    assert "CredentialNotFound" in str(error)


@pytest.mark.usefixtures("fresh_token_keys")
def test_token_key_rotate_is_for_deployment_principals(db: None) -> None:
    before = tokens.keyring.signing_key().kid
    rotated = kv("token-key", "rotate")
    assert rotated["kid"] != before and tokens.keyring.signing_key().kid == rotated["kid"]
    assert [key.kid for key in tokens.keyring.current()] == [rotated["kid"], before]
    UserFactory.create(username="bob")
    assert "Forbidden" in str(kv_fails("token-key", "rotate", "--as", "bob"))
    assert tokens.keyring.signing_key().kid == rotated["kid"]
    entry = ActivityEntry.objects.order_by("-seq").first()
    assert entry is not None and (entry.operation, entry.result) == (
        "TokenSigningKeyRotate",
        "Forbidden",
    )
