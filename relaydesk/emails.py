"""The one form of an e-mail address that identifies an account (docs/security.md, 3).

Account lookup, the login lockout and the stored address of every agent use this form, so no
spelling of an address reaches the account while escaping its lockout: a leading space, a
tab, a no-break or ideographic space, another case, fullwidth letters, a zero-width space.
"""

import unicodedata

# Besides str.isspace(): format characters (zero-width space and joiners, byte order mark)
# and every separator category; none belongs in an address and all are invisible.
INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp"})


def normalize_email(email: str) -> str:
    """NFKC, casefold, and every Unicode whitespace or invisible character removed."""
    folded = unicodedata.normalize("NFKC", email).casefold()
    return "".join(
        ch
        for ch in folded
        if not ch.isspace() and unicodedata.category(ch) not in INVISIBLE_CATEGORIES
    )
