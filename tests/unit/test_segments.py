"""SMS sizes: GSM-7 (with its 2-septet extension characters) or UCS-2 (surrogate pairs 2 units), one part or
concatenated parts, counted by walking so no character is split across parts."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.templates.segments import GSM7_BASIC, GSM7_EXTENSION, SmsSize, sms_size

gsm_basic = st.sampled_from(sorted(GSM7_BASIC))
gsm_text = st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), max_size=1200)
any_text = st.text(max_size=700)
EXTENSION = "^{}\\[~]|€\f"


@pytest.mark.parametrize(("text", "expected"), [
    ("", SmsSize("gsm7", 0, 0, 0)),
    ("Hello world", SmsSize("gsm7", 11, 11, 1)),
    ("Café à Paris: 10€ {ok}", SmsSize("gsm7", 22, 25, 1)),  # é, à basic; € { } extension
    ("Xin chào", SmsSize("gsm7", 8, 8, 1)),  # à is in the basic set
    ("Đường dây nóng 111", SmsSize("ucs2", 18, 18, 1)),
    ("ça va", SmsSize("ucs2", 5, 5, 1)),  # the set has Ç but not ç
    ("Ça va", SmsSize("gsm7", 5, 5, 1)),
    ("a" * 160, SmsSize("gsm7", 160, 160, 1)),
    ("a" * 161, SmsSize("gsm7", 161, 161, 2)),
    ("€" * 80, SmsSize("gsm7", 80, 160, 1)),
    ("€" * 81, SmsSize("gsm7", 81, 162, 2)),  # 76 escape pairs (152 septets) a part, then 5
    ("😀" * 35, SmsSize("ucs2", 35, 70, 1)),
    ("😀" * 36, SmsSize("ucs2", 36, 72, 2)),  # 33 pairs (66 units) a part
    # 134 units would be 2 parts if pairs could be split; the pair moves whole to the second part
    ("a" * 66 + "😀" + "a" * 66, SmsSize("ucs2", 133, 134, 3)),
    # likewise an escape sequence: 306 septets, 3 parts
    ("a" * 152 + "€" + "a" * 152, SmsSize("gsm7", 305, 306, 3)),
])
def test_known_examples(text, expected):
    assert sms_size(text) == expected


@pytest.mark.parametrize(("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)])
def test_gsm7_boundaries(length, segments):
    assert sms_size("x" * length) == SmsSize("gsm7", length, length, segments)


@pytest.mark.parametrize(("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)])
def test_ucs2_boundaries(length, segments):
    assert sms_size("ư" * length) == SmsSize("ucs2", length, length, segments)


@given(st.sampled_from(EXTENSION), st.integers(0, 200))
def test_extension_characters_cost_two_septets(ch, basic):
    size = sms_size("a" * basic + ch)
    assert size.encoding == "gsm7" and size.characters == basic + 1 and size.units == basic + 2


def test_vietnamese_sentence_is_ucs2():
    size = sms_size("Đường dây nóng 111 chuyển vụ việc 111-2026-000042 (khẩn cấp) tại Phường Hoàn Kiếm.")
    assert size.encoding == "ucs2" and size.units == size.characters == 82 and size.segments == 2


@given(gsm_text)
def test_gsm7_text_counts_septets(text):
    size = sms_size(text)
    assert size.encoding == "gsm7"
    assert size.units == len(text) + sum(ch in GSM7_EXTENSION for ch in text)


@given(any_text)
def test_ucs2_counts_utf16_units(text):
    size = sms_size(text)
    if size.encoding == "ucs2":
        assert size.units == len(text.encode("utf-16-le")) // 2
    assert size.characters == len(text)


@given(any_text, st.text(min_size=1, max_size=50))
def test_segments_never_fall_as_text_grows(text, more):
    """Appending never makes a message cheaper, even when it switches the encoding to UCS-2."""
    assert sms_size(text + more).segments >= sms_size(text).segments


@given(st.one_of(gsm_text, any_text))
def test_parts_hold_the_units(text):
    """Enough parts for the units, never a part more than a split-free walk can need."""
    size = sms_size(text)
    single, part = (160, 153) if size.encoding == "gsm7" else (70, 67)
    if size.units == 0:
        assert size.segments == 0
    elif size.units <= single:
        assert size.segments == 1
    else:
        lower = -(-size.units // part)
        assert lower <= size.segments <= -(-size.units // (part - 1))  # a part loses at most 1 unit to a split
