"""Key material and the Azure Key Vault key algorithms, as pure functions over `cryptography`.

No Django here: the service layer loads a `Material`, calls one function and stores or returns
bytes. Every bad input raises `BadParameter` with a message that names algorithms, key types and
lengths but never key material, plaintext, ciphertext, digests or signatures.
"""

from .material import (
    EC_CURVES,
    KEY_TYPES,
    OCT_SIZES,
    RSA_SIZES,
    KeySpec,
    Material,
    b64url_decode,
    b64url_encode,
    generate,
    import_jwk,
    import_pem,
    load_private_bytes,
    private_bytes,
    public_jwk,
)
from .operations import (
    EncryptResult,
    algorithms,
    decrypt,
    encrypt,
    sign,
    unwrap_key,
    verify,
    wrap_key,
)

__all__ = [
    "EC_CURVES",
    "KEY_TYPES",
    "OCT_SIZES",
    "RSA_SIZES",
    "EncryptResult",
    "KeySpec",
    "Material",
    "algorithms",
    "b64url_decode",
    "b64url_encode",
    "decrypt",
    "encrypt",
    "generate",
    "import_jwk",
    "import_pem",
    "load_private_bytes",
    "private_bytes",
    "public_jwk",
    "sign",
    "unwrap_key",
    "verify",
    "wrap_key",
]
