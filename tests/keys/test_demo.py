"""`manage.py demo`: demo data that can be loaded again and again."""

import ipaddress
import json
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from django.core.management import call_command

from accounts.models import Application, User
from keys import services as key_services
from keys.models import Key
from kvconsole.errors import Forbidden
from vaults import services as vault_services
from vaults.models import ResourceGroup, RoleAssignment, Vault


@pytest.fixture
def var_dir(tmp_path: Path, settings) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path


def demo() -> str:
    out = StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_creates_a_group_a_vault_three_keys_and_an_admin(var_dir: Path) -> None:
    output = demo()
    assert ResourceGroup.objects.filter(name="demo-rg").exists()
    vault = Vault.objects.get(name="demo-vault")
    kinds = dict(vault.keys.values_list("name", "current_version__kty"))
    assert kinds == {"demo-rsa": "RSA", "demo-ec": "EC", "demo-oct": "oct"}
    admin = User.objects.get(username="admin")
    password = (var_dir / "admin-password").read_text().strip()
    assert admin.is_superuser and admin.check_password(password)
    assert f"admin / {password}" in output
    assert (var_dir / "admin-password").stat().st_mode & 0o777 == 0o600


@pytest.mark.django_db
def test_demo_application_may_manage_the_demo_keys_and_nothing_more(
    var_dir: Path, system: User
) -> None:
    output = demo()
    application = Application.objects.get(display_name="demo-app")
    assert str(application.client_id) in output
    principal = application.user
    version = key_services.key_get(actor=principal, vault_name="demo-vault", name="demo-ec")
    assert version.key.name == "demo-ec"
    created = key_services.key_create(
        actor=principal, vault_name="demo-vault", name="made-by-the-app", kty="EC"
    )
    assert created.key.vault.name == "demo-vault"
    with pytest.raises(Forbidden):
        vault_services.vault_update(actor=principal, name="demo-vault", tags={"x": "y"})
    vault_services.vault_create(actor=system, name="other-vault", resource_group="demo-rg")
    with pytest.raises(Forbidden):
        key_services.key_create(actor=principal, vault_name="other-vault", name="k", kty="EC")


@pytest.mark.django_db
def test_demo_runs_again_without_losing_or_duplicating_anything(var_dir: Path) -> None:
    demo()
    versions = {key.name: key.current_version_id for key in Key.objects.all()}
    output = demo()
    assert {key.name: key.current_version_id for key in Key.objects.all()} == versions
    assert User.objects.filter(username="admin").count() == 1
    assert Application.objects.count() == RoleAssignment.objects.count() == 1
    assert (var_dir / "admin-password").read_text().strip() in output


@pytest.mark.django_db
def test_demo_leaves_soft_deleted_names_alone(var_dir: Path, system: User) -> None:
    demo()
    key_services.key_delete(actor=system, vault_name="demo-vault", name="demo-ec")
    demo()
    assert Key.objects.get(name="demo-ec").is_deleted

    vault_services.vault_delete(actor=system, name="demo-vault", force=True)
    output = demo()
    assert "soft-deleted" in output
    assert Vault.objects.get(name="demo-vault").is_deleted


@pytest.mark.django_db
def test_demo_takes_the_admin_password_from_the_environment(var_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("KVCONSOLE_ADMIN_PASSWORD", "from-the-environment")
    demo()
    assert User.objects.get(username="admin").check_password("from-the-environment")
    assert not (var_dir / "admin-password").exists()


@pytest.mark.django_db
def test_demo_writes_tls_files_and_the_connection_file(var_dir: Path, settings) -> None:
    output = demo()
    tls = var_dir / "tls"
    assert {path.name for path in tls.iterdir()} >= {"ca.pem", "server.pem", "server-key.pem"}
    assert (tls / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert (tls / "server-key.pem").stat().st_mode & 0o777 == 0o600
    certificate = x509.load_pem_x509_certificate((tls / "server.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", f"*.{settings.KVCONSOLE_VAULT_HOST_SUFFIX}"} <= set(
        names.get_values_for_type(x509.DNSName)
    )
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    connection_file = var_dir / "dev-connection.json"
    assert connection_file.stat().st_mode & 0o777 == 0o600
    connection = json.loads(connection_file.read_text())
    port = settings.KVCONSOLE_VAULT_PORT
    assert connection["vault_url"] == f"https://127.0.0.1:{port}"
    assert connection["authority"] == f"https://{settings.KVCONSOLE_CONSOLE_HOST}"
    assert connection["tenant"] == settings.KVCONSOLE_TENANT_ID
    assert connection["ca_file"] == str(tls / "ca.pem")
    for value in (connection["client_secret"], connection["client_id"], str(tls / "ca.pem")):
        assert value in output
    application = Application.objects.get(client_id=connection["client_id"])
    assert (
        vault_services.application_sign_in(
            client_id=connection["client_id"], secret=connection["client_secret"]
        )
        == application.user
    )
    vault = Vault.objects.get(name="demo-vault")
    assert [alias.host for alias in vault.host_aliases.all()] == [f"127.0.0.1:{port}"]


@pytest.mark.django_db
def test_demo_keeps_a_working_secret_and_replaces_a_revoked_one(var_dir: Path) -> None:
    first = json.loads((demo(), (var_dir / "dev-connection.json").read_text())[1])
    again = json.loads((demo(), (var_dir / "dev-connection.json").read_text())[1])
    assert again["client_secret"] == first["client_secret"]
    system = User.objects.get(username="system:demo")
    listed = vault_services.application_credential_list(actor=system, client_id=first["client_id"])
    vault_services.application_credential_delete(
        actor=system, client_id=first["client_id"], key_id=str(listed.secrets[0].key_id)
    )
    renewed = json.loads((demo(), (var_dir / "dev-connection.json").read_text())[1])
    assert renewed["client_secret"] != first["client_secret"]
    assert vault_services.application_sign_in(
        client_id=renewed["client_id"], secret=renewed["client_secret"]
    )
    # The certificate is kept: clients that trust the CA keep trusting the server.
    assert renewed["ca_file"] == first["ca_file"]
