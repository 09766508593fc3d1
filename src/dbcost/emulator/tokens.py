"""Page tokens: opaque, signed, bound to one request, and mortal.

Cost Explorer's ``NextPageToken`` is opaque and undocumented; what a client can observe is that a token
only works with the request it came from (``RequestChangedException`` otherwise) and that a bad or
expired one is an ``InvalidNextTokenException`` ("Try again without a pagination token"). This module
gives the emulator exactly those observable properties, so the client's restart-the-chain logic is
exercised for real:

* the token is ``base64url(mac16 || json)``, HMAC-SHA256 with a per-process random secret: any change
  to it, or a token from another emulator process, fails the MAC -> invalid;
* it carries a hash of the operation and the request body minus the token -> request changed;
* it carries its issue time (monotonic clock) -> expired after ``ttl_s``;
* it carries the data version and the emulator's ``today`` it was cut from -> a restatement or a new
  day in between makes it stale -> invalid, because its offset no longer points into the same data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from dbcost.emulator.errors import AwsError

__all__ = ["TokenSigner", "request_hash"]

_MAC_BYTES = 16
_INVALID = "Invalid pagination token. Try again without a pagination token."


def request_hash(operation: str, body: Mapping[str, Any]) -> str:
    """A digest of ``operation`` and ``body`` without its ``NextPageToken`` (key order ignored)."""
    rest = {k: v for k, v in body.items() if k != "NextPageToken"}
    blob = orjson.dumps({"op": operation, "body": rest}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:32]


class TokenSigner:
    """Issues and checks page tokens."""

    def __init__(
        self,
        *,
        ttl_s: float = 600.0,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._secret = secret if secret is not None else os.urandom(32)
        self._clock = clock

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, *, operation: str, rhash: str, offset: int, version: int, today: dt.date) -> str:
        payload = orjson.dumps(
            {
                "op": operation,
                "r": rhash,
                "o": offset,
                "v": version,
                "d": today.isoformat(),
                "t": int(self._clock() * 1000),
            }
        )
        return base64.urlsafe_b64encode(self._mac(payload) + payload).decode("ascii")

    def verify(self, token: object, *, rhash: str, version: int, today: dt.date) -> int:
        """The offset a valid token points at; ``InvalidNextToken`` / ``RequestChanged`` otherwise."""
        if not isinstance(token, str) or not token:
            raise AwsError("InvalidNextTokenException", _INVALID)
        try:
            blob = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise AwsError("InvalidNextTokenException", _INVALID) from None
        mac, payload = blob[:_MAC_BYTES], blob[_MAC_BYTES:]
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise AwsError("InvalidNextTokenException", _INVALID)
        data = orjson.loads(payload)
        if data["r"] != rhash:
            raise AwsError(
                "RequestChangedException",
                "The request changed since the pagination token was issued; resend the identical request "
                "with the token, or start again without one.",
            )
        age_ms = int(self._clock() * 1000) - int(data["t"])
        if age_ms > self.ttl_s * 1000:
            raise AwsError("InvalidNextTokenException", f"The pagination token has expired. {_INVALID}")
        if data["v"] != version or data["d"] != today.isoformat():
            raise AwsError(
                "InvalidNextTokenException",
                f"The data behind this pagination token has been updated. {_INVALID}",
            )
        offset = data["o"]
        if not isinstance(offset, int) or offset < 0:  # pragma: no cover - only we sign tokens
            raise AwsError("InvalidNextTokenException", _INVALID)
        return offset
