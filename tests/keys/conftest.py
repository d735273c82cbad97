"""Fixtures for the vault endpoint tests: the live deployment seen through the Azure SDK."""

from collections.abc import Callable, Iterator

import pytest
from azure.keyvault.keys import KeyClient, KeyVaultKey
from azure.keyvault.keys.crypto import CryptographyClient
from schemathesis.pytest.plugin import SchemathesisFunction

from accounts.models import User
from tests.keys.hostile import Target, connection_kept, make_target
from tests.sdk import RegisteredApp, Sdk
from vaults.models import Vault


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each fuzzed operation gets a test id of its own (schemathesis gives all of them the
    test function's): pytest-xdist, which `make test` runs the suite with, tells tests apart
    by id and would run only one of them."""
    for item in items:
        if isinstance(item, SchemathesisFunction) and item._id.params is None:
            item._id = item._id.with_params(item.operation_label)


@pytest.fixture
def officer(sdk: Sdk, vault: Vault) -> RegisteredApp:
    return sdk.app("Key Vault Crypto Officer", vault=vault)


@pytest.fixture
def keys(sdk: Sdk, vault: Vault, officer: RegisteredApp) -> KeyClient:
    return sdk.keys(vault.name, sdk.credential(officer))


@pytest.fixture
def remote(sdk: Sdk, officer: RegisteredApp) -> Callable[[KeyVaultKey], CryptographyClient]:
    """A CryptographyClient that sends every operation to the server."""
    credential = sdk.credential(officer)

    def make(key: KeyVaultKey) -> CryptographyClient:
        client = sdk.crypto(key.id, credential)
        # The SDK's own switch for a caller without keys/get: no local provider at all.
        client._keys_get_forbidden = True
        return client

    return make


@pytest.fixture
def mixed(sdk: Sdk, officer: RegisteredApp) -> Callable[[KeyVaultKey], CryptographyClient]:
    """A CryptographyClient in its usual mode: public-key operations run locally."""
    credential = sdk.credential(officer)
    return lambda key: sdk.crypto(key, credential)


@pytest.fixture
def hostile(system: User) -> Iterator[Target]:
    """A vault with a key of each type and a deleted one, and a Crypto Officer's token, for
    requests served in the test's own process and transaction."""
    with connection_kept():
        yield make_target(system)
