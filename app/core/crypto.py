"""Encryption at rest for secrets we must be able to read back (TOTP seeds, gateway keys), and
RSA signatures for partners that sign with key pairs (RSA-SHA256, PKCS#1 v1.5, base64).

Parsed keys are cached by their PEM text: loading (and validating) an RSA private key costs
milliseconds, and a callback signs every answer.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import current_app


def _fernet() -> Fernet:
    return Fernet(current_app.config["ENCRYPTION_KEY"].encode())


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("stored secret cannot be decrypted with ENCRYPTION_KEY") from exc


class BadKey(ValueError):
    """A PEM text that is not an RSA key of the expected kind."""


def generate_rsa_private_key(bits: int = 2048) -> str:
    """A new RSA private key as PKCS#8 PEM (unencrypted: store it with ``encrypt``)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@lru_cache(maxsize=64)
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise BadKey(f"not a PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKey("not an RSA private key")
    return key


@lru_cache(maxsize=64)
def _public_key(pem: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise BadKey(f"not a PEM public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadKey("not an RSA public key")
    return key


def rsa_public_pem(private_pem: str) -> str:
    """The public half (SubjectPublicKeyInfo PEM) of a private key."""
    return (
        _private_key(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def check_rsa_public_pem(pem: str) -> str:
    """``pem`` if it is an RSA public key, else ``BadKey``."""
    _public_key(pem)
    return pem


def rsa_sign(private_pem: str, data: bytes) -> str:
    """Base64 RSA-SHA256 (PKCS#1 v1.5) signature of ``data``."""
    signature = _private_key(private_pem).sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_verify(public_pem: str, data: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is the RSA-SHA256 signature of ``data`` under the key."""
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        _public_key(public_pem).verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
