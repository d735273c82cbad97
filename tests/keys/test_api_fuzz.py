"""The vault endpoint fuzzed from its own OpenAPI document with schemathesis, in process.

Every operation of the document gets a few dozen generated requests (`KVCONSOLE_FUZZ_EXAMPLES`,
or `make fuzz` for a long run), valid and invalid (schemathesis' positive and negative modes,
its boundary values and its fuzzing phase), sent through the whole Django stack as a vault
host's request with a valid bearer token. Path parameters are aimed at real keys often
enough that the cryptographic operations are reached. Each answer must be Azure's: a 2xx that
matches the document, or a 4xx with `{"error": {"code", "message"}}` (401 with the challenge),
never a 5xx; and a refused request changes nothing but the one activity entry it writes.
Generation is derandomized, so a run is the same every time.
"""

import os
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from keys.api import openapi
from tests.keys.hostile import HOST, Answer, Target, watched

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("KVCONSOLE_FUZZ_EXAMPLES", "40"))

schema = schemathesis.openapi.from_dict(openapi.document())
schema.app = WSGIHandler()


# The keys of the vault the running test made: name and current version.
aims: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _aims(hostile: Target) -> None:
    aims.clear()
    aims.update(hostile.versions)


@schema.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Half the valid requests go to a key that exists: only then are the cryptographic
    operations and their checks of algorithms and lengths reached. Invalid ones are left as
    generated, so that what makes them invalid is still there."""
    if (
        not case.path_parameters
        or "key-name" not in case.path_parameters
        or case.meta.generation.mode.is_negative
    ):
        return st.just(case)

    def aimed(key: tuple[str, str]) -> Any:
        name, version = key
        case.path_parameters = {
            **case.path_parameters,
            "key-name": name,
            **({"key-version": version} if "key-version" in case.path_parameters else {}),
        }
        return case

    return st.one_of(st.just(case), st.sampled_from(sorted(aims.items())).map(aimed))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_azures_and_a_refusal_changes_nothing(case: Any, hostile: Target) -> None:
    with watched() as answers:
        response = case.call(
            base_url=f"https://{HOST}", headers={"Authorization": f"Bearer {hostile.token}"}
        )
        answers.append(
            Answer.of(case.method, response.status_code, response.headers, response.content)
        )
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
