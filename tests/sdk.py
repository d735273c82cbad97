"""The official Azure SDK for Python, pointed at the live test deployment.

Tests build clients here exactly as an application would: a credential from azure-identity
against our authority, and KeyClient / CryptographyClient against a vault URL, trusting the
deployment's CA and nothing else.
"""

import time
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import AccessToken
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient
from django.conf import settings

from accounts.models import Application, User
from tests.live import LiveDeployment
from vaults import services as vault_services
from vaults.models import Vault


@dataclass(frozen=True)
class RegisteredApp:
    application: Application
    secret: str

    @property
    def client_id(self) -> str:
        return str(self.application.client_id)

    @property
    def principal(self) -> User:
        return self.application.user


class FixedToken:
    """A credential that hands the SDK the token it was given, whatever it is."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


class Sdk:
    def __init__(self, deployment: LiveDeployment, system: User) -> None:
        self.deployment = deployment
        self.system = system

    def app(
        self,
        role: str | None = "Key Vault Crypto Officer",
        *,
        vault: Vault | None = None,
        scope: str | None = None,
        name: str = "sdk-app",
    ) -> RegisteredApp:
        """A registered application with a client secret and, unless `role` is None, that
        role at `scope` (default: `vault`)."""
        application = vault_services.application_create(actor=self.system, display_name=name)
        issued = vault_services.application_secret_add(
            actor=self.system, client_id=str(application.client_id)
        )
        if role is not None:
            if scope is None:
                assert vault is not None
                scope = (
                    f"/resourceGroups/{vault.resource_group.name}/providers/"
                    f"Microsoft.KeyVault/vaults/{vault.name}"
                )
            vault_services.role_assignment_create(
                actor=self.system, assignee=str(application.client_id), role=role, scope=scope
            )
        return RegisteredApp(application, issued.value)

    def credential(self, app: RegisteredApp) -> ClientSecretCredential:
        return ClientSecretCredential(
            settings.KVCONSOLE_TENANT_ID,
            app.client_id,
            app.secret,
            authority=self.deployment.authority,
            disable_instance_discovery=True,
            connection_verify=self.deployment.ca_file,
        )

    def certificate_credential(
        self, app: RegisteredApp, certificate_path: str, **options: Any
    ) -> CertificateCredential:
        return CertificateCredential(
            settings.KVCONSOLE_TENANT_ID,
            app.client_id,
            certificate_path,
            authority=self.deployment.authority,
            disable_instance_discovery=True,
            connection_verify=self.deployment.ca_file,
            **options,
        )

    def keys(self, vault_name: str, credential: Any, **options: Any) -> KeyClient:
        return KeyClient(
            self.deployment.vault_url(vault_name),
            credential,
            connection_verify=self.deployment.ca_file,
            **options,
        )

    def crypto(self, key: KeyVaultKey | str, credential: Any, **options: Any) -> CryptographyClient:
        return CryptographyClient(
            key, credential, connection_verify=self.deployment.ca_file, **options
        )
