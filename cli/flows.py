"""``./run flows keygen``: the key pair of the WhatsApp Flows data endpoint.

Meta encrypts every Flow request to the business's RSA public key; the private key stays here
(WHATSAPP_FLOWS_PRIVATE_KEY). The file is created readable by its owner only, never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048  # what Meta's Flows documentation asks for


def keygen(path: Path, passphrase: str | None) -> str:
    """Write a new private key to ``path`` (refused if it exists); return the public key PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never replace a key Meta already has; 0600 from the first byte on.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def instructions(path: Path, public_pem: str, passphrase: bool) -> str:
    lines = [
        f"private key written to {path} (mode 0600). Set:",
        f"  WHATSAPP_FLOWS_PRIVATE_KEY={path}",
    ]
    if passphrase:
        lines.append("  WHATSAPP_FLOWS_PASSPHRASE=<the passphrase you gave>")
    lines += [
        "Upload the public key to each number (Graph API), e.g.:",
        "  curl -X POST https://graph.facebook.com/v21.0/$PHONE_NUMBER_ID/whatsapp_business_encryption \\",
        '    -H "Authorization: Bearer $WHATSAPP_ACCESS_TOKEN" \\',
        "    --data-urlencode business_public_key@public.pem",
        "public key:",
        public_pem.rstrip(),
    ]
    return "\n".join(lines)
