"""The token service, through azure-identity and MSAL: client secrets, certificates (RS256
with x5t and PS256 with x5t#S256), managed identities, refusals, and key rotation."""

import base64
import datetime
import json
from pathlib import Path

import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from accounts import tokens
from keys.services import key_create
from tests.accounts.certificates import make_certificate, pem, private_pem
from tests.live import LiveDeployment
from tests.sdk import FixedToken, RegisteredApp, Sdk
from vaults import services
from vaults.models import ActivityEntry, Vault

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("one_entry_per_request"),
]


@pytest.fixture
def app(sdk: Sdk, vault: Vault) -> RegisteredApp:
    return sdk.app("Key Vault Crypto User", vault=vault, name="identity-test")


@pytest.fixture
def scope() -> str:
    return f"{tokens.vault_resource()}/.default"


def certificate(tmp_path: Path, name: str = "app") -> tuple[Path, bytes, str]:
    """A self-signed RSA certificate and key, as `az ad sp create-for-rbac --create-cert`
    makes: (PEM file with key and certificate, certificate PEM, private key PEM)."""
    cert, key = make_certificate(
        name, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    key_pem = private_pem(key)
    path = tmp_path / f"{name}.pem"
    path.write_bytes(key_pem + pem(cert))
    return path, pem(cert), key_pem.decode()


def token_request(deployment: LiveDeployment, tenant: str, **form: str) -> requests.Response:
    return requests.post(
        f"{deployment.authority}/{tenant}/oauth2/v2.0/token",
        data=form,
        verify=deployment.ca_file,
        timeout=10,
    )


def test_discovery_names_the_endpoints_msal_needs(deployment: LiveDeployment) -> None:
    tenant = settings.KVCONSOLE_TENANT_ID
    document = requests.get(
        f"{deployment.authority}/{tenant}/v2.0/.well-known/openid-configuration",
        verify=deployment.ca_file,
        timeout=10,
    ).json()
    assert document["issuer"] == f"{deployment.authority}/{tenant}/v2.0"
    assert document["token_endpoint"] == f"{deployment.authority}/{tenant}/oauth2/v2.0/token"
    keys = requests.get(document["jwks_uri"], verify=deployment.ca_file, timeout=10).json()
    assert [key["kid"] for key in keys["keys"]] == [key.kid for key in tokens.keyring.current()]
    assert "d" not in keys["keys"][0] and keys["keys"][0]["kty"] == "RSA"
    unknown = requests.get(
        f"{deployment.authority}/not-our-tenant/v2.0/.well-known/openid-configuration",
        verify=deployment.ca_file,
        timeout=10,
    )
    assert unknown.status_code == 400 and "AADSTS90002" in unknown.json()["error_description"]


def test_a_client_secret_buys_a_token_for_the_vaults(
    sdk: Sdk, app: RegisteredApp, scope: str, deployment: LiveDeployment
) -> None:
    issued = sdk.credential(app).get_token(scope)
    published = requests.get(
        f"{tokens.authority()}/discovery/v2.0/keys", verify=deployment.ca_file, timeout=10
    ).json()
    signing_key = jwt.PyJWKSet.from_dict(published)[jwt.get_unverified_header(issued.token)["kid"]]
    claims = jwt.decode(
        issued.token,
        signing_key,
        algorithms=["RS256"],
        audience=tokens.vault_resource(),
        issuer=tokens.issuer(),
    )
    assert claims["sub"] == claims["oid"] == str(app.principal.oid)
    assert claims["appid"] == app.client_id and claims["tid"] == settings.KVCONSOLE_TENANT_ID
    assert claims["exp"] - claims["iat"] == settings.KVCONSOLE_TOKEN_LIFETIME_SECONDS
    entry = ActivityEntry.objects.filter(operation="ApplicationSignIn").get()
    assert entry.result == "Success" and entry.actor_name == app.principal.username


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", "7000215"),
        (
            {"client_id": "00000000-0000-0000-0000-000000000001"},
            400,
            "unauthorized_client",
            "700016",
        ),
        ({"scope": "https://vault.azure.net/.default"}, 400, "invalid_scope", "500011"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "70003"),
    ],
)
def test_token_endpoint_refusals(
    deployment: LiveDeployment,
    app: RegisteredApp,
    scope: str,
    form: dict[str, str],
    status: int,
    error: str,
    code: str,
) -> None:
    request = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.secret,
        "scope": scope,
        **form,
    }
    response = token_request(deployment, settings.KVCONSOLE_TENANT_ID, **request)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and f"AADSTS{code}" in body["error_description"]
    assert int(code) in body["error_codes"] and "access_token" not in body
    assert ActivityEntry.objects.get(operation="ApplicationSignIn").result != "Success"


def test_a_token_for_another_tenant_is_refused(
    deployment: LiveDeployment, app: RegisteredApp, scope: str
) -> None:
    response = token_request(
        deployment,
        "11111111-1111-1111-1111-111111111111",
        grant_type="client_credentials",
        client_id=app.client_id,
        client_secret=app.secret,
        scope=scope,
    )
    assert response.status_code == 400 and "AADSTS90002" in response.json()["error_description"]


def test_a_certificate_credential_signs_in_with_rs256_and_x5t(
    sdk: Sdk, vault: Vault, app: RegisteredApp, tmp_path: Path
) -> None:
    path, certificate_pem, _ = certificate(tmp_path)
    services.application_certificate_add(
        actor=sdk.system, client_id=app.client_id, certificate=certificate_pem
    )
    key = key_create(actor=sdk.system, vault_name=vault.name, name="by-certificate", kty="EC")
    credential = sdk.certificate_credential(app, str(path))
    found = sdk.keys(vault.name, credential).get_key("by-certificate")
    assert found.properties.version == key.version
    token = credential.get_token(f"{tokens.vault_resource()}/.default").token
    assert jwt.decode(token, options={"verify_signature": False})["appid"] == app.client_id
    other, _, _ = certificate(tmp_path, "not-registered")
    with pytest.raises(ClientAuthenticationError) as refused:
        sdk.certificate_credential(app, str(other)).get_token(f"{tokens.vault_resource()}/.default")
    assert "AADSTS700027" in refused.value.message


def test_msal_signs_in_with_ps256_and_x5t_s256(
    sdk: Sdk,
    vault: Vault,
    app: RegisteredApp,
    deployment: LiveDeployment,
    scope: str,
    tmp_path: Path,
) -> None:
    _, certificate_pem, key_pem = certificate(tmp_path)
    services.application_certificate_add(
        actor=sdk.system, client_id=app.client_id, certificate=certificate_pem
    )
    session = requests.Session()
    # Without this, requests lets REQUESTS_CA_BUNDLE override the session's own CA.
    session.trust_env = False
    session.verify = deployment.ca_file
    client = msal.ConfidentialClientApplication(
        app.client_id,
        authority=tokens.authority(),
        client_credential={"private_key": key_pem, "public_certificate": certificate_pem.decode()},
        instance_discovery=False,
        http_client=session,
    )
    result = client.acquire_token_for_client(scopes=[scope])
    assert "access_token" in result, result
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["sub"] == str(
        app.principal.oid
    )


@pytest.fixture
def workload(
    sdk: Sdk, app: RegisteredApp, deployment: LiveDeployment, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The environment an App Service host gives a workload bound to `app`."""
    issued = services.workload_identity_add(
        actor=sdk.system, client_id=app.client_id, description="worker"
    )
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{deployment.authority}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", issued.secret)
    monkeypatch.delenv("IDENTITY_SERVER_THUMBPRINT", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", deployment.ca_file)
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    return issued.secret


def test_managed_identity_credential_needs_no_secret_in_the_code(
    sdk: Sdk, vault: Vault, app: RegisteredApp, workload: str
) -> None:
    key = sdk.keys(vault.name, sdk.credential(sdk.app(vault=vault, name="creator"))).create_ec_key(
        "for-the-workload"
    )
    credential = ManagedIdentityCredential()
    assert sdk.keys(vault.name, credential).get_key("for-the-workload").id == key.id
    default = DefaultAzureCredential()
    assert sdk.keys(vault.name, default).get_key("for-the-workload").id == key.id


def test_managed_identity_refusals(
    sdk: Sdk,
    app: RegisteredApp,
    deployment: LiveDeployment,
    workload: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def ask(header: str, **params: str) -> requests.Response:
        return requests.get(
            f"{deployment.authority}/msi/token",
            params={"api-version": "2019-08-01", "resource": tokens.vault_resource(), **params},
            headers={"X-IDENTITY-HEADER": header},
            verify=deployment.ca_file,
            timeout=10,
        )

    assert ask(workload).status_code == 200
    assert ask("not-the-secret").status_code == 401
    assert ask(workload, resource="https://vault.azure.net").status_code == 400
    assert ask(workload, client_id="00000000-0000-0000-0000-000000000001").status_code == 400
    assert ask(workload, **{"api-version": "2017-09-01"}).status_code == 400
    services.application_update(actor=sdk.system, client_id=app.client_id, enabled=False)
    disabled = ask(workload)
    assert disabled.status_code == 400 and disabled.json()["error"] == "unauthorized_client"


@pytest.mark.usefixtures("fresh_token_keys")
def test_rotating_the_signing_key_keeps_issued_tokens_working(
    sdk: Sdk, vault: Vault, app: RegisteredApp, scope: str
) -> None:
    key = sdk.keys(vault.name, sdk.credential(sdk.app(vault=vault, name="creator"))).create_ec_key(
        "k"
    )
    old_token = sdk.credential(app).get_token(scope).token
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new = tokens.rotate_signing_key()
    assert new.kid != old_kid and [k["kid"] for k in tokens.jwks()["keys"]] == [new.kid, old_kid]
    tokens.verified_tokens.clear()  # as in another process that never saw the token
    assert sdk.keys(vault.name, FixedToken(old_token)).get_key("k").id == key.id
    new_token = sdk.credential(app).get_token(scope).token
    assert jwt.get_unverified_header(new_token)["kid"] == new.kid
    document = json.loads(Path(settings.KVCONSOLE_TOKEN_KEY_FILE).read_text())
    assert [entry["retired"] is None for entry in document["keys"]] == [True, False]


def test_an_assertion_naming_an_ec_certificate_is_refused_cleanly(
    sdk: Sdk, app: RegisteredApp, deployment: LiveDeployment, scope: str
) -> None:
    ec_certificate, _ = make_certificate("ec-app")
    now = datetime.datetime.now(datetime.UTC)
    services.application_certificate_add(
        actor=sdk.system,
        client_id=app.client_id,
        certificate=pem(ec_certificate),
    )
    thumbprint = base64.urlsafe_b64encode(ec_certificate.fingerprint(hashes.SHA1())).decode()  # noqa: S303
    assertion = jwt.encode(
        {
            "aud": tokens.token_endpoint(),
            "iss": app.client_id,
            "sub": app.client_id,
            "exp": int(now.timestamp()) + 300,
            "jti": "one",
        },
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"x5t": thumbprint},
    )
    response = token_request(
        deployment,
        settings.KVCONSOLE_TENANT_ID,
        grant_type="client_credentials",
        client_id=app.client_id,
        scope=scope,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=assertion,
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
