"""What a platform user shares that is neither text nor a file — a location, a venue, a
contact, a link — as one readable line of their message, so the agent learns what was sent
(these used to be dropped without a trace on all three platforms).

Each function takes the platform's values as they came and returns None when they do not
say enough to be read (no coordinates, no phone and no name, no URL).
"""

import math

MAX_PART = 500  # one title, address or URL: a line stays a line


def location_line(latitude: object, longitude: object, *labels: object) -> str | None:
    """``📍 Location: 52.520008, 13.404954 (Café Eins, Unter den Linden 1)``."""
    lat, lon = _degrees(latitude), _degrees(longitude)
    if lat is None or lon is None:
        return None
    named = _joined(labels)
    return f"📍 Location: {lat}, {lon}" + (f" ({named})" if named else "")


def contact_line(name: object, phone: object) -> str | None:
    """``👤 Contact: Ann Lee, +49 30 1234567``."""
    said = _joined((name, phone))
    return f"👤 Contact: {said}" if said else None


def link_line(title: object, url: object) -> str | None:
    """``🔗 Our order page https://shop.example/o/42``."""
    link = _text(url)
    if link is None:
        return None
    named = _text(title)
    return f"🔗 {named} {link}" if named else f"🔗 {link}"


def _degrees(value: object) -> float | None:
    """A coordinate as a number (platforms send numbers, WeChat strings); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return round(number, 6) if math.isfinite(number) else None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip()[:MAX_PART] or None


def _joined(values: tuple[object, ...]) -> str:
    return ", ".join(text for value in values if (text := _text(value)))
