"""Applications (service principals), their client secrets and certificates, and signing in.

Personas: `person` registers and owns applications; `outsider` is another person; `owner`
is a superuser; `system` a system principal; another application's principal acts too.
"""

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection
from django.utils import timezone

from accounts import shapes
from accounts.models import Application, CertificateCredential, ClientSecret, User
from accounts.roles import RoleDefinition, role_named
from keys import services as key_services
from keys.models import KeyVersion
from kvconsole.errors import BadParameter, Conflict, Forbidden, NotFound, Unauthorized
from tests.accounts.certificates import der, key_body, make_certificate, pem, private_pem
from tests.factories import UserFactory
from vaults import services
from vaults.models import ActivityEntry, Operation, Result, Vault, VaultUserObjectPermission
from vaults.permissions import grant_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(db: None) -> User:
    """A person with no special rights, who registers applications and so owns them."""
    return UserFactory.create(username="alice")


@pytest.fixture
def app(person: User) -> Application:
    return services.application_create(actor=person, display_name="billing-service")


@pytest.fixture
def other_app_principal(system: User) -> User:
    """The principal of another, unrelated application."""
    return services.application_create(actor=system, display_name="other-service").user


def last_entry(operation: str | None = None) -> ActivityEntry:
    entries = ActivityEntry.objects.order_by("-seq")
    if operation is not None:
        entries = entries.filter(operation=operation)
    entry = entries.first()
    assert entry is not None
    return entry


def activity_text() -> str:
    """Every activity entry's fields as one text, to search for what must not be there."""
    return "\n".join(repr(row) for row in ActivityEntry.objects.values_list())


def database_text() -> str:
    """Every cell of every table, as text: what a raw look at the database would show."""
    cells: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        # As stored: an ASCII secret in a binary column would still show.
                        cells.append(bytes(value).decode("latin-1"))
                    else:
                        cells.append(str(value))
    return "\n".join(cells)


def crypto_user() -> RoleDefinition:
    role = role_named("Key Vault Crypto User")
    assert role is not None
    return role


def expire(secret: ClientSecret) -> None:
    ClientSecret.objects.filter(pk=secret.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


# --- create ----------------------------------------------------------------------------------


def test_a_person_registers_an_application_and_owns_it(person: User) -> None:
    app = services.application_create(actor=person, display_name="  billing-service ")
    assert app.display_name == "billing-service"
    assert app.owner == person and app.enabled
    principal = app.user
    assert principal.kind == User.Kind.APPLICATION
    assert principal.username == f"app:{app.client_id}"
    assert principal.display_name == "billing-service"
    assert principal.is_active and not principal.has_usable_password()
    assert not principal.is_staff and not principal.is_superuser
    entry = last_entry()
    assert (entry.operation, entry.result, entry.actor_name) == (
        Operation.APPLICATION_CREATE,
        Result.SUCCESS,
        "alice",
    )
    assert entry.target == f"applications/{app.client_id}"


def test_a_superuser_owns_what_it_registers_and_a_system_principal_owns_nothing(
    owner: User, system: User
) -> None:
    assert services.application_create(actor=owner, display_name="a").owner == owner
    assert services.application_create(actor=system, display_name="b").owner is None


def test_applications_and_inactive_people_may_not_register_applications(
    other_app_principal: User,
) -> None:
    inactive = UserFactory.create(is_active=False)
    for actor in (other_app_principal, inactive):
        with pytest.raises(Forbidden):
            services.application_create(actor=actor, display_name="sneaky")
        entry = last_entry()
        assert (entry.operation, entry.result, entry.actor_name) == (
            Operation.APPLICATION_CREATE,
            Result.FORBIDDEN,
            actor.username,
        )
    assert not Application.objects.filter(display_name="sneaky").exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 121])
def test_create_refuses_bad_display_names_and_creates_nothing(person: User, name: str) -> None:
    users = User.objects.count()
    with pytest.raises(BadParameter, match="display name"):
        services.application_create(actor=person, display_name=name)
    assert User.objects.count() == users and not Application.objects.exists()
    assert last_entry().result == Result.BAD_PARAMETER


# --- read ------------------------------------------------------------------------------------


def test_any_active_principal_reads_the_directory(
    app: Application, outsider: User, other_app_principal: User
) -> None:
    for actor in (outsider, other_app_principal):
        assert services.application_get(actor=actor, client_id=str(app.client_id)) == app
        assert app in services.application_list(actor=actor)
    entry = last_entry()
    assert (entry.operation, entry.result, entry.target) == (
        Operation.APPLICATION_LIST,
        Result.SUCCESS,
        "applications",
    )


def test_an_inactive_principal_reads_nothing(app: Application) -> None:
    inactive = UserFactory.create(is_active=False)
    with pytest.raises(Forbidden):
        services.application_list(actor=inactive)
    with pytest.raises(Forbidden):
        services.application_get(actor=inactive, client_id=str(app.client_id))


def test_get_refuses_a_client_id_that_is_not_a_guid(person: User) -> None:
    with pytest.raises(BadParameter, match="GUID"):
        services.application_get(actor=person, client_id="billing-service")
    assert last_entry().result == Result.BAD_PARAMETER


def test_get_of_an_unknown_application_is_not_found_as_graph_says(person: User) -> None:
    missing = "7d5b3a4e-0000-4000-8000-000000000000"
    with pytest.raises(NotFound) as error:
        services.application_get(actor=person, client_id=missing)
    assert error.value.code == "ApplicationNotFound"
    assert error.value.message.startswith(f"Resource '{missing}' does not exist")
    entry = last_entry()
    assert (entry.result, entry.target) == (Result.NOT_FOUND, f"applications/{missing}")


# --- update ----------------------------------------------------------------------------------


def test_the_owner_renames_and_disables_its_application(person: User, app: Application) -> None:
    updated = services.application_update(
        actor=person, client_id=str(app.client_id), display_name="billing", enabled=False
    )
    app.refresh_from_db()
    app.user.refresh_from_db()
    assert updated.display_name == app.display_name == app.user.display_name == "billing"
    assert not app.enabled and not app.user.is_active
    services.application_update(actor=person, client_id=str(app.client_id), enabled=True)
    app.refresh_from_db()
    app.user.refresh_from_db()
    assert app.enabled and app.user.is_active and app.display_name == "billing"
    assert last_entry().operation == Operation.APPLICATION_UPDATE


def test_a_superuser_and_a_system_principal_may_update_any_application(
    app: Application, owner: User, system: User
) -> None:
    for actor in (owner, system):
        services.application_update(actor=actor, client_id=str(app.client_id), enabled=False)
    assert Application.objects.get(pk=app.pk).enabled is False


@pytest.mark.parametrize("who", ["outsider", "other_app_principal", "the application itself"])
def test_only_the_owner_or_an_administrator_may_update(
    app: Application, who: str, request: pytest.FixtureRequest
) -> None:
    actor = app.user if who == "the application itself" else request.getfixturevalue(who)
    with pytest.raises(Forbidden) as error:
        services.application_update(actor=actor, client_id=str(app.client_id), enabled=False)
    assert error.value.code == "Authorization_RequestDenied"
    assert Application.objects.get(pk=app.pk).enabled
    entry = last_entry()
    assert (entry.result, entry.target) == (Result.FORBIDDEN, f"applications/{app.client_id}")


def test_update_refuses_a_bad_display_name(person: User, app: Application) -> None:
    with pytest.raises(BadParameter):
        services.application_update(actor=person, client_id=str(app.client_id), display_name=" ")
    assert Application.objects.get(pk=app.pk).display_name == "billing-service"


# --- delete ----------------------------------------------------------------------------------


def test_delete_removes_the_principal_credentials_and_grants(
    person: User, app: Application, vault: Vault
) -> None:
    services.application_secret_add(actor=person, client_id=str(app.client_id))
    services.application_certificate_add(
        actor=person, client_id=str(app.client_id), certificate=pem(make_certificate()[0])
    )
    grant_role(app.user, crypto_user(), vault)
    permission_rows = VaultUserObjectPermission.objects
    assert permission_rows.filter(user=app.user).exists()

    services.application_delete(actor=person, client_id=str(app.client_id))

    assert not User.objects.filter(pk=app.user_id).exists()
    assert not Application.objects.filter(pk=app.pk).exists()
    assert not ClientSecret.objects.exists() and not CertificateCredential.objects.exists()
    assert not permission_rows.filter(user_id=app.user_id).exists()
    entry = last_entry()
    assert (entry.operation, entry.result) == (Operation.APPLICATION_DELETE, Result.SUCCESS)


@pytest.mark.parametrize("who", ["outsider", "other_app_principal"])
def test_only_the_owner_or_an_administrator_may_delete(
    app: Application, who: str, request: pytest.FixtureRequest, owner: User
) -> None:
    with pytest.raises(Forbidden):
        services.application_delete(
            actor=request.getfixturevalue(who), client_id=str(app.client_id)
        )
    assert Application.objects.filter(pk=app.pk).exists()
    services.application_delete(actor=owner, client_id=str(app.client_id))
    assert not Application.objects.filter(pk=app.pk).exists()


# --- client secrets --------------------------------------------------------------------------


def test_a_secret_is_40_url_safe_characters_stored_only_as_a_salted_hash(
    person: User, app: Application
) -> None:
    issued = services.application_secret_add(
        actor=person, client_id=str(app.client_id), description="deploy"
    )
    value = issued.value
    assert len(value) == 40
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    stored = ClientSecret.objects.get(pk=issued.credential.pk)
    assert stored.hint == value[:3] and stored.description == "deploy"
    assert len(stored.salt) == 32 and bytes.fromhex(stored.salt)
    expected = hashlib.sha256(bytes.fromhex(stored.salt) + value.encode()).hexdigest()
    assert stored.secret_hash == expected
    for shown in (repr(issued), str(issued.credential), repr(issued.credential), repr(stored)):
        assert value not in shown and stored.secret_hash not in shown


def test_two_secrets_have_different_salts_and_hashes(person: User, app: Application) -> None:
    first = services.application_secret_add(actor=person, client_id=str(app.client_id))
    second = services.application_secret_add(actor=person, client_id=str(app.client_id))
    assert first.value != second.value
    rows = ClientSecret.objects.order_by("created_at")
    assert rows[0].salt != rows[1].salt and rows[0].secret_hash != rows[1].secret_hash


def test_no_table_and_no_activity_entry_holds_a_secret_value(
    person: User, app: Application
) -> None:
    values = [
        services.application_secret_add(actor=person, client_id=str(app.client_id)).value
        for _ in range(3)
    ]
    services.application_sign_in(client_id=str(app.client_id), secret=values[0])
    with pytest.raises(Unauthorized):
        services.application_sign_in(client_id=str(app.client_id), secret=values[0] + "x")
    stored = database_text()
    logged = activity_text()
    assert str(app.client_id) in stored  # the scan does see the application's rows
    for value in values:
        assert value not in stored
        assert value not in logged
    for secret in ClientSecret.objects.all():
        assert secret.secret_hash not in logged and secret.salt not in logged


def test_a_secret_expires_after_a_year_by_default(person: User, app: Application) -> None:
    before = timezone.now()
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    expected = services.years_from(before, 1)
    assert expected <= issued.credential.expires_at <= expected + timedelta(seconds=5)


def test_a_secret_may_last_up_to_two_years(person: User, app: Application) -> None:
    end = timezone.now() + timedelta(days=729)
    issued = services.application_secret_add(
        actor=person, client_id=str(app.client_id), expires_at=end
    )
    assert issued.credential.expires_at == end


@pytest.mark.parametrize(
    ("expires_at", "message"),
    [
        (datetime.now(UTC) - timedelta(minutes=1), "in the future"),
        (datetime.now(UTC) + timedelta(days=2 * 366 + 1), "at most 2 years"),
        (datetime(2030, 1, 1), "time zone"),
    ],
    ids=["past", "beyond-two-years", "naive"],
)
def test_secret_expiry_is_checked(
    person: User, app: Application, expires_at: datetime, message: str
) -> None:
    with pytest.raises(BadParameter, match=message):
        services.application_secret_add(
            actor=person, client_id=str(app.client_id), expires_at=expires_at
        )
    assert not ClientSecret.objects.exists()
    assert last_entry().result == Result.BAD_PARAMETER


def test_replace_deletes_the_other_secrets(person: User, app: Application) -> None:
    old = services.application_secret_add(actor=person, client_id=str(app.client_id))
    new = services.application_secret_add(actor=person, client_id=str(app.client_id), replace=True)
    assert list(ClientSecret.objects.values_list("key_id", flat=True)) == [new.credential.key_id]
    with pytest.raises(Unauthorized, match="AADSTS7000215"):
        services.application_sign_in(client_id=str(app.client_id), secret=old.value)
    assert services.application_sign_in(client_id=str(app.client_id), secret=new.value) == (
        app.user
    )


@pytest.mark.parametrize("who", ["outsider", "other_app_principal"])
def test_only_the_owner_or_an_administrator_adds_secrets(
    app: Application, who: str, request: pytest.FixtureRequest
) -> None:
    with pytest.raises(Forbidden):
        services.application_secret_add(
            actor=request.getfixturevalue(who), client_id=str(app.client_id)
        )
    assert not ClientSecret.objects.exists()
    assert last_entry().operation == Operation.APPLICATION_SECRET_ADD


def test_secret_add_is_recorded_against_the_new_credential(person: User, app: Application) -> None:
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    entry = last_entry()
    assert (entry.operation, entry.result) == (Operation.APPLICATION_SECRET_ADD, Result.SUCCESS)
    assert entry.target == (
        f"applications/{app.client_id}/passwordCredentials/{issued.credential.key_id}"
    )


# --- signing in with a secret ----------------------------------------------------------------


def test_sign_in_with_a_live_secret_returns_the_application_principal(
    person: User, app: Application
) -> None:
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    assert services.application_sign_in(client_id=str(app.client_id), secret=issued.value) == (
        app.user
    )
    entry = last_entry()
    assert (entry.operation, entry.result) == (Operation.APPLICATION_SIGN_IN, Result.SUCCESS)
    assert entry.actor_name == app.user.username and entry.actor_oid == app.user.oid
    assert entry.actor_kind == User.Kind.APPLICATION
    assert entry.target == f"applications/{app.client_id}"


def test_sign_in_with_a_wrong_secret_is_invalid_client(person: User, app: Application) -> None:
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    for wrong in (issued.value[:-1] + ("A" if issued.value[-1] != "A" else "B"), "", "x" * 40):
        with pytest.raises(Unauthorized) as error:
            services.application_sign_in(client_id=str(app.client_id), secret=wrong)
        assert error.value.code == "invalid_client"
        assert error.value.message.startswith("AADSTS7000215: Invalid client secret provided.")
        assert str(app.client_id) in error.value.message
        assert issued.value not in error.value.message
    entry = last_entry()
    assert (entry.result, entry.status_code, entry.actor_name) == (
        Result.UNAUTHORIZED,
        401,
        app.user.username,
    )


def test_sign_in_with_a_revoked_secret_is_invalid_client(person: User, app: Application) -> None:
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    services.application_credential_delete(
        actor=person, client_id=str(app.client_id), key_id=str(issued.credential.key_id)
    )
    with pytest.raises(Unauthorized, match="AADSTS7000215") as error:
        services.application_sign_in(client_id=str(app.client_id), secret=issued.value)
    assert error.value.code == "invalid_client"


def test_sign_in_with_an_expired_secret_says_it_expired(person: User, app: Application) -> None:
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    expire(issued.credential)
    with pytest.raises(Unauthorized) as error:
        services.application_sign_in(client_id=str(app.client_id), secret=issued.value)
    assert error.value.code == "invalid_client"
    assert error.value.message.startswith(
        f"AADSTS7000222: The provided client secret keys for app '{app.client_id}' are expired."
    )
    assert issued.value not in error.value.message


def test_an_expired_secret_does_not_block_a_live_one(person: User, app: Application) -> None:
    old = services.application_secret_add(actor=person, client_id=str(app.client_id))
    expire(old.credential)
    new = services.application_secret_add(actor=person, client_id=str(app.client_id))
    assert services.application_sign_in(client_id=str(app.client_id), secret=new.value)


def test_a_disabled_application_cannot_sign_in(person: User, app: Application) -> None:
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    services.application_update(actor=person, client_id=str(app.client_id), enabled=False)
    with pytest.raises(Unauthorized) as error:
        services.application_sign_in(client_id=str(app.client_id), secret=issued.value)
    assert error.value.code == "unauthorized_client"
    assert error.value.message == (
        f"AADSTS7000112: Application '{app.client_id}'(billing-service) is disabled."
    )


def test_an_unknown_application_is_unauthorized_client(db: None) -> None:
    unknown = "0b7f5f0e-1111-4222-8333-444455556666"
    with pytest.raises(Unauthorized) as error:
        services.application_sign_in(client_id=unknown, secret="whatever-it-is")
    assert error.value.code == "unauthorized_client"
    assert error.value.message.startswith(
        f"AADSTS700016: Application with identifier '{unknown}' was not found"
    )
    entry = last_entry()
    assert (entry.operation, entry.result, entry.actor_name, entry.actor_kind) == (
        Operation.APPLICATION_SIGN_IN,
        Result.UNAUTHORIZED,
        unknown,
        User.Kind.APPLICATION,
    )
    assert entry.actor_oid is None
    assert not User.objects.filter(username=unknown).exists()


def test_a_client_id_that_is_not_a_guid_is_never_echoed(person: User, app: Application) -> None:
    # Someone who swaps the fields sends the secret as the client id.
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    with pytest.raises(Unauthorized) as error:
        services.application_sign_in(client_id=issued.value, secret=str(app.client_id))
    assert error.value.code == "unauthorized_client"
    assert issued.value not in error.value.message
    assert issued.value not in activity_text()


# --- disabled applications and authorize() ---------------------------------------------------


def test_a_disabled_application_holding_a_role_is_refused_by_authorize(
    person: User, app: Application, vault: Vault, make_key: Any
) -> None:
    make_key("payments", kty="EC")
    grant_role(app.user, crypto_user(), vault)
    read = {"vault_name": vault.name, "name": "payments"}
    assert isinstance(key_services.key_get(actor=app.user, **read), KeyVersion)

    services.application_update(actor=person, client_id=str(app.client_id), enabled=False)
    disabled = User.objects.get(pk=app.user_id)
    with pytest.raises(Forbidden):
        key_services.key_get(actor=disabled, **read)
    assert last_entry().result == Result.FORBIDDEN

    services.application_update(actor=person, client_id=str(app.client_id), enabled=True)
    assert key_services.key_get(actor=User.objects.get(pk=app.user_id), **read)


# --- certificates ----------------------------------------------------------------------------


def test_certificate_thumbprints_match_an_independent_computation(
    person: User, app: Application
) -> None:
    certificate, _ = make_certificate("billing.example")
    stored = services.application_certificate_add(
        actor=person,
        client_id=str(app.client_id),
        certificate=pem(certificate),
        description="prod",
    )
    raw = der(certificate)
    assert stored.thumbprint_sha1 == hashlib.sha1(raw).hexdigest().upper()  # noqa: S324
    assert stored.thumbprint_sha256 == hashlib.sha256(raw).hexdigest().upper()
    assert stored.subject == "O=Example\\, Inc.,CN=billing.example"
    assert stored.not_before == certificate.not_valid_before_utc
    assert stored.not_after == certificate.not_valid_after_utc
    assert stored.certificate_pem.encode() == pem(certificate)
    assert stored.description == "prod"
    entry = last_entry()
    assert (entry.operation, entry.result) == (
        Operation.APPLICATION_CERTIFICATE_ADD,
        Result.SUCCESS,
    )
    assert entry.target.endswith(f"/keyCredentials/{stored.key_id}")


def test_a_der_rsa_certificate_is_accepted_and_stored_as_pem(
    person: User, app: Application
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate, _ = make_certificate(key=key)
    stored = services.application_certificate_add(
        actor=person, client_id=str(app.client_id), certificate=der(certificate)
    )
    assert stored.certificate_pem.encode() == pem(certificate)
    assert stored.thumbprint_sha256 == hashlib.sha256(der(certificate)).hexdigest().upper()


def test_a_private_key_is_refused_and_never_echoed(person: User, app: Application) -> None:
    certificate, key = make_certificate()
    for upload in (private_pem(key), pem(certificate) + private_pem(key)):
        with pytest.raises(BadParameter, match="only the public certificate") as error:
            services.application_certificate_add(
                actor=person, client_id=str(app.client_id), certificate=upload
            )
        assert key_body(key) not in error.value.message
    assert not CertificateCredential.objects.exists()
    assert key_body(key) not in activity_text()
    assert key_body(key) not in database_text()


def test_an_expired_certificate_is_refused(person: User, app: Application) -> None:
    now = datetime.now(UTC)
    certificate, _ = make_certificate(
        not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    with pytest.raises(BadParameter, match="expired"):
        services.application_certificate_add(
            actor=person, client_id=str(app.client_id), certificate=pem(certificate)
        )
    assert not CertificateCredential.objects.exists()


@pytest.mark.parametrize(
    "upload",
    [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ids=["empty", "junk", "bad-pem"],
)
def test_unreadable_certificates_are_refused(person: User, app: Application, upload: bytes) -> None:
    with pytest.raises(BadParameter):
        services.application_certificate_add(
            actor=person, client_id=str(app.client_id), certificate=upload
        )


def test_a_chain_is_refused(person: User, app: Application) -> None:
    chain = pem(make_certificate("a")[0]) + pem(make_certificate("b")[0])
    with pytest.raises(BadParameter, match="2 certificates"):
        services.application_certificate_add(
            actor=person, client_id=str(app.client_id), certificate=chain
        )


def test_a_weak_rsa_key_is_refused(person: User, app: Application) -> None:
    # A weak key is what is being refused.
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(BadParameter, match="1024 bits"):
        services.application_certificate_add(
            actor=person,
            client_id=str(app.client_id),
            certificate=pem(make_certificate(key=key)[0]),
        )


def test_the_same_certificate_twice_is_a_conflict(person: User, app: Application) -> None:
    upload = pem(make_certificate()[0])
    services.application_certificate_add(
        actor=person, client_id=str(app.client_id), certificate=upload
    )
    with pytest.raises(Conflict):
        services.application_certificate_add(
            actor=person, client_id=str(app.client_id), certificate=upload
        )
    assert CertificateCredential.objects.count() == 1
    assert last_entry().result == Result.CONFLICT


@pytest.mark.parametrize("who", ["outsider", "other_app_principal"])
def test_only_the_owner_or_an_administrator_adds_certificates(
    app: Application, who: str, request: pytest.FixtureRequest
) -> None:
    with pytest.raises(Forbidden):
        services.application_certificate_add(
            actor=request.getfixturevalue(who),
            client_id=str(app.client_id),
            certificate=pem(make_certificate()[0]),
        )
    assert not CertificateCredential.objects.exists()


# --- listing and revoking credentials ---------------------------------------------------------


def test_credential_list_is_metadata_shaped_like_graph(
    person: User, app: Application, outsider: User
) -> None:
    issued = services.application_secret_add(
        actor=person, client_id=str(app.client_id), description="ci"
    )
    certificate, _ = make_certificate()
    stored = services.application_certificate_add(
        actor=person, client_id=str(app.client_id), certificate=pem(certificate)
    )
    found = services.application_credential_list(actor=outsider, client_id=str(app.client_id))
    shaped = shapes.credentials(found)
    assert shaped["appId"] == str(app.client_id)
    [password] = shaped["passwordCredentials"]
    assert password == {
        "keyId": str(issued.credential.key_id),
        "displayName": "ci",
        "hint": issued.value[:3],
        "startDateTime": shapes.graph_time(issued.credential.created_at),
        "endDateTime": shapes.graph_time(issued.credential.expires_at),
    }
    [key] = shaped["keyCredentials"]
    assert key["customKeyIdentifier"] == hashlib.sha1(der(certificate)).hexdigest().upper()  # noqa: S324
    assert key["thumbprintSha256"] == stored.thumbprint_sha256
    assert (key["type"], key["usage"], key["keyId"]) == (
        "AsymmetricX509Cert",
        "Verify",
        str(stored.key_id),
    )
    text = repr(shaped) + repr(found)
    secret_row = ClientSecret.objects.get()
    for hidden in (issued.value, secret_row.salt, secret_row.secret_hash):
        assert hidden not in text
    # The salt and hash were not even loaded.
    loaded = found.secrets[0].__dict__
    assert "secret_hash" not in loaded and "salt" not in loaded
    assert last_entry().operation == Operation.APPLICATION_CREDENTIAL_LIST


def test_application_shape(person: User, app: Application) -> None:
    assert shapes.application(app) == {
        "appId": str(app.client_id),
        "displayName": "billing-service",
        "id": str(app.user.oid),
        "accountEnabled": True,
        "owner": "alice",
        "createdDateTime": shapes.graph_time(app.created_at),
    }
    assert shapes.graph_time(app.created_at).endswith("Z")


def test_revoking_a_certificate_deletes_it(person: User, app: Application) -> None:
    stored = services.application_certificate_add(
        actor=person, client_id=str(app.client_id), certificate=pem(make_certificate()[0])
    )
    services.application_credential_delete(
        actor=person, client_id=str(app.client_id), key_id=str(stored.key_id)
    )
    assert not CertificateCredential.objects.exists()
    entry = last_entry()
    assert (entry.operation, entry.result) == (
        Operation.APPLICATION_CREDENTIAL_DELETE,
        Result.SUCCESS,
    )
    assert entry.target == f"applications/{app.client_id}/keyCredentials/{stored.key_id}"


def test_revoking_an_unknown_or_malformed_key_id(person: User, app: Application) -> None:
    with pytest.raises(NotFound) as error:
        services.application_credential_delete(
            actor=person,
            client_id=str(app.client_id),
            key_id="3f1d0c5e-0000-4000-8000-000000000000",
        )
    assert error.value.code == "CredentialNotFound"
    with pytest.raises(BadParameter):
        services.application_credential_delete(
            actor=person, client_id=str(app.client_id), key_id="nope"
        )


def test_a_credential_of_another_application_cannot_be_revoked_through_this_one(
    person: User, app: Application
) -> None:
    mine = services.application_create(actor=person, display_name="mine")
    theirs = services.application_secret_add(actor=person, client_id=str(app.client_id))
    with pytest.raises(NotFound):
        services.application_credential_delete(
            actor=person, client_id=str(mine.client_id), key_id=str(theirs.credential.key_id)
        )
    assert ClientSecret.objects.filter(pk=theirs.credential.pk).exists()


@pytest.mark.parametrize("who", ["outsider", "other_app_principal"])
def test_only_the_owner_or_an_administrator_revokes(
    person: User, app: Application, who: str, request: pytest.FixtureRequest
) -> None:
    issued = services.application_secret_add(actor=person, client_id=str(app.client_id))
    with pytest.raises(Forbidden):
        services.application_credential_delete(
            actor=request.getfixturevalue(who),
            client_id=str(app.client_id),
            key_id=str(issued.credential.key_id),
        )
    assert ClientSecret.objects.filter(pk=issued.credential.pk).exists()


# --- the record ------------------------------------------------------------------------------


def test_every_operation_is_recorded_once_with_its_result(person: User, outsider: User) -> None:
    app = services.application_create(actor=person, display_name="recorded")
    client_id = str(app.client_id)
    issued = services.application_secret_add(actor=person, client_id=client_id)
    stored = services.application_certificate_add(
        actor=person, client_id=client_id, certificate=pem(make_certificate()[0])
    )
    services.application_get(actor=outsider, client_id=client_id)
    list(services.application_list(actor=outsider))
    services.application_credential_list(actor=outsider, client_id=client_id)
    services.application_update(actor=person, client_id=client_id, display_name="renamed")
    services.application_sign_in(client_id=client_id, secret=issued.value)
    services.application_credential_delete(
        actor=person, client_id=client_id, key_id=str(stored.key_id)
    )
    with pytest.raises(Forbidden):
        services.application_delete(actor=outsider, client_id=client_id)
    services.application_delete(actor=person, client_id=client_id)

    recorded = list(
        ActivityEntry.objects.order_by("seq").values_list("operation", "result", "actor_name")
    )
    app_name = f"app:{client_id}"
    assert recorded == [
        (Operation.APPLICATION_CREATE, Result.SUCCESS, "alice"),
        (Operation.APPLICATION_SECRET_ADD, Result.SUCCESS, "alice"),
        (Operation.APPLICATION_CERTIFICATE_ADD, Result.SUCCESS, "alice"),
        (Operation.APPLICATION_GET, Result.SUCCESS, outsider.username),
        (Operation.APPLICATION_LIST, Result.SUCCESS, outsider.username),
        (Operation.APPLICATION_CREDENTIAL_LIST, Result.SUCCESS, outsider.username),
        (Operation.APPLICATION_UPDATE, Result.SUCCESS, "alice"),
        (Operation.APPLICATION_SIGN_IN, Result.SUCCESS, app_name),
        (Operation.APPLICATION_CREDENTIAL_DELETE, Result.SUCCESS, "alice"),
        (Operation.APPLICATION_DELETE, Result.FORBIDDEN, outsider.username),
        (Operation.APPLICATION_DELETE, Result.SUCCESS, "alice"),
    ]
    assert issued.value not in activity_text()
