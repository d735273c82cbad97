"""Hostile requests to the vault endpoint that schemathesis does not make from the OpenAPI
document: path tricks, injected and oversized headers, wrong content types, bytes that are
not JSON, and strings where the document says what they must be. Hypothesis draws many of
them (derandomized, so every run draws the same); each answer must be Azure's and a refused
request must change nothing but its activity entry (tests/keys/hostile.py).
"""

import base64
import json
import os
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.keys.hostile import HOST, KEY_NAMES, Answer, Target, watched

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("KVCONSOLE_FUZZ_EXAMPLES", "40"))
fuzzing = settings(
    max_examples=EXAMPLES * 3,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
client = Client(raise_request_exception=False)


def send(
    target: Target,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    content_type: str = "application/json",
    environ: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    # Any: the WSGI environment's keys are keyword arguments of the client's.
    extra: Any = environ or {}
    with watched() as answers:
        response = client.generic(
            method,
            path,
            data=body,
            content_type=content_type,
            headers={"host": HOST, "authorization": f"Bearer {target.token}", **(headers or {})},
            **extra,
        )
        answers.append(Answer.of(method, response.status_code, response.headers, response.content))
    return answers[0]


def sign_request(name: str = "rsa-key") -> tuple[str, bytes]:
    return f"/keys/{name}//sign?api-version=7.5", json.dumps(
        {"alg": "RS256", "value": "A" * 43}
    ).encode()


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/keys/../rng",
        "/keys/%2e%2e/rsa-key/",
        "/keys/rsa-key/../../rng",
        "/keys/rsa-key/./sign",
        "/keys/rsa-key%2F..%2F..%2Frng",
        "/keys/rsa-key%2fsign",
        "//keys",
        "/keys//",
        "/deletedkeys/../keys/rsa-key/",
        "/keys/%00/",
        "/keys/rsa-key%00/",
        "/keys/%ff%fe/",
        "/keys/%C3%BCn%C3%AFc%C3%B6d%C3%A9/",
        "/keys/%F0%9F%94%91/",
        "/keys/rsa-key/" + "f" * 32 + "/sign/extra",
        "/keys/" + "a" * 100_000 + "/",
        "/" + "keys/" * 2_000,
    ],
)
def test_path_tricks_reach_nothing(hostile: Target, path: str) -> None:
    answer = send(hostile, "GET", path + ("&" if "?" in path else "?") + "api-version=7.5")
    assert 400 <= answer.status < 500


SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "keys",
            "deletedkeys",
            "rng",
            *KEY_NAMES,
            "",
            ".",
            "..",
            "%2e%2e",
            "%2F",
            "%00",
            "sign",
            "restore",
            "versions",
            "rotationpolicy",
            "recover",
            "f" * 32,
        ]
    ),
    st.text(max_size=12).map(lambda text: "".join(f"%{byte:02X}" for byte in text.encode())),
)


@fuzzing
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]),
    segments=st.lists(SEGMENTS, max_size=6),
    query=st.sampled_from(["api-version=7.5", "", "api-version=7.5&maxresults=0"]),
)
def test_any_path_and_method_is_answered_the_azure_way(
    hostile: Target, method: str, segments: list[str], query: str
) -> None:
    send(hostile, method, "/" + "/".join(segments) + "?" + query, b"{}")


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"x-ms-client-request-id": "abc\r\nSet-Cookie: stolen=1"},
        {"x-ms-client-request-id": "abc\nX-Injected: 1"},
        {"x-ms-client-request-id": "x" * 1_000_000},
        {"x-ms-client-request-id": "\x00\x01\x7f"},
        {"x-ms-client-request-id": "ünïcödé"},
    ],
)
def test_injected_and_oversized_headers_are_not_echoed(
    hostile: Target, headers: dict[str, str]
) -> None:
    path, body = sign_request()
    answer = send(hostile, "POST", path, body, headers=headers)
    assert answer.status in (200, 400, 413)
    assert not {"set-cookie", "x-injected"} & set(answer.headers)
    assert all("\r" not in value and "\n" not in value for value in answer.headers.values())


@pytest.mark.parametrize("length", ["-1", "a lot", "99999999999999999999", "5", ""])
def test_a_content_length_that_lies_is_refused(hostile: Target, length: str) -> None:
    path, body = sign_request()
    answer = send(hostile, "POST", path, body, environ={"CONTENT_LENGTH": length})
    assert answer.status in (400, 413)


@pytest.mark.parametrize(
    "authorization",
    [
        # A server joins repeated headers with commas: two tokens are no token.
        "Bearer {token},Bearer {token}",
        "Bearer {token}, Bearer {token}",
        "Bearer {token}\r\nX-Injected: 1",
        "Bearer " + "A" * 1_000_000,
        "Bearer {token}" + "A" * 1_000_000,
        "Basic {token}",
        "Bearer",
        "Bearer \x00",
        "bearer {token} extra",
    ],
)
def test_malformed_authorization_is_refused_with_the_challenge(
    hostile: Target, authorization: str
) -> None:
    path, body = sign_request()
    answer = send(
        hostile,
        "POST",
        path,
        body,
        headers={"authorization": authorization.replace("{token}", hostile.token)},
    )
    assert answer.status == 401


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        # The body is read as JSON whatever it is labelled, as Azure's front end reads it.
        ("text/plain", None, 200),
        ("multipart/form-data; boundary=x", None, 200),
        ("application/json; charset=utf-16", "utf-16", 200),
        ("application/x-www-form-urlencoded", b"alg=RS256&value=" + b"A" * 43, 400),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n", 400),
        ("application/json", b"\xff\xfe\x00", 400),
        ("application/json", b'{"alg": "RS256", "value": "' + b"A" * 43 + b'"', 400),
        ("application/json", b'{"alg": "RS256", "alg": 1, "value": "AAAA"}', 400),
        ("application/json", b'{"alg": "RS256", "value": "\\ud800"}', 400),
        ("application/json", b'{"alg": "RS256\\u0000", "value": "AAAA"}', 400),
        ("application/json", b'{"alg": "RS256", "value": 1e400}', 400),
        ("application/json", b'{"alg": "RS256", "value": ' + b"9" * 5000 + b"}", 400),
        ("application/json", b"[" * 50_000 + b"]" * 50_000, 400),
        ("application/json", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400),
        ("application/json", b"null", 400),
        ("application/json", b'"text"', 400),
    ],
)
def test_bodies_of_every_shape_and_label(
    hostile: Target, content_type: str, body: bytes | str | None, status: int
) -> None:
    path, valid = sign_request()
    if body is None:
        body = valid
    elif body == "utf-16":
        body = valid.decode().encode("utf-16")
    assert isinstance(body, bytes)
    assert send(hostile, "POST", path, body, content_type=content_type).status == status


OPERATIONS = [
    ("POST", "/keys/{name}//sign"),
    ("POST", "/keys/{name}//verify"),
    ("POST", "/keys/{name}//encrypt"),
    ("POST", "/keys/{name}//decrypt"),
    ("POST", "/keys/{name}//wrapkey"),
    ("POST", "/keys/{name}//unwrapkey"),
    ("POST", "/keys/{name}/create"),
    ("PUT", "/keys/{name}"),
    ("PATCH", "/keys/{name}/"),
    ("PUT", "/keys/{name}/rotationpolicy"),
    ("POST", "/keys/restore"),
    ("POST", "/rng"),
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "alg",
        "value",
        "digest",
        "iv",
        "tag",
        "aad",
        "kty",
        "key_size",
        "crv",
        "key_ops",
        "public_exponent",
        "attributes",
        "tags",
        "key",
        "Hsm",
        "count",
        "lifetimeActions",
    ]
)


@fuzzing
@given(
    operation=st.sampled_from(OPERATIONS),
    name=st.sampled_from(KEY_NAMES),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(FIELDS, JSON_VALUES, max_size=6).map(
            lambda value: json.dumps(value).encode()
        ),
    ),
)
def test_malformed_bodies_are_refused(
    hostile: Target, operation: tuple[str, str], name: str, body: bytes
) -> None:
    method, path = operation
    send(hostile, method, path.format(name=name) + "?api-version=7.6", body)


@fuzzing
@given(
    name=st.sampled_from(KEY_NAMES[:3]),
    operation=st.sampled_from(["sign", "verify", "encrypt", "decrypt", "wrapkey", "unwrapkey"]),
    alg=st.one_of(
        st.sampled_from(
            [
                "RS256",
                "PS512",
                "ES256K",
                "A256GCM",
                "A128CBCPAD",
                "A192KW",
                "RSA-OAEP-256",
                "RSA1_5",
                "HS256",
                "RSNULL",
                "CKM_AES_KEY_WRAP",
            ]
        ),
        st.text(max_size=20),
    ),
    value=st.one_of(
        st.text(max_size=100),
        st.binary(max_size=80).map(lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")),
    ),
    extra=st.dictionaries(st.sampled_from(["iv", "tag", "aad", "digest"]), st.text(max_size=40)),
)
def test_unknown_algorithms_and_bad_base64url_are_refused(
    hostile: Target, name: str, operation: str, alg: str, value: str, extra: dict[str, Any]
) -> None:
    body = json.dumps({"alg": alg, "value": value, **extra}).encode()
    send(hostile, "POST", f"/keys/{name}//{operation}?api-version=7.5", body)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "api-version=",
        "api-version=1999-01-01",
        "api-version=7.5%00",
        "api-version=" + "7" * 10_000,
        "api-version=7.5&api-version=bogus",
        "API-VERSION=7.5",
        "api-version=7.5&maxresults=-1",
        "api-version=7.5&maxresults=99999999999999999999",
        "api-version=7.5&$skiptoken=%00",
        "api-version=7.5&$skiptoken=" + "A" * 100_000,
    ],
)
def test_missing_unknown_and_strange_query_strings(hostile: Target, query: str) -> None:
    assert send(hostile, "GET", f"/keys?{query}").status == 400


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/keys/new-key/create?api-version=7.5", {"kty": "EC", "tags": {"a": "\x00"}}),
        ("PATCH", "/keys/ec-key/?api-version=7.5", {"tags": {"\x00": "b"}}),
        (
            "GET",
            "/keys?api-version=7.5&$skiptoken="
            + base64.urlsafe_b64encode(json.dumps(["\x00"]).encode()).decode().rstrip("="),
            None,
        ),
    ],
)
def test_nul_characters_are_refused_on_every_database(
    hostile: Target, method: str, path: str, body: dict[str, Any] | None
) -> None:
    # PostgreSQL's text and JSON hold no NUL: stored, they would fail the request with a 500.
    content = json.dumps(body).encode() if body is not None else b""
    assert send(hostile, method, path, content).status == 400
