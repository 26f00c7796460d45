"""Encryption at rest (AES-GCM with key ids) and blind indexes: the ciphertext hides the text, any
change to it is caught, keys rotate by prepending, and a phone number indexes the same however written."""
import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import crypto

VIETNAMESE = "ạảãàáâậầấẩẫăắằặẳẵđèéẹẻẽêềếệểễìíịỉĩòóọỏõôồốộổỗơờớợởỡùúụủũưừứựửữỳýỵỷỹ ĐƯƠ"


@pytest.fixture(autouse=True)
def restore_keys():
    saved = crypto._keyring, crypto._hmac_key
    yield
    crypto._keyring, crypto._hmac_key = saved


def column(context=None):
    return crypto.EncryptedText(context)


def store(value, context=None):
    return column(context).process_bind_param(value, None)


def load(blob, context=None):
    return column(context).process_result_value(blob, None)


# --- round trip, format -------------------------------------------------------------------------
@settings(max_examples=60)
@given(st.text(max_size=300) | st.text(alphabet=VIETNAMESE, min_size=1, max_size=300),
       st.none() | st.sampled_from(["intake.cases.narrative", "intake.persons.name"]))
def test_round_trip(value, context):
    crypto.configure_keys(crypto.new_key("k1"))
    assert load(store(value, context), context) == value


def test_none_stays_none():
    crypto.configure_keys(crypto.new_key())
    assert store(None) is None and load(None) is None


def test_only_text_is_stored():
    crypto.configure_keys(crypto.new_key())
    with pytest.raises(TypeError):
        store(b"bytes")


def test_format_is_version_kid_nonce_ciphertext_and_tag():
    crypto.configure_keys(crypto.new_key("k20261123a"))
    blob = store("Nguyễn Thị B")
    assert blob[0] == crypto.VERSION and blob[1] == len("k20261123a") and blob[2:12] == b"k20261123a"
    assert len(blob) == 2 + 10 + 12 + len("Nguyễn Thị B".encode()) + 16
    assert crypto.kid_of(blob) == "k20261123a"


def test_ciphertext_does_not_contain_the_text():
    crypto.configure_keys(crypto.new_key())
    name = "Nguyen Van A, 0912345678, Trần Văn C"
    stored = store(name)
    for part in ("Nguyen", "0912345678", "Trần"):
        assert part.encode() not in stored
    assert name.encode("utf-16-le")[:12] not in stored


def test_every_encryption_uses_a_fresh_nonce():
    crypto.configure_keys(crypto.new_key("k1"))
    blobs = [store("same text") for _ in range(200)]
    nonces = {b[4:16] for b in blobs}
    assert len(nonces) == 200 and len(set(blobs)) == 200


# --- integrity ------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(st.data())
def test_any_flipped_bit_is_caught(data):
    crypto.configure_keys(crypto.new_key("k1"))
    blob = bytearray(store("Caller reports a girl taken towards the border", "intake.cases.narrative"))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(crypto.DecryptionError):
        load(bytes(blob), "intake.cases.narrative")


def test_truncated_or_foreign_bytes_are_refused():
    crypto.configure_keys(crypto.new_key("k1"))
    blob = store("x")
    for bad in (b"", b"\x01", blob[:20], blob[:-1], b"\x02" + blob[1:]):
        with pytest.raises(crypto.DecryptionError):
            load(bad)
    with pytest.raises(crypto.DecryptionError, match="Fernet"):
        load(b"\x80" + bytes(60))  # a Fernet token from the earlier format


def test_context_binds_a_ciphertext_to_its_column():
    crypto.configure_keys(crypto.new_key("k1"))
    blob = store("Caller reports a girl taken towards the border", "intake.cases.narrative")
    assert load(blob, "intake.cases.narrative").startswith("Caller")
    for other in ("intake.cases.urgency_reason", None):
        with pytest.raises(crypto.DecryptionError, match="failed authentication"):
            load(blob, other)
    with pytest.raises(crypto.DecryptionError):
        load(store("no context"), "intake.cases.narrative")


def test_errors_never_carry_the_plaintext():
    crypto.configure_keys(crypto.new_key("k1"))
    blob = bytearray(store("Trần Văn C 0912345678", "a"))
    blob[-1] ^= 1
    with pytest.raises(crypto.DecryptionError) as caught:
        load(bytes(blob), "a")
    assert "Trần" not in str(caught.value) and "0912345678" not in str(caught.value)


# --- rotation ---------------------------------------------------------------------------------------
def test_rotation_reads_old_data_with_a_new_primary_key():
    old, new = crypto.new_key("k1"), crypto.new_key("k2")
    crypto.configure_keys(old)
    stored = store("Trần Văn C", "ctx")
    crypto.configure_keys(f"{new},{old}")
    assert crypto.keyring().primary_kid == "k2" and crypto.keyring().kids == ("k2", "k1")
    assert load(stored, "ctx") == "Trần Văn C"
    fresh = store("Trần Văn C", "ctx")
    assert crypto.kid_of(fresh) == "k2" and crypto.kid_of(stored) == "k1"
    crypto.configure_keys(new)
    with pytest.raises(crypto.UnknownKeyError, match="'k1'.*PII_ENCRYPTION_KEYS"):
        load(stored, "ctx")
    assert load(fresh, "ctx") == "Trần Văn C"


def test_same_kid_with_another_key_fails_authentication():
    crypto.configure_keys(crypto.new_key("k1"))
    stored = store("x")
    crypto.configure_keys(crypto.new_key("k1"))
    with pytest.raises(crypto.DecryptionError) as caught:
        load(stored)
    assert not isinstance(caught.value, crypto.UnknownKeyError)


def test_unconfigured_keyring_says_so():
    crypto._keyring = None
    with pytest.raises(RuntimeError, match="not configured"):
        store("x")


# --- key spec -------------------------------------------------------------------------------------
def b64(n: int) -> str:
    return base64.urlsafe_b64encode(bytes(range(n))).decode().rstrip("=")


KEY = b64(32)


@pytest.mark.parametrize(("spec", "message"), [
    ("", "holds no key"),
    (" , ", "holds no key"),
    (KEY, "entry 1 has no key id"),
    (base64.urlsafe_b64encode(bytes(32)).decode(), "old Fernet format"),
    (f"k1:{KEY},k1:{b64(32)[::-1]}", "'k1' appears more than once"),
    (f"k1:{b64(16)}", "decodes to 16 bytes; it must be 32"),
    (f"k1:{b64(33)}", "decodes to 33 bytes"),
    (f"k1:{KEY[:-2]}!!", "not base64url"),
    (f"k 1:{KEY}", "entry 1: the key id must be"),
    (f"k1:{KEY},{'x' * 33}:{KEY}", "entry 2: the key id must be"),
    (f":{KEY}", "the key id must be"),
    (f"kì:{KEY}", "the key id must be"),
    (f"k1:{KEY},k2:{KEY}", "same key material"),
])
def test_key_spec_errors_name_the_variable_and_never_the_key(spec, message):
    with pytest.raises(crypto.CryptoConfigError, match=message) as caught:
        crypto.configure_keys(spec)
    assert "PII_ENCRYPTION_KEYS" in str(caught.value)
    assert KEY not in str(caught.value) and KEY[:-2] not in str(caught.value)


def test_key_spec_tolerates_spaces_padding_and_empty_entries():
    padded = base64.urlsafe_b64encode(bytes(range(32))).decode()
    crypto.configure_keys(f" k1 : {padded} , , k-2_b:{b64(32)[::-1]},")
    assert crypto.keyring().kids == ("k1", "k-2_b")


def test_new_key_makes_valid_unique_entries():
    entries = [crypto.new_key() for _ in range(50)]
    kids = [e.partition(":")[0] for e in entries]
    assert len(set(kids)) == 50 and all(k.startswith("k2") and len(k) <= 32 for k in kids)
    crypto.configure_keys(",".join(entries))
    assert crypto.keyring().primary_kid == kids[0]
    assert crypto.new_key("k20261123a").startswith("k20261123a:")
    with pytest.raises(crypto.CryptoConfigError):
        crypto.new_key("bad kid")


def test_hmac_key_validation():
    with pytest.raises(crypto.CryptoConfigError, match="PII_HMAC_KEY is not set"):
        crypto.configure_hmac_key("  ")
    with pytest.raises(crypto.CryptoConfigError, match="PII_HMAC_KEY.*without a key id"):
        crypto.configure_hmac_key(crypto.new_key())
    with pytest.raises(crypto.CryptoConfigError, match="PII_HMAC_KEY: the key decodes to 16 bytes"):
        crypto.configure_hmac_key(b64(16))
    with pytest.raises(crypto.CryptoConfigError, match="PII_HMAC_KEY must differ"):
        crypto.configure_keys(f"k1:{KEY}", KEY)


def test_configure_from_settings():
    from pydantic import SecretStr

    class Settings:
        pii_encryption_keys = SecretStr(crypto.new_key("k9"))
        pii_hmac_key = SecretStr(crypto.new_hmac_key())

    crypto.configure(Settings())
    assert crypto.keyring().primary_kid == "k9" and len(crypto.phone_index("0912345678")) == 32


# --- blind index ----------------------------------------------------------------------------------
@pytest.fixture
def hmac_key():
    crypto.configure_keys(crypto.new_key("k1"), crypto.new_hmac_key())


@pytest.mark.parametrize("raw", [
    "+84 912 345 678", "0912345678", "84-912-345-678", "0084 912 345 678", "+84 (0) 912.345.678",
    "(+84) 912-345-678", "0912 345 678", "091.234.5678", "８４９１２３４５６７８", "+84\u00a0912\u00a0345\u00a0678",
])
def test_phone_formats_normalise_to_one_number(raw):
    assert crypto.normalise_phone(raw) == "0912345678"


@pytest.mark.parametrize(("raw", "expected"), [
    ("024 3825 1234", "02438251234"),        # Hà Nội landline
    ("+84 24 3825 1234", "02438251234"),
    ("+86 138 0013 8000", "+8613800138000"),  # another country keeps its code
    ("0086 138 0013 8000", "+8613800138000"),
])
def test_other_numbers(raw, expected):
    assert crypto.normalise_phone(raw) == expected


@pytest.mark.parametrize("raw", [
    "", "   ", "111", "0912", "0912 345", "912345678", "0912-345-678 ext 2", "0912345678x", "+0912345678",
    "091234567890", "+1 23", "call me", "+84", "0912+345678", "+84 00 912 345 678",
])
def test_invalid_phone_numbers_are_refused_without_echo(raw):
    with pytest.raises(ValueError) as caught:
        crypto.normalise_phone(raw)
    if len(raw.strip()) > 4:
        assert raw.strip() not in str(caught.value)


def test_blind_index_is_deterministic_and_normalised(hmac_key):
    a = crypto.blind_index("+84 912 345 678", "phone")
    assert a == crypto.blind_index("0912345678", "phone") == crypto.blind_index("84-912-345-678", "phone")
    assert a == crypto.phone_index("0912 345 678") and len(a) == 32
    assert a != crypto.blind_index("0912345679", "phone")
    assert b"0912345678" not in a


def test_blind_index_depends_on_the_key(hmac_key):
    a = crypto.phone_index("0912345678")
    crypto.configure_hmac_key(crypto.new_hmac_key())
    assert crypto.phone_index("0912345678") != a


def test_blind_index_refuses_unknown_kinds_and_bad_values(hmac_key):
    with pytest.raises(ValueError, match="unknown blind index kind"):
        crypto.blind_index("x", "email")
    with pytest.raises(ValueError):
        crypto.phone_index("12")


def test_blind_index_needs_its_key():
    crypto.configure_keys(crypto.new_key())
    crypto._hmac_key = None
    with pytest.raises(RuntimeError, match="PII_HMAC_KEY"):
        crypto.phone_index("0912345678")


SEPARATORS = st.sampled_from(["", " ", ".", "-", " - ", "  "])


@st.composite
def written_phone(draw):
    """One Vietnamese mobile number, and the same number as a person might write it."""
    nsn = draw(st.sampled_from("35789")) + draw(st.text(alphabet="0123456789", min_size=8, max_size=8))
    prefix = draw(st.sampled_from(["0", "+84", "+84 ", "84", "0084", "0084 ", "+84 (0)", "(+84) ", "+84-"]))
    groups = draw(st.sampled_from([(3, 3, 3), (2, 3, 4), (4, 5), (9,), (3, 6)]))
    parts, i = [], 0
    for g in groups:
        parts.append(nsn[i:i + g])
        i += g
    body = parts[0]
    for part in parts[1:]:
        body += draw(SEPARATORS) + part
    return "0" + nsn, prefix + body


@settings(max_examples=200)
@given(written_phone())
def test_any_way_of_writing_a_number_gives_the_same_index(case):
    crypto.configure_keys(crypto.new_key("k1"), base64.urlsafe_b64encode(bytes(32)).decode())
    canonical, written = case
    assert crypto.normalise_phone(written) == canonical
    assert crypto.phone_index(written) == crypto.phone_index(canonical)


@settings(max_examples=200)
@given(st.text(max_size=30))
def test_normalise_phone_never_fails_otherwise(raw):
    try:
        out = crypto.normalise_phone(raw)
    except ValueError:
        return
    assert out == crypto.normalise_phone(out)  # idempotent
    assert (out.startswith("0") and out[1:].isdigit() and 9 <= len(out) <= 11) or (
        out.startswith("+") and out[1:].isdigit() and 8 <= len(out) - 1 <= 15
    )
