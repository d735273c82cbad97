"""JSON Schemas of the vault endpoint's bodies, named as Azure's REST specification for the keys
data plane names its definitions (KeyCreateParameters, KeyBundle, KeyVaultError, ...).

Each view declares which of these it reads and answers with (views.py, `documented`), and
openapi.py puts them into the OpenAPI document. They say what the endpoint accepts, not
more: the fuzz tests (tests/keys/test_api_fuzz.py) send what they forbid and expect a 4xx.
"""

from typing import Any

from ..models import KEY_NAME, KEY_OPERATIONS

Schema = dict[str, Any]

# Base64url as Azure sends it; padding and the standard alphabet are accepted too, since
# people paste values from other tools.
BASE64URL: Schema = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_+/-]*={0,2}$",
    "description": "Bytes as base64url without padding (standard base64 is accepted).",
}
# 9999-12-31T23:59:59Z, the last moment the endpoint can store.
UNIX_TIME: Schema = {"type": "number", "minimum": 0, "maximum": 253402300799}
KEY_NAME_PATTERN = KEY_NAME.pattern.removesuffix(r"\Z") + "$"

KEY_TYPES = ["EC", "EC-HSM", "RSA", "RSA-HSM", "oct", "oct-HSM"]
CURVES = ["P-256", "P-256K", "P-384", "P-521"]
ENCRYPTION_ALGORITHMS = [
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA1_5",
    *(f"A{bits}{mode}" for mode in ("GCM", "CBC", "CBCPAD") for bits in (128, 192, 256)),
]
WRAP_ALGORITHMS = ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5", "A128KW", "A192KW", "A256KW"]
SIGNATURE_ALGORITHMS = [
    *(f"{family}{bits}" for family in ("PS", "RS") for bits in (256, 384, 512)),
    "ES256",
    "ES256K",
    "ES384",
    "ES512",
]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *, required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _page_of(item: str) -> Schema:
    return _object(
        {
            "value": {"type": "array", "items": _ref(item)},
            "nextLink": {
                "type": ["string", "null"],
                "description": "The next page's URL, or null on the last page.",
            },
        },
        required=("value",),
    )


_KEY_OPS: Schema = {"type": "array", "items": {"type": "string", "enum": list(KEY_OPERATIONS)}}
_TAGS: Schema = {
    "type": ["object", "null"],
    "maxProperties": 15,
    "propertyNames": {"minLength": 1, "maxLength": 256},
    "additionalProperties": {"type": "string", "maxLength": 256},
}
_DELETED: dict[str, Schema] = {
    "recoveryId": {"type": "string"},
    "deletedDate": {"type": "integer"},
    "scheduledPurgeDate": {"type": "integer"},
}
_BUNDLE: dict[str, Schema] = {
    "key": _ref("JsonWebKey"),
    "attributes": _ref("KeyAttributes"),
    "tags": _TAGS,
}
_ITEM: dict[str, Schema] = {
    "kid": {"type": "string"},
    "attributes": _ref("KeyAttributes"),
    "tags": _TAGS,
}
_LIFETIME_ACTION = _object(
    {
        "trigger": _object(
            {
                "timeAfterCreate": {"type": "string", "description": "ISO-8601 duration"},
                "timeBeforeExpiry": {"type": "string", "description": "ISO-8601 duration"},
            }
        ),
        "action": _object({"type": {"type": "string", "enum": ["Rotate", "Notify"]}}),
    },
    required=("trigger", "action"),
)


SCHEMAS: dict[str, Schema] = {
    "KeyVaultError": _object(
        {
            "error": _object(
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "innererror": _object({"code": {"type": "string"}}),
                },
                required=("code", "message"),
            )
        },
        required=("error",),
    ),
    "KeyAttributes": _object(
        {
            "enabled": {"type": "boolean"},
            "nbf": UNIX_TIME,
            "exp": UNIX_TIME,
            "created": {"type": "integer", "readOnly": True},
            "updated": {"type": "integer", "readOnly": True},
            "recoverableDays": {"type": "integer", "readOnly": True},
            "recoveryLevel": {"type": "string", "readOnly": True},
            "exportable": {
                "type": "boolean",
                "description": "Exportable keys are refused: there are no release policies.",
            },
        }
    ),
    "JsonWebKey": _object(
        {
            "kid": {"type": "string"},
            "kty": {"type": "string", "enum": KEY_TYPES},
            "key_ops": _KEY_OPS,
            "crv": {"type": "string", "enum": CURVES},
            # The private parts are read by ImportKey, never answered.
            **{
                part: BASE64URL
                for part in ("n", "e", "d", "dp", "dq", "qi", "p", "q", "k", "x", "y")
            },
        },
        required=("kty",),
    ),
    "KeyCreateParameters": _object(
        {
            "kty": {"type": "string", "enum": KEY_TYPES},
            "key_size": {"type": "integer"},
            "public_exponent": {"type": "integer"},
            "crv": {"type": "string", "enum": CURVES},
            "key_ops": _KEY_OPS,
            "attributes": _ref("KeyAttributes"),
            "tags": _TAGS,
        },
        required=("kty",),
    ),
    "KeyImportParameters": _object(
        {
            "key": _ref("JsonWebKey"),
            "Hsm": {"type": "boolean"},
            "attributes": _ref("KeyAttributes"),
            "tags": _TAGS,
        },
        required=("key",),
    ),
    "KeyUpdateParameters": _object(
        {"key_ops": _KEY_OPS, "attributes": _ref("KeyAttributes"), "tags": _TAGS}
    ),
    "KeyEncryptParameters": _object(
        {
            "alg": {"type": "string", "enum": ENCRYPTION_ALGORITHMS},
            "value": BASE64URL,
            "iv": BASE64URL,
            "aad": BASE64URL,
            "tag": BASE64URL,
        },
        required=("alg", "value"),
    ),
    "KeyWrapParameters": _object(
        {"alg": {"type": "string", "enum": WRAP_ALGORITHMS}, "value": BASE64URL},
        required=("alg", "value"),
    ),
    "KeySignParameters": _object(
        {
            "alg": {"type": "string", "enum": SIGNATURE_ALGORITHMS},
            "value": {**BASE64URL, "description": "The digest to sign."},
        },
        required=("alg", "value"),
    ),
    "KeyVerifyParameters": _object(
        {
            "alg": {"type": "string", "enum": SIGNATURE_ALGORITHMS},
            "digest": BASE64URL,
            "value": {**BASE64URL, "description": "The signature."},
        },
        required=("alg", "digest", "value"),
    ),
    "KeyRestoreParameters": _object({"value": BASE64URL}, required=("value",)),
    "GetRandomBytesRequest": _object(
        {"count": {"type": "integer", "minimum": 1, "maximum": 128}}, required=("count",)
    ),
    "KeyRotationPolicy": _object(
        {
            "id": {"type": "string", "readOnly": True},
            "lifetimeActions": {"type": "array", "items": _LIFETIME_ACTION},
            "attributes": _object(
                {
                    "expiryTime": {"type": "string", "description": "ISO-8601 duration"},
                    "created": {"type": "integer", "readOnly": True},
                    "updated": {"type": "integer", "readOnly": True},
                }
            ),
        }
    ),
    "KeyBundle": _object(_BUNDLE, required=("key", "attributes")),
    "DeletedKeyBundle": _object({**_BUNDLE, **_DELETED}, required=("key", "attributes")),
    "KeyItem": _object(_ITEM, required=("kid", "attributes")),
    "DeletedKeyItem": _object({**_ITEM, **_DELETED}, required=("kid", "attributes")),
    "KeyListResult": _page_of("KeyItem"),
    "DeletedKeyListResult": _page_of("DeletedKeyItem"),
    "KeyOperationResult": _object(
        {
            "kid": {"type": "string"},
            "value": BASE64URL,
            "iv": BASE64URL,
            "tag": BASE64URL,
            "aad": BASE64URL,
        },
        required=("kid", "value"),
    ),
    "KeyVerifyResult": _object({"value": {"type": "boolean"}}, required=("value",)),
    "BackupKeyResult": _object({"value": BASE64URL}, required=("value",)),
    "RandomBytes": _object({"value": BASE64URL}, required=("value",)),
}
