"""The server secret and what is derived from it: signed page tokens, recommendation ids, and
per-shop keys for plugin pseudonyms.

Every process of one cluster must share the secret (`KOSMOS_SECRET`): a page token made by one
replica is then honoured by another, and feedback can check a recommendation id that the
recommendation service issued. Without it each process draws a random secret at start, which
is fine for the embedded mode but makes tokens and ids die with the process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import secrets
import threading
import time

_lock = threading.Lock()
_secret = secrets.token_bytes(32)
_generated = True
_derived: dict[tuple[bytes, str], bytes] = {}

# Nonces of recommendation ids need to be unique, not secret (the id is signed): a PRNG seeded
# from the OS, drawn again in every forked child, costs no system call per id.
_nonces = random.Random(secrets.randbits(128))
os.register_at_fork(after_in_child=lambda: _nonces.seed(secrets.randbits(128)))

RECOMMENDATION_ID_TTL_SECONDS = 7 * 24 * 3600
"""How long feedback may cite a recommendation id after it was served."""


def configure(secret: str) -> None:
    """Sets the process secret (the value of `KOSMOS_SECRET`; at least 16 characters)."""
    global _secret, _generated
    if len(secret) < 16:
        raise ValueError("must be at least 16 characters")
    with _lock:
        _secret = hashlib.sha256(secret.encode()).digest()
        _generated = False


def generated() -> bool:
    """True while the secret is the random one drawn at start (no `KOSMOS_SECRET`)."""
    return _generated


def derive(purpose: str) -> bytes:
    """A key for one purpose, so that no two uses of the secret can be confused."""
    secret = _secret
    key = _derived.get((secret, purpose))
    if key is None:
        key = hmac.new(secret, b"kosmos-derive\x00" + purpose.encode(), hashlib.sha256).digest()
        _derived[(secret, purpose)] = key
    return key


def mac(purpose: str, *parts: str) -> str:
    """A 128-bit MAC, hex, over ``parts`` (NUL-joined) under the key for ``purpose``."""
    message = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(derive(purpose), message, hashlib.sha256).hexdigest()[:32]


def verify(expected: str, got: str) -> bool:
    return hmac.compare_digest(expected.encode(), got.encode("utf-8", "surrogatepass"))


def new_recommendation_id(shop_id: str, now: float | None = None) -> str:
    """An id for one served list: random, stamped, and signed for ``shop_id``."""
    nonce = format(_nonces.getrandbits(64), "016x")
    stamp = format(int(now if now is not None else time.time()), "x")
    return f"{nonce}.{stamp}.{mac('recommendation', shop_id, nonce, stamp)}"


def recommendation_id_age(value: str, now: float | None = None) -> float:
    """Seconds since the id was stamped; a malformed id is infinitely old. Checks no signature:
    `recommendation_id_valid` does."""
    parts = value.split(".")
    if len(parts) != 3 or len(value) > 80:
        return float("inf")
    try:
        issued = int(parts[1], 16)
    except ValueError:
        return float("inf")
    return (now if now is not None else time.time()) - issued


def recommendation_id_valid(shop_id: str, value: str, now: float | None = None) -> bool:
    """Whether ``value`` is an id this cluster served to ``shop_id`` within the TTL."""
    age = recommendation_id_age(value, now)
    if age == float("inf"):
        return False
    nonce, stamp, signature = value.split(".")
    if not verify(mac("recommendation", shop_id, nonce, stamp), signature):
        return False
    return -300 <= age <= RECOMMENDATION_ID_TTL_SECONDS


def pseudonym(shop_id: str, plugin: str, customer_id: str) -> str:
    """The id ``plugin`` sees for ``customer_id``: stable per shop and plugin, not reversible."""
    return "p-" + mac("pseudonym", shop_id, plugin, customer_id)
