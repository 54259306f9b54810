"""Password hashing: argon2 through passlib (from libpass), with constant-time misses."""

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
