"""A SASL gate for the tests: Kafka's SASL PLAIN and SCRAM-SHA-256/512 authentication, done here, in front of
a plaintext Tansu broker (whose own SASL cannot accept anyone: its in-memory storage keeps no SCRAM
credentials and its build refuses PLAIN).

Per client connection: ``ApiVersions`` is relayed to the broker; ``SaslHandshake`` and ``SaslAuthenticate``
are answered here, checking the user's password (PLAIN: the RFC 4616 message; SCRAM: the RFC 5802/7677
exchange, client proof verified against the stored key, server signature returned); any other request
before a successful authentication closes the connection, as a broker does. A failed authentication gets
``SASL_AUTHENTICATION_FAILED`` (58) with Apache Kafka's own message, then the connection is closed. After
success, bytes are relayed both ways untouched.

What this is and is not: a real SASL exchange with aiokafka's client code over real TLS (stunnel), checked
by an implementation of the RFCs written for these tests; not Apache Kafka's SASL server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import struct
import threading
from collections.abc import Mapping
from typing import Self

from tests.conftest import free_port

__all__ = ["SaslGate"]

_HANDSHAKE, _AUTHENTICATE, _API_VERSIONS = 17, 36, 18
_UNSUPPORTED_MECHANISM, _AUTH_FAILED, _ILLEGAL_STATE = 33, 58, 34
_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}
MECHANISMS = ("PLAIN", *_HASHES)
_ITERATIONS = 4096


def _string(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _bytes(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


class _Exchange:
    """One connection's SASL state: the chosen mechanism, the SCRAM messages so far, the outcome."""

    def __init__(self, users: Mapping[str, str], log: list[tuple[str, str, bool]]) -> None:
        self.users = users
        self.log = log
        self.mechanism: str | None = None
        self.user = ""
        self.authenticated = False
        self.failed = False
        # SCRAM: the client-first message (without its GS2 header), the server-first, the salt, the nonce
        self._client_first_bare: str | None = None
        self._server_first = ""
        self._salt = b""
        self._nonce = ""

    def handshake(self, mechanism: str) -> bytes:
        if mechanism not in MECHANISMS:
            return struct.pack(">hi", _UNSUPPORTED_MECHANISM, len(MECHANISMS)) + b"".join(map(_string, MECHANISMS))
        self.mechanism = mechanism
        return struct.pack(">hi", 0, len(MECHANISMS)) + b"".join(map(_string, MECHANISMS))

    def authenticate(self, payload: bytes) -> tuple[int, str | None, bytes]:
        """(error code, error message, server bytes) for one SaslAuthenticate step."""
        if self.mechanism == "PLAIN":
            _, user, password = payload.decode().split("\0")
            return self._finish(user, hmac.compare_digest(self.users.get(user, "\0"), password),
                                "Authentication failed: Invalid username or password", b"")
        if self.mechanism in _HASHES:
            return self._scram_step(payload.decode())
        self.failed = True
        return _ILLEGAL_STATE, "SaslAuthenticate before SaslHandshake", b""

    def _finish(self, user: str, ok: bool, failure: str, answer: bytes) -> tuple[int, str | None, bytes]:
        assert self.mechanism is not None
        self.user = user
        self.log.append((self.mechanism, user, ok))
        if ok:
            self.authenticated = True
            return 0, None, answer
        self.failed = True
        return _AUTH_FAILED, failure, b""

    def _scram_step(self, message: str) -> tuple[int, str | None, bytes]:
        assert self.mechanism is not None
        digest = _HASHES[self.mechanism]
        if self._client_first_bare is None:  # client-first: n,,n=USER,r=NONCE
            bare = message.split(",", 2)[2]
            attrs = dict(part.split("=", 1) for part in bare.split(","))
            self.user = attrs["n"].replace("=2C", ",").replace("=3D", "=")
            self._salt = hashlib.sha256(f"salt|{self.user}".encode()).digest()[:16]
            self._nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
            self._server_first = f"r={self._nonce},s={base64.b64encode(self._salt).decode()},i={_ITERATIONS}"
            self._client_first_bare = bare
            return 0, None, self._server_first.encode()
        # client-final: c=biws,r=NONCE,p=PROOF
        without_proof, _, proof_b64 = message.rpartition(",p=")
        user = self.user
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        salted = hashlib.pbkdf2_hmac(digest().name, self.users.get(user, os.urandom(8).hex()).encode(), self._salt,
                                     _ITERATIONS)
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        stored_key = digest(client_key).digest()
        signature = hmac.new(stored_key, auth_message, digest).digest()
        proof = base64.b64decode(proof_b64)
        recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        ok = (user in self.users and f",r={self._nonce}" in without_proof
              and hmac.compare_digest(digest(recovered).digest(), stored_key))
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        server_signature = base64.b64encode(hmac.new(server_key, auth_message, digest).digest())
        failure = ("Authentication failed during authentication due to invalid credentials with SASL mechanism "
                   f"{self.mechanism}")
        return self._finish(user, ok, failure, b"v=" + server_signature)


class SaslGate:
    """The gate on 127.0.0.1:``port`` for the broker on 127.0.0.1:``upstream`` (see the module doc), served
    by its own event loop in a thread so that it outlives any one test's loop. ``attempts`` records
    (mechanism, user, accepted) for every authentication."""

    def __init__(self, upstream: int, users: Mapping[str, str], port: int | None = None) -> None:
        self.upstream = upstream
        self.users = dict(users)
        self.port = port or free_port()
        self.attempts: list[tuple[str, str, bool]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def start(self) -> None:
        ready = threading.Event()

        async def main() -> None:
            self._stopped = asyncio.Event()
            server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
            ready.set()
            async with server:
                await self._stopped.wait()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="sasl-gate", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the SASL gate did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        exchange = _Exchange(self.users, self.attempts)
        try:
            upstream = await asyncio.open_connection("127.0.0.1", self.upstream)
            while not exchange.authenticated:
                frame = await _read_frame(reader)
                api_key, version, correlation = struct.unpack_from(">hhi", frame)
                (client_len,) = struct.unpack_from(">h", frame, 8)
                body = frame[10 + max(client_len, 0):]
                if api_key == _API_VERSIONS:
                    upstream[1].write(struct.pack(">i", len(frame)) + frame)
                    await upstream[1].drain()
                    answer = await _read_frame(upstream[0])
                    writer.write(struct.pack(">i", len(answer)) + answer)
                elif api_key == _HANDSHAKE:
                    (length,) = struct.unpack_from(">h", body)
                    reply = exchange.handshake(body[2:2 + length].decode())
                    writer.write(_frame(correlation, reply))
                elif api_key == _AUTHENTICATE:
                    (length,) = struct.unpack_from(">i", body)
                    code, message, data = exchange.authenticate(body[4:4 + length])
                    reply = struct.pack(">h", code) + _string(message) + _bytes(data)
                    if version >= 1:
                        reply += struct.pack(">q", 0)  # session_lifetime_ms: no re-authentication asked
                    writer.write(_frame(correlation, reply))
                else:
                    return  # not authenticated: a broker closes the connection
                await writer.drain()
                if exchange.failed:
                    return
            await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.close()


def _frame(correlation: int, body: bytes) -> bytes:
    payload = struct.pack(">i", correlation) + body
    return struct.pack(">i", len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.close()
