"""How many SMS parts a text costs (3GPP TS 23.038 alphabets, TS 23.040 concatenation).

GSM-7 when every character is in the GSM 03.38 basic set or its extension table (an extension character
is an escape plus one septet: it costs 2), else UCS-2 (UTF-16: a character outside the BMP costs 2 code
units). One part holds 160 septets or 70 units; a concatenated part loses room to its header and holds
153 or 67. Parts are counted by walking the text, because a surrogate pair or an escape sequence cannot
be split across two parts: the naive ceil(units / 153) undercounts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# GSM 03.38 basic character set in code order, less ESC (0x1B), which only introduces the extension table.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")  # each costs 2 septets

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class SmsSize:
    encoding: Encoding
    characters: int  # code points
    units: int  # septets (gsm7) or UTF-16 code units (ucs2)
    segments: int  # parts billed; 0 for an empty text


def _gsm7_costs(text: str) -> list[int] | None:
    costs = []
    for ch in text:
        if ch in GSM7_BASIC:
            costs.append(1)
        elif ch in GSM7_EXTENSION:
            costs.append(2)
        else:
            return None
    return costs


def _parts(costs: list[int], single: int, part: int) -> int:
    total = sum(costs)
    if total <= single:
        return 1 if costs else 0
    parts, room = 1, part
    for cost in costs:
        if cost > room:  # never split one character's units across parts
            parts, room = parts + 1, part
        room -= cost
    return parts


def sms_size(text: str) -> SmsSize:
    """The encoding a phone would use for `text`, its length in that encoding, and the parts it costs."""
    costs = _gsm7_costs(text)
    if costs is not None:
        return SmsSize("gsm7", len(text), sum(costs), _parts(costs, GSM7_SINGLE, GSM7_PART))
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsSize("ucs2", len(text), sum(costs), _parts(costs, UCS2_SINGLE, UCS2_PART))
