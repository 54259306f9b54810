"""One comparison for every secret or signature a platform's request carries."""

import hmac


def matches(expected: str, given: str | None) -> bool:
    """Constant-time ``expected == given``, as bytes; False for a missing or empty value.

    ``hmac.compare_digest`` raises TypeError on a ``str`` with non-ASCII characters, which a
    client can put in any header or query parameter: comparing bytes turns that into a plain
    mismatch (403) instead of a 500.
    """
    if not expected or given is None:
        return False
    try:
        given_bytes = given.encode()
    except UnicodeEncodeError:  # a lone surrogate: not something we ever sent
        return False
    return hmac.compare_digest(expected.encode(), given_bytes)
