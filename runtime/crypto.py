"""Encryption at rest (AES-256-GCM with key ids, for rotation) and blind indexes (HMAC-SHA256) for lookups.

Keys come from the environment:

- ``PII_ENCRYPTION_KEYS``: comma-separated ``kid:key`` entries, where ``kid`` matches
  ``[A-Za-z0-9_-]{1,32}`` and ``key`` is 32 random bytes in base64url (padding optional). The
  FIRST entry is the primary: it encrypts. Every entry decrypts. To rotate, prepend a new entry
  (``new_key()`` makes one), roll it out, then run the service's ``reencrypt-pii`` command; once it
  reports 0 rows left, the old entry may be dropped.
- ``PII_HMAC_KEY``: 32 random bytes in base64url (``new_hmac_key()``), used only for blind indexes
  and never for encryption. There is one such key: rotating it means recomputing every stored
  index (a re-index), because an index is only useful if every row was computed with the same key.

Stored ciphertext (bytes, a BYTEA column)::

    version (1 byte, = 1) | kid length n (1 byte) | kid (n ASCII bytes) | nonce (12 bytes) | AES-GCM ciphertext+tag

The header (version, kid length, kid) is authenticated as associated data, and so is the column's
optional *context* (``EncryptedText("intake.cases.narrative")``), so a ciphertext moved to another
column, or whose header was edited, fails to decrypt instead of decrypting silently.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column, LargeBinary, MetaData, and_, bindparam, func, literal, select, tuple_, type_coerce, update,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ENCRYPTION_KEYS_VAR", "HMAC_KEY_VAR", "VERSION",
    "CryptoConfigError", "DecryptionError", "UnknownKeyError",
    "Keyring", "parse_keys", "parse_hmac_key", "configure_keys", "configure_hmac_key", "configure",
    "keyring", "new_key", "new_hmac_key", "kid_of", "encrypt_text", "decrypt_text",
    "normalise_phone", "blind_index", "phone_index",
    "EncryptedText", "encrypted_columns", "reencrypt", "reencrypt_columns", "reencrypt_command",
]

ENCRYPTION_KEYS_VAR = "PII_ENCRYPTION_KEYS"
HMAC_KEY_VAR = "PII_HMAC_KEY"
VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class CryptoConfigError(ValueError):
    """A key setting is missing or malformed. Messages name the variable, never the key material."""


class DecryptionError(Exception):
    """A stored value cannot be decrypted: malformed, tampered with, moved, or under a key we lack."""


class UnknownKeyError(DecryptionError):
    """The ciphertext names a key id that is not in PII_ENCRYPTION_KEYS."""


# ---------------------------------------------------------------------------------------------
# Keys
def _decode_key(text: str, where: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise CryptoConfigError(f"{where}: the key is not base64url (expected 32 random bytes, e.g. from new_key())")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CryptoConfigError(f"{where}: the key is not valid base64url") from None
    if len(raw) != KEY_BYTES:
        raise CryptoConfigError(f"{where}: the key decodes to {len(raw)} bytes; it must be {KEY_BYTES}")
    return raw


def _encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Keyring:
    """The primary key id (it encrypts) and every key by id (they all decrypt)."""

    primary_kid: str
    _keys: dict[str, AESGCM] = field(repr=False)
    # Raw key bytes, kept only to check that PII_HMAC_KEY differs from every encryption key.
    _fingerprints: frozenset[bytes] = field(repr=False, default=frozenset())

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def encrypt(self, plaintext: bytes, context: str | None = None) -> bytes:
        header = _header(self.primary_kid)
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._keys[self.primary_kid].encrypt(nonce, plaintext, _aad(header, context))

    def decrypt(self, blob: bytes, context: str | None = None) -> bytes:
        kid, header_len = _parse_header(blob)
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKeyError(
                f"the value was encrypted under key id {kid!r}, which is not in {ENCRYPTION_KEYS_VAR} "
                f"(known: {', '.join(self._keys)}); add that key back to decrypt it"
            )
        nonce = blob[header_len:header_len + NONCE_BYTES]
        try:
            return key.decrypt(nonce, blob[header_len + NONCE_BYTES:], _aad(blob[:header_len], context))
        except InvalidTag:
            where = f"context {context!r}" if context else "no context"
            raise DecryptionError(
                f"the value under key id {kid!r} failed authentication: it was altered, or it belongs to "
                f"another column (decrypted with {where})"
            ) from None


def _header(kid: str) -> bytes:
    raw = kid.encode("ascii")
    return bytes((VERSION, len(raw))) + raw


def _aad(header: bytes, context: str | None) -> bytes:
    return header if context is None else header + context.encode("utf-8")


def _parse_header(blob: bytes) -> tuple[str, int]:
    """(kid, header length). Raises DecryptionError on anything that is not our format."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise DecryptionError(f"expected ciphertext bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < 2:
        raise DecryptionError("the ciphertext is truncated (no header)")
    if blob[0] != VERSION:
        hint = " (it looks like a Fernet token from before AES-GCM)" if blob[0] == 0x80 else ""
        raise DecryptionError(f"unsupported ciphertext version 0x{blob[0]:02x}{hint}")
    n = blob[1]
    header_len = 2 + n
    if n == 0 or len(blob) < header_len + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("the ciphertext is truncated")
    try:
        kid = blob[2:header_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("the ciphertext's key id is not ASCII") from None
    if not _KID.fullmatch(kid):
        raise DecryptionError("the ciphertext's key id is malformed")
    return kid, header_len


def kid_of(ciphertext: bytes) -> str:
    """The key id a stored value was encrypted under (to find rows that need re-encryption)."""
    return _parse_header(ciphertext)[0]


def parse_keys(spec: str, var: str = ENCRYPTION_KEYS_VAR) -> Keyring:
    """Parse ``kid:key[,kid:key...]``. Error messages name `var` and the entry's position, never the key."""
    if spec is None:
        raise CryptoConfigError(f"{var} is not set")
    entries = [e.strip() for e in spec.split(",")]
    entries = [e for e in entries if e]
    if not entries:
        raise CryptoConfigError(f"{var} holds no key (expected comma-separated kid:key entries; the first encrypts)")
    keys: dict[str, AESGCM] = {}
    raws: list[bytes] = []
    for position, entry in enumerate(entries, 1):
        where = f"{var} entry {position}"
        if ":" not in entry:
            hint = (" (a bare 44-character key is the old Fernet format, no longer supported)"
                    if len(entry) == 44 else "")
            raise CryptoConfigError(f"{where} has no key id: expected kid:base64url-key{hint}")
        kid, _, text = entry.partition(":")
        kid, text = kid.strip(), text.strip()
        if not _KID.fullmatch(kid):
            raise CryptoConfigError(f"{where}: the key id must be 1-32 characters of A-Z a-z 0-9 _ -")
        where = f"{var} key id {kid!r}"
        if kid in keys:
            raise CryptoConfigError(f"{var}: key id {kid!r} appears more than once")
        raw = _decode_key(text, where)
        if raw in raws:
            raise CryptoConfigError(f"{where}: the same key material appears under two key ids")
        raws.append(raw)
        keys[kid] = AESGCM(raw)
    return Keyring(next(iter(keys)), keys, frozenset(raws))


def parse_hmac_key(text: str, var: str = HMAC_KEY_VAR) -> bytes:
    if text is None or not text.strip():
        raise CryptoConfigError(f"{var} is not set")
    text = text.strip()
    if ":" in text:
        raise CryptoConfigError(f"{var} is a single base64url key without a key id (it must not be a kid:key entry)")
    return _decode_key(text, var)


def new_key(kid: str | None = None) -> str:
    """A fresh ``kid:key`` entry for PII_ENCRYPTION_KEYS; the default kid is ``k<UTC date><4 hex>``."""
    kid = kid or f"k{datetime.now(UTC):%Y%m%d}{secrets.token_hex(2)}"
    if not _KID.fullmatch(kid):
        raise CryptoConfigError("a key id must be 1-32 characters of A-Z a-z 0-9 _ -")
    return f"{kid}:{_encode_key(secrets.token_bytes(KEY_BYTES))}"


def new_hmac_key() -> str:
    """A fresh PII_HMAC_KEY value."""
    return _encode_key(secrets.token_bytes(KEY_BYTES))


# ---------------------------------------------------------------------------------------------
# Process-wide configuration
_keyring: Keyring | None = None
_hmac_key: bytes | None = None


def configure_keys(keys: str, hmac_key: str | None = None) -> None:
    """Set the process keyring from PII_ENCRYPTION_KEYS and, if given, the blind-index key from
    PII_HMAC_KEY (None leaves the blind-index key as it was). Raises CryptoConfigError."""
    global _keyring
    ring = parse_keys(keys)
    if hmac_key is not None:
        configure_hmac_key(hmac_key, ring)
    _keyring = ring


def configure_hmac_key(hmac_key: str, ring: Keyring | None = None) -> None:
    global _hmac_key
    raw = parse_hmac_key(hmac_key)
    ring = ring or _keyring
    if ring is not None and raw in ring._fingerprints:
        raise CryptoConfigError(f"{HMAC_KEY_VAR} must differ from every key in {ENCRYPTION_KEYS_VAR}")
    _hmac_key = raw


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def configure(settings: Any) -> None:
    """From settings with ``pii_encryption_keys`` and, optionally, ``pii_hmac_key`` (str or SecretStr)."""
    configure_keys(_secret(settings.pii_encryption_keys), _secret(getattr(settings, "pii_hmac_key", None)))


def keyring() -> Keyring:
    if _keyring is None:
        raise RuntimeError(f"PII encryption keys are not configured (call configure_keys with {ENCRYPTION_KEYS_VAR})")
    return _keyring


def _hmac() -> bytes:
    if _hmac_key is None:
        raise RuntimeError(f"the blind-index key is not configured (set {HMAC_KEY_VAR})")
    return _hmac_key


def encrypt_text(value: str, context: str | None = None) -> bytes:
    return keyring().encrypt(value.encode("utf-8"), context)


def decrypt_text(blob: bytes, context: str | None = None) -> str:
    return keyring().decrypt(bytes(blob), context).decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Blind indexes
_PHONE_SEPARATORS = re.compile(r"[\s.\-()/]")


def normalise_phone(raw: str) -> str:
    """A phone number in one canonical form, so the same number always gives the same blind index.

    Vietnamese numbers become the national form with a leading 0 (``+84 912 345 678``,
    ``84-912-345-678``, ``0084912345678`` and ``+84 (0) 912 345 678`` all give ``0912345678``).
    Numbers with another country code become ``+`` and digits (``+86 138 0013 8000`` gives
    ``+8613800138000``). Spaces, dots, dashes, slashes and parentheses are dropped; any other
    character, or a length no phone number has, raises ValueError. The message never echoes the input.
    """
    if not isinstance(raw, str):
        raise ValueError("a phone number must be text")
    text = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    international = text.startswith("+")
    digits = text[1:] if international else text
    if not digits:
        raise ValueError("the phone number is empty")
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("a phone number may hold only digits, a leading +, spaces, dots, dashes and parentheses")
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    if international and digits.startswith("0"):
        raise ValueError("after + comes a country code, which never starts with 0")
    if international or (digits.startswith("84") and len(digits) in (11, 12)):
        if digits.startswith("84"):
            national = digits[2:]
            if national.startswith("0"):  # "+84 (0) 912 ..."
                national = national[1:]
            if national.startswith("0"):
                raise ValueError("a Vietnamese number after +84 does not start with 00")
            digits = "0" + national
        else:
            if not 8 <= len(digits) <= 15:
                raise ValueError("an international phone number has 8 to 15 digits after the country prefix")
            return "+" + digits
    if not digits.startswith("0"):
        raise ValueError("a Vietnamese phone number starts with 0, +84 or 84")
    if not 9 <= len(digits) <= 11:
        raise ValueError("a Vietnamese phone number has 9 to 11 digits including the leading 0")
    return digits


def normalise_name(raw: str) -> str:
    """Vietnamese names as people type them: accents, case and spacing do not matter ("Lò Thị D" == "lo thi d")."""
    folded = unicodedata.normalize("NFKD", raw.replace("đ", "d").replace("Đ", "D"))
    letters = "".join(ch for ch in folded if not unicodedata.combining(ch)).casefold()
    words = "".join(ch if ch.isalnum() else " " for ch in letters).split()
    if not words:
        raise ValueError("a name needs at least one letter or digit")
    return " ".join(words)


_NORMALISERS = {"phone": normalise_phone, "name": normalise_name, "suspect": normalise_name}


def blind_index(value: str, kind: str) -> bytes:
    """HMAC-SHA256 (32 bytes) of the normalised value, keyed by PII_HMAC_KEY and separated by `kind`.

    Equal inputs after normalisation give equal indexes, so ``WHERE phone_hmac = :index`` finds a
    row without decrypting anything; the index alone reveals nothing without the key.
    Kinds: ``"phone"`` (see normalise_phone). Raises ValueError for a value that does not normalise.
    """
    normalise = _NORMALISERS.get(kind)
    if normalise is None:
        raise ValueError(f"unknown blind index kind {kind!r} (known: {', '.join(_NORMALISERS)})")
    message = kind.encode("ascii") + b"\x00" + normalise(value).encode("utf-8")
    return hmac.new(_hmac(), message, hashlib.sha256).digest()


def phone_index(raw: str) -> bytes:
    return blind_index(raw, "phone")


# ---------------------------------------------------------------------------------------------
# The column type
class EncryptedText(TypeDecorator):
    """Text stored as AES-GCM ciphertext (BYTEA); the database never sees the plain value.

    `context`, e.g. ``"intake.cases.narrative"``, is bound as associated data, so a ciphertext
    copied into another column does not decrypt there. Changing a column's context makes its
    existing rows unreadable, so choose it once.
    """

    impl = LargeBinary
    cache_ok = True

    def __init__(self, context: str | None = None):
        super().__init__()
        self.context = context

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"EncryptedText stores str, not {type(value).__name__}")
        return encrypt_text(value, self.context)

    def process_result_value(self, value, dialect):
        return None if value is None else decrypt_text(value, self.context)

    def __repr__(self) -> str:
        return f"EncryptedText({self.context!r})" if self.context else "EncryptedText()"


def encrypted_columns(metadata: MetaData) -> list[Column]:
    """Every EncryptedText column in `metadata` (what reencrypt should be given)."""
    return [c for t in metadata.sorted_tables for c in t.columns if isinstance(c.type, EncryptedText)]


# ---------------------------------------------------------------------------------------------
# Re-encryption under the primary key
async def _reencrypt_column(engine, column: Column, ring: Keyring, batch_size: int) -> int:
    table = column.table
    pk = list(table.primary_key.columns)
    if not pk:
        raise ValueError(f"{table.fullname} has no primary key; reencrypt needs one to address rows")
    context = column.type.context if isinstance(column.type, EncryptedText) else None
    raw = type_coerce(column, LargeBinary)
    primary = _header(ring.primary_kid)
    # Rows not under the primary key: another version byte, or another kid. Done on the bytes in SQL.
    stale = and_(
        column.is_not(None),
        func.substr(raw, 1, len(primary)) != literal(primary, LargeBinary),
    )
    query = (
        select(*pk, raw.label("ct"))
        .where(stale)
        .order_by(*pk)
        .limit(batch_size)
        .with_for_update(skip_locked=True, of=table)
    )
    params = [f"_pk{i}" for i in range(len(pk))]
    write = (
        update(table)
        .where(and_(*[c == bindparam(p) for c, p in zip(pk, params)]))
        .values({column.name: bindparam("_ct", type_=LargeBinary)})
    )
    total, last = 0, None
    while True:
        # Walk the primary key forward (keyset), so each batch reads only rows after the previous one.
        after = None if last is None else tuple_(*pk) > tuple_(*[literal(v, c.type) for v, c in zip(last, pk)])
        batch = query if after is None else query.where(after)
        async with engine.begin() as conn:  # one transaction per batch: short locks, progress survives
            rows = (await conn.execute(batch)).all()
            if not rows:
                return total
            last = tuple(rows[-1][:len(pk)])
            updates = []
            for row in rows:
                try:
                    plain = ring.decrypt(bytes(row.ct), context)
                except DecryptionError as exc:
                    ident = ", ".join(str(v) for v in row[:len(pk)])
                    raise type(exc)(f"{table.fullname}.{column.name} row ({ident}): {exc}") from None
                updates.append({**dict(zip(params, row[:len(pk)])), "_ct": ring.encrypt(plain, context)})
            await conn.execute(write, updates)
            total += len(rows)
        # Until a batch finds nothing stale. Rows another transaction holds at that moment are
        # skipped (SKIP LOCKED), not waited for; a rerun picks them up.


async def reencrypt(engine, columns: Sequence[Column], batch_size: int = 500) -> int:
    """Rewrite every value of `columns` not under the primary key so it is; returns rows rewritten.

    Each batch is its own transaction and takes its rows with FOR UPDATE SKIP LOCKED, so it runs
    beside the live service. Roll out the new PII_ENCRYPTION_KEYS to the service first, so it stops
    writing under the old key. Safe to rerun: a second run rewrites 0 rows.
    """
    return sum((await reencrypt_columns(engine, columns, batch_size)).values())


async def reencrypt_columns(engine, columns: Iterable[Column], batch_size: int = 500) -> dict[str, int]:
    """Like reencrypt, but rows rewritten per ``schema.table.column``."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    ring = keyring()
    counts: dict[str, int] = {}
    for column in columns:
        counts[f"{column.table.fullname}.{column.name}"] = await _reencrypt_column(engine, column, ring, batch_size)
    return counts


def reencrypt_command(database_url: str, columns: Sequence[Column], batch_size: int = 500) -> None:
    """CLI body: re-encrypt `columns` under the primary key (configure_keys first) and print counts."""
    from runtime.db import create_engine

    async def run() -> dict[str, int]:
        engine = create_engine(database_url, pool_size=1)
        try:
            return await reencrypt_columns(engine, columns, batch_size)
        finally:
            await engine.dispose()

    primary = keyring().primary_kid
    counts = asyncio.run(run())
    for name, n in counts.items():
        print(f"{name}: {n} rows re-encrypted under {primary}", flush=True)
    print(f"total: {sum(counts.values())} rows re-encrypted under {primary}", flush=True)
