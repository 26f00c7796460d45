"""The facts of a referral as words of the message's language: urgency, exploitation purposes, levels,
times and place names. Vietnamese, or English for foreign counterparts."""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from schemas.geography import communes, province_name

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # agencies read deadlines on Vietnam's clock, whatever the reader's

URGENCY = {
    # The degrees of official correspondence (độ khẩn): short enough for an SMS, and familiar to agencies.
    "vi": {"emergency": "khẩn cấp", "high": "khẩn", "normal": "thường"},
    "en": {"emergency": "emergency", "high": "high", "normal": "normal"},
}
# schemas.vocab.Exploitation, in the words of Law 53/2024 where it has them.
EXPLOITATION = {
    "vi": {
        "sexual_exploitation": "bóc lột tình dục",
        "forced_labour": "cưỡng bức lao động",
        "organ_removal": "lấy bộ phận cơ thể người",
        "forced_marriage": "cưỡng ép kết hôn",
        "forced_military": "cưỡng bức tham gia hoạt động quân sự",
        "slavery_and_practices": "nô lệ và các hình thức tương tự nô lệ",
        "foetus_trading": "mua bán bào thai",
        "material_benefit": "trục lợi vật chất",
        "other_inhumane_purposes": "mục đích vô nhân đạo khác",
    },
    "en": {
        "sexual_exploitation": "sexual exploitation",
        "forced_labour": "forced labour",
        "organ_removal": "organ removal",
        "forced_marriage": "forced marriage",
        "forced_military": "forced military service",
        "slavery_and_practices": "slavery and similar practices",
        "foetus_trading": "foetus trading",
        "material_benefit": "material gain",
        "other_inhumane_purposes": "other inhumane purposes",
    },
}
UNSPECIFIED = {"vi": "chưa rõ", "en": "unspecified"}
LEVEL = {
    "vi": {"commune": "cấp xã", "province": "cấp tỉnh", "region": "cấp khu vực", "national": "cấp trung ương",
           "international": "cấp quốc tế"},
    "en": {"commune": "commune level", "province": "province level", "region": "regional level",
           "national": "national level", "international": "international level"},
}
CLOCK = {"vi": "giờ Việt Nam", "en": "Vietnam time"}
# English place names put the kind of place last, as Vietnam's own English usage does ("Ha Noi City").
_EN_PLACE = (("Thành phố ", " City"), ("Phường ", " Ward"), ("Xã ", " Commune"), ("Đặc khu ", " Special Zone"))


def language(code: str | None) -> str:
    """The language words are written in: `code` when notify has templates in it, else Vietnamese."""
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def urgency(code: str | None, lang: str) -> str:
    return URGENCY[lang].get(code or "", code or "")


def category(purposes: Iterable[str], lang: str) -> str:
    words = [EXPLOITATION[lang].get(p, p.replace("_", " ")) for p in dict.fromkeys(purposes)]
    return ", ".join(words) or UNSPECIFIED[lang]


def level(code: str | None, lang: str) -> str:
    return LEVEL[lang].get(code or "", code or "")


def local_time(when: datetime | str | None, lang: str) -> str:
    """'HH:MM dd/mm/yyyy (giờ Việt Nam)'; `when` may be an ISO 8601 string (as kept in JSON)."""
    if when is None or when == "":
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:  # events carry aware times; a naive one can only be UTC
        when = when.replace(tzinfo=UTC)
    return f"{when.astimezone(LOCAL_TZ):%H:%M %d/%m/%Y} ({CLOCK[lang]})"


# Punctuation in official names that GSM-7 lacks, and its plain form.
_PLAIN = str.maketrans({"Đ": "D", "đ": "d", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"'})


def ascii_fold(text: str) -> str:
    """Vietnamese without diacritics: keeps an English SMS in GSM-7 (160 characters a part, not 70)."""
    text = text.translate(_PLAIN)
    folded = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return "".join(c if c.isascii() else "-" for c in folded)  # anything left that GSM-7 may lack


def name(text: str, lang: str) -> str:
    """A Vietnamese name (a unit's) as written in `lang`."""
    return ascii_fold(text) if lang == "en" else text


def place(official: str | None, lang: str) -> str:
    if not official:
        return ""
    if lang == "en":
        for prefix, suffix in _EN_PLACE:
            if official.startswith(prefix):
                return ascii_fold(official.removeprefix(prefix)) + suffix
        return ascii_fold(official)
    return official


def province(code: str | None, lang: str) -> str:
    return place(province_name(code), lang) if code else ""


def commune(code: str | None, lang: str) -> str:
    found = communes().get(code) if code else None
    return place(found[0], lang) if found else ""
