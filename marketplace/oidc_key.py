"""The RSA key that signs OpenID Connect id_tokens (SMART ``openid fhirUser``).

Production passes it in ``OIDC_RSA_PRIVATE_KEY`` (PEM). Development makes one on first use and
keeps it under ``var/``, so tokens survive a restart.
"""

import os
from pathlib import Path


def load_or_create(var_dir: Path) -> str:
    configured = os.environ.get("OIDC_RSA_PRIVATE_KEY", "").strip()
    if configured:
        return configured.replace("\\n", "\n")
    path = var_dir / "oidc-dev-key.pem"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)  # atomic: web, worker and beat may start at once
    return path.read_text()
