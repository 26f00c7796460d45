"""Encryption at rest: the ciphertext hides the text, and keys rotate by prepending."""
import pytest
from cryptography.fernet import InvalidToken
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import crypto


@pytest.fixture(autouse=True)
def restore_keyring():
    saved = crypto._keyring
    yield
    crypto._keyring = saved


@settings(max_examples=30)
@given(st.text(min_size=1, max_size=200))
def test_round_trip(value):
    crypto.configure_keys(crypto.new_key())
    column = crypto.EncryptedText()
    assert column.process_result_value(column.process_bind_param(value, None), None) == value


def test_ciphertext_does_not_contain_the_text():
    crypto.configure_keys(crypto.new_key())
    name = "Nguyen Van A, 0912345678"
    stored = crypto.EncryptedText().process_bind_param(name, None)
    assert b"Nguyen" not in stored and b"0912345678" not in stored
    assert stored != crypto.EncryptedText().process_bind_param(name, None)  # fresh IV each time


def test_rotation_reads_old_data_with_a_new_primary_key():
    old, new = crypto.new_key(), crypto.new_key()
    crypto.configure_keys(old)
    stored = crypto.EncryptedText().process_bind_param("Trần Văn C", None)
    crypto.configure_keys(f"{new},{old}")
    assert crypto.EncryptedText().process_result_value(stored, None) == "Trần Văn C"
    crypto.configure_keys(new)
    with pytest.raises(InvalidToken):
        crypto.EncryptedText().process_result_value(stored, None)


def test_empty_key_list_is_refused():
    with pytest.raises(ValueError):
        crypto.configure_keys(" , ")
