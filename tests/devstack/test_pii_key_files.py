"""`make run` keeps its PII keys in .data: made once, reused, and an old Fernet key is refused plainly."""
import base64

import pytest

from devstack.stack import load_or_create_hmac_key, load_or_create_pii_key
from runtime import crypto


def test_keys_are_created_once_private_and_valid(tmp_path):
    pii, hmac_key = tmp_path / "pii.key", tmp_path / "pii-hmac.key"
    first = load_or_create_pii_key(pii)
    assert load_or_create_pii_key(pii) == first and pii.stat().st_mode & 0o777 == 0o600
    assert crypto.parse_keys(first).primary_kid == first.partition(":")[0]
    assert load_or_create_hmac_key(hmac_key) == load_or_create_hmac_key(hmac_key)
    assert len(crypto.parse_hmac_key(hmac_key.read_text())) == 32


def test_an_old_fernet_key_file_says_to_clean_the_data(tmp_path):
    pii = tmp_path / "pii.key"
    pii.write_text(base64.urlsafe_b64encode(bytes(32)).decode() + "\n")  # what `make run` wrote before
    with pytest.raises(RuntimeError, match=r"Fernet key.*make clean-data"):
        load_or_create_pii_key(pii)


def test_a_damaged_key_file_names_the_file(tmp_path):
    pii = tmp_path / "pii.key"
    pii.write_text("k1:short\n")
    with pytest.raises(crypto.CryptoConfigError, match=str(pii)):
        load_or_create_pii_key(pii)
