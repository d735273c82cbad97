"""`manage.py demo`: demo data that can be loaded again and again."""

from io import StringIO
from pathlib import Path

import pytest
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
