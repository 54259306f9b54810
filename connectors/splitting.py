"""Replies longer than a platform takes are split on word boundaries into ordered parts.

Each platform counts its limit its own way (docs/connectors.md, "Platform limits"):
Telegram 4,096 characters of text, counted as UTF-16 code units like its entity offsets;
Messenger 2,000 characters (UTF-16 code units here too, so an emoji never tips a part over);
WeChat 2,048 bytes of UTF-8 (``45002 content size out of limit`` beyond). Pure: the same body
always gives the same parts, which is what lets a crashed send resume at the next part.
"""

from collections.abc import Callable
from dataclasses import dataclass


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class TextLimit:
    size: int
    measure: Callable[[str], int]


LIMITS: dict[str, TextLimit] = {
    "telegram": TextLimit(4096, utf16_units),
    "messenger": TextLimit(2000, utf16_units),
    "wechat": TextLimit(2048, utf8_bytes),
}

# A break this far back or more is not worth the short part it leaves: cut the word instead.
MIN_FILL = 0.5


def split_text(text: str, limit: TextLimit) -> list[str]:
    """``text`` in parts of at most ``limit``: at a paragraph, line or space break when one
    lies in the second half of the part, else (a word longer than that) inside the word.
    The whitespace a break falls on is dropped; nothing else is."""
    parts: list[str] = []
    rest = text
    while limit.measure(rest) > limit.size:
        fits = _longest_prefix(rest, limit)
        cut = _break_at(rest[:fits], fits)
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if part:
            parts.append(part)
    if rest.strip() or not parts:
        parts.append(rest)
    return parts


def _longest_prefix(text: str, limit: TextLimit) -> int:
    """How many code points of ``text`` fit (binary search: measures are monotonic)."""
    low, high = 1, len(text)  # one code point always fits: every limit is far above 4 units
    while low < high:
        mid = (low + high + 1) // 2
        if limit.measure(text[:mid]) <= limit.size:
            low = mid
        else:
            high = mid - 1
    return low


def _break_at(window: str, fits: int) -> int:
    earliest = int(fits * MIN_FILL)
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator)
        if at >= earliest:
            return at
    at = max(window.rfind(" "), window.rfind("\t"), window.rfind("\u3000"))
    return at if at >= earliest else fits
