"""Sealing at rest with public keys: libsodium sealed boxes (X25519 + XSalsa20-Poly1305, PyNaCl).

Two key pairs, one for each direction data travels, so that neither process can open everything:
  SEALING_PUBLIC_KEY  (web)     seals what the web takes in for the worker: bank credentials and the
  SEALING_PRIVATE_KEYS (worker) MFA token; only the worker can open them
  RESULT_PUBLIC_KEY   (worker)  seals Belvo's result bodies for the web to show to API keys; the
  RESULT_PRIVATE_KEYS (web)     worker cannot open a stored result, the web cannot open a token
A sealed value is an envelope: one version byte (0x01), the 8-byte id of the public key it was sealed
to (the first bytes of its SHA-256), then the sealed box. Several private keys may be configured, so
rotation is: add the new private key to the opener's list, switch the sealer to the new public key,
and drop the old private key once nothing sealed to it is stored any more. A plaintext value (a
printable-ASCII token, JSON) never starts with 0x01, so values stored before sealing was configured
still read.

    python -m mfa.sealing      prints a fresh pair for each direction, as lines of an env file
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

PUBLIC_PREFIX = "mfa-pk-"
PRIVATE_PREFIX = "mfa-sk-"
VERSION = b"\x01"
KEY_ID_BYTES = 8


class MalformedKey(ValueError):
    """A key's text is not one of ours (the message never repeats the text)."""


class Unsealable(Exception):
    """A sealed value cannot be opened: no configured key matches it, or it was tampered with."""


def _decode(text: str, prefix: str, kind: str) -> bytes:
    shape = f"a {kind} key is {prefix!r} and 43 url-safe base64 characters"
    if not text.startswith(prefix):
        swapped = text.startswith(PRIVATE_PREFIX if prefix == PUBLIC_PREFIX else PUBLIC_PREFIX)
        raise MalformedKey(shape + (": this one is the other half of a pair" if swapped else ""))
    try:
        raw = base64.urlsafe_b64decode(text[len(prefix) :] + "=")
    except (binascii.Error, ValueError):
        raise MalformedKey(shape) from None
    if len(raw) != 32 or len(text) != len(prefix) + 43:
        raise MalformedKey(shape)
    return raw


def _encode(raw: bytes, prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_public_key(text: str) -> PublicKey:
    """A public key from its text (`mfa-pk-…`); MalformedKey otherwise."""
    return PublicKey(_decode(text.strip(), PUBLIC_PREFIX, "public"))


def parse_private_keys(text: str) -> tuple[PrivateKey, ...]:
    """Comma-separated private keys (`mfa-sk-…`), newest first; MalformedKey on any that is not one."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(PrivateKey(_decode(part, PRIVATE_PREFIX, "private")) for part in parts)


def key_id(public: PublicKey) -> bytes:
    """The id an envelope names its key by: not secret, only a way to pick the right private key."""
    return hashlib.sha256(bytes(public)).digest()[:KEY_ID_BYTES]


def is_sealed(stored: bytes) -> bool:
    """True for an envelope this module made (plaintext tokens and JSON never start with 0x01)."""
    return stored[:1] == VERSION


def new_key_pair() -> tuple[str, str]:
    """A fresh (private, public) pair as the texts the settings take."""
    private = PrivateKey.generate()
    return _encode(bytes(private), PRIVATE_PREFIX), _encode(bytes(private.public_key), PUBLIC_PREFIX)


def public_key_of(private_text: str) -> str:
    """The public key text that goes with a private key text."""
    [private] = parse_private_keys(private_text)
    return _encode(bytes(private.public_key), PUBLIC_PREFIX)


@dataclass(frozen=True, repr=False)
class Sealer:
    """Seals to one public key; holds nothing that opens what it seals."""

    public_key: PublicKey

    @classmethod
    def from_text(cls, text: str) -> Sealer:
        """The sealer of a configured public key."""
        return cls(parse_public_key(text))

    def seal(self, plaintext: bytes) -> bytes:
        """An envelope only a holder of the matching private key can open."""
        return VERSION + key_id(self.public_key) + SealedBox(self.public_key).encrypt(plaintext)

    def __repr__(self) -> str:
        return f"Sealer(key_id={key_id(self.public_key).hex()})"


class Opener:
    """Opens envelopes sealed to any of its private keys (several during a rotation)."""

    def __init__(self, keys: Iterable[PrivateKey]) -> None:
        self._boxes = {key_id(key.public_key): SealedBox(key) for key in keys}

    @classmethod
    def from_text(cls, text: str) -> Opener:
        """The opener of configured private keys."""
        return cls(parse_private_keys(text))

    def open(self, sealed: bytes) -> bytes:
        """The plaintext of an envelope; Unsealable if no key of ours matches or it was altered."""
        if not is_sealed(sealed):
            raise Unsealable("not a sealed value")
        kid = sealed[len(VERSION) : len(VERSION) + KEY_ID_BYTES]
        box = self._boxes.get(kid)
        if box is None:
            raise Unsealable(f"sealed to key id {kid.hex()}, which is not configured")
        try:
            return box.decrypt(sealed[len(VERSION) + KEY_ID_BYTES :])
        except CryptoError:
            raise Unsealable(f"sealed to key id {kid.hex()}, but it does not open (altered?)") from None

    def __repr__(self) -> str:
        return f"Opener(key_ids={[k.hex() for k in self._boxes]})"


@dataclass(frozen=True)
class AtRest:
    """How one process stores and reads one kind of sensitive value.

    With a sealer, values are stored sealed; without one (no keys configured), as given. Reading opens
    an envelope with the opener and takes a plaintext value as it is.
    """

    sealer: Sealer | None = None
    opener: Opener | None = None

    def store(self, plaintext: bytes) -> bytes:
        """The bytes to put in Redis."""
        return self.sealer.seal(plaintext) if self.sealer is not None else plaintext

    def read(self, stored: bytes) -> bytes:
        """The plaintext of what store() produced here or in the other process; Unsealable if it cannot."""
        if not is_sealed(stored):
            return stored
        if self.opener is None:
            raise Unsealable("the value is sealed and this process has no private key to open it")
        return self.opener.open(stored)

    @property
    def seals(self) -> bool:
        """True when values are stored sealed."""
        return self.sealer is not None


def main() -> int:
    """Print a fresh key pair for each direction as env-file lines, marked with the process each goes to."""
    sealing_private, sealing_public = new_key_pair()
    result_private, result_public = new_key_pair()
    print("# web: seals bank credentials and MFA tokens; opens results")
    print(f"SEALING_PUBLIC_KEY={sealing_public}")
    print(f"RESULT_PRIVATE_KEYS={result_private}")
    print("# worker: opens bank credentials and MFA tokens; seals results")
    print(f"SEALING_PRIVATE_KEYS={sealing_private}")
    print(f"RESULT_PUBLIC_KEY={result_public}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
