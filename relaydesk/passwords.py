"""Passwords: the rule new ones must pass, and hashing (argon2 through passlib, from libpass,
with constant-time misses)."""

import gzip
import re
import secrets
import unicodedata
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from passlib.context import CryptContext  # type: ignore[import-untyped]

HASHER = CryptContext(schemes=["argon2"], deprecated="auto")


def hash_password(password: str) -> str:
    return str(HASHER.hash(password))


def verify_password(password: str, password_hash: str | None) -> bool:
    if not password_hash:
        HASHER.dummy_verify()  # same time whether or not the account exists
        return False
    try:
        return bool(HASHER.verify(password, password_hash))
    except (ValueError, TypeError):
        return False


# NIST SP 800-63B, 5.1.1.2 (memorized secrets): a minimum length, a generous maximum, a check
# against known passwords, and no composition rules (no "one digit, one symbol").
MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_DISTINCT = 4  # "aaaaaaaaaaaa", "abababababab": repetitive (63B names them)
COMMON_PASSWORDS = Path(__file__).with_name("data") / "common-passwords.txt.gz"
SERVICE_WORDS = frozenset({"relaydesk"})
# "Password2024!", "dragon123456": a listed password with digits or punctuation added is no better
ADDED = re.compile(r"[\d\W_]+$")


def normalized(password: str) -> str:
    """The form passwords are compared in (not hashed in: existing hashes stay valid)."""
    return unicodedata.normalize("NFKC", password).casefold()


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list (about 40,000; relaydesk/data/COMMON-PASSWORDS-LICENSES.md)."""
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.rstrip("\n") for line in lines if line.strip())


def password_problem(password: str, *, context: Iterable[str] = ()) -> str | None:
    """Why ``password`` may not be chosen as a new password, or None when it may.

    One rule for the API (agents, sign-up) and the CLI. ``context``: words of this account
    (its e-mail address, tenant id, name) that must not be the password. Existing passwords
    are not checked again at login.
    """
    # NFKC may shorten (composing accents) or lengthen (ligatures) a string; far over the limit
    # needs no normalising to be refused
    length = len(password) if len(password) > 4 * MAX_LENGTH else len(normalized(password))
    if length < MIN_LENGTH:
        return f"the password is too short: at least {MIN_LENGTH} characters"
    if length > MAX_LENGTH:
        return f"the password is too long: at most {MAX_LENGTH} characters"
    folded = normalized(password)
    if len(set(folded)) < MIN_DISTINCT:
        return "the password repeats too few characters: choose a longer mix"
    known = common_passwords()
    stem = ADDED.sub("", folded)
    if folded in known or (stem != folded and stem in known):
        return "the password is on the list of common or breached passwords: choose another"
    words = {normalized(w) for w in context if w} | SERVICE_WORDS
    words |= {w.split("@")[0] for w in words if "@" in w}
    if folded in words or stem in words:
        return "the password is the account's name, e-mail or the service's name: choose another"
    return None


def generate_password() -> str:
    """A random password that passes the rule (the demo owner's, for instance)."""
    while True:
        candidate = secrets.token_urlsafe(18)  # 24 characters, 144 random bits
        if password_problem(candidate) is None:
            return candidate
