"""Encryption at rest for names, phone numbers and free text (Fernet; several keys for rotation)."""
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import LargeBinary
from sqlalchemy.types import TypeDecorator

_keyring: MultiFernet | None = None


def configure_keys(keys: str) -> None:
    """`keys` is comma-separated; the first encrypts, every key decrypts, so rotation is a prepend."""
    global _keyring
    parsed = [Fernet(k.strip()) for k in keys.split(",") if k.strip()]
    if not parsed:
        raise ValueError("PII_ENCRYPTION_KEYS holds no key")
    _keyring = MultiFernet(parsed)


def keyring() -> MultiFernet:
    if _keyring is None:
        raise RuntimeError("PII encryption keys are not configured")
    return _keyring


def new_key() -> str:
    return Fernet.generate_key().decode()


class EncryptedText(TypeDecorator):
    """Stores text as Fernet ciphertext; the database never sees the plain value."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else keyring().encrypt(value.encode())

    def process_result_value(self, value, dialect):
        return None if value is None else keyring().decrypt(bytes(value)).decode()
