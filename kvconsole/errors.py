"""The typed errors every operation raises, with the Azure wire facts each face needs.

Pure Python so that the crypto engine can raise them too. Faces map them once: the vault
endpoint to status + Azure error body, the console to a message, the CLI to an exit code.
Messages never carry key material, plaintext, ciphertext, digests or secrets.
"""

from typing import ClassVar


class ServiceError(Exception):
    """Base of every expected failure of an operation."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "InternalError"
    # The activity log's result column, and the Azure resultSignature family.
    result: ClassVar[str] = "Failure"
    exit_code: ClassVar[int] = 1
    inner_code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, inner_code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        if inner_code is not None:
            self.inner_code = inner_code

    def as_azure_error(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}


class BadParameter(ServiceError):
    status = 400
    code = "BadParameter"
    result = "BadParameter"
    exit_code = 2


class NotFound(ServiceError):
    status = 404
    code = "NotFound"
    result = "NotFound"
    exit_code = 3


class Unauthorized(ServiceError):
    """The caller could not be authenticated: a wrong, expired or revoked credential."""

    status = 401
    code = "Unauthorized"
    result = "Unauthorized"
    exit_code = 4


class Forbidden(ServiceError):
    status = 403
    code = "Forbidden"
    result = "Forbidden"
    exit_code = 4


class KeyDisabled(Forbidden):
    """The version is disabled: no cryptographic operation is allowed."""

    inner_code = "KeyDisabled"


class KeyNotActive(Forbidden):
    """Outside nbf/exp only decrypt, unwrap and verify are allowed."""

    inner_code = "KeyNotActive"


class OperationNotAllowed(Forbidden):
    """The operation is not in the version's key_ops."""

    inner_code = "KeyOperationForbidden"


class Conflict(ServiceError):
    status = 409
    code = "Conflict"
    result = "Conflict"
    exit_code = 5


class Throttled(ServiceError):
    """Too many requests in the current window; `retry_after` seconds until it ends."""

    status = 429
    code = "Throttled"
    result = "Throttled"
    exit_code = 1

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(ServiceError):
    """The database cannot be reached or refused the work for now (restarting, failing over,
    busy); `retry_after` seconds is a fair wait before trying again."""

    status = 503
    code = "ServiceUnavailable"
    exit_code = 1

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
