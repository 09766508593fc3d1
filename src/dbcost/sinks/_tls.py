"""TLS for the server sinks: a verifying client context built from PEM files, and the one-line cause of a
failed handshake.

:func:`client_context` builds the :class:`ssl.SSLContext` a sink's client library is given: the CA bundle
``cafile`` (else the system's trust store), an optional client certificate ``certfile`` (+ ``keyfile`` when
the key is not in the same PEM) for mutual TLS, and host-name checking (on unless turned off; the chain is
verified either way). An unreadable file, a malformed PEM, a key that does not match its certificate or an
encrypted key (there is no way to give its passphrase) is a :class:`TlsFileError` whose text is one line.

:func:`describe` turns an :class:`ssl.SSLError` into one line naming the cause: the broker's certificate
expired (or is not yet valid), is signed by a CA the context does not trust, or does not name the host
connected to; the server wants a client certificate or refused ours; the port does not speak TLS.

:func:`probe` finds that cause when the client library only says "connection failed" (aiokafka's bootstrap
logs the handshake error and raises a generic one): one connection to ``host:port`` with the same context,
the TLS handshake, a short wait for an alert, one request written and the first bytes of its answer read.
Reading matters: under TLS 1.3 a server refuses a client certificate *after* the client's handshake
completed, and the alert only shows on a read (before the request: a reset to it can discard the alert).
Returns None when the connection works or fails for a reason TLS has nothing to do with (connection
refused, a reset before the handshake).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

__all__ = ["TlsFileError", "client_context", "describe", "probe"]

#: OpenSSL X509_V_ERR_* codes (``SSLCertVerificationError.verify_code``), grouped by what they mean to a user
_EXPIRED = frozenset({10})  # CERT_HAS_EXPIRED
_NOT_YET_VALID = frozenset({9})  # CERT_NOT_YET_VALID
#: UNABLE_TO_GET_ISSUER_CERT, DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN,
#: UNABLE_TO_GET_ISSUER_CERT_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE
_UNKNOWN_CA = frozenset({2, 18, 19, 20, 21})
_NAME_MISMATCH = frozenset({62, 64})  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH

#: ``SSLError.reason`` of alerts a server sends about the client's certificate
_CLIENT_CERT_REQUIRED = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE"})
_CLIENT_CERT_REFUSED = frozenset({
    "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "TLSV1_ALERT_ACCESS_DENIED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED", "TLSV1_ALERT_DECRYPT_ERROR",
})
#: what a TLS client reads from a port that does not speak TLS
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
                      "UNEXPECTED_EOF_WHILE_READING", "UNKNOWN_PROTOCOL"})


#: how long the probe listens for an alert after the handshake before it sends its request
_ALERT_WAIT_S = 0.5


class TlsFileError(ValueError):
    """A certificate or key file that cannot be used; the text is one line naming the file."""


class _EncryptedKey(Exception):
    """Raised by the passphrase callback: nothing can answer it (no terminal prompt, ever)."""


def _refuse_passphrase() -> str:
    raise _EncryptedKey


def client_context(*, cafile: Path | None = None, certfile: Path | None = None, keyfile: Path | None = None,
                   check_hostname: bool = True) -> ssl.SSLContext:
    """A client context that verifies the server against ``cafile`` (else the system CAs), presents
    ``certfile``/``keyfile`` when given and checks the host name unless ``check_hostname`` is false."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None)
    except (OSError, ValueError) as exc:
        raise TlsFileError(f"cafile={cafile}: {_reason(exc)}") from None
    if certfile is not None:
        try:
            context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None, password=_refuse_passphrase)
        except _EncryptedKey:
            raise TlsFileError(f"keyfile={keyfile or certfile}: the key is encrypted; give an unencrypted key "
                               "(readable by this user only)") from None
        except (OSError, ValueError) as exc:
            files = f"certfile={certfile}" + (f", keyfile={keyfile}" if keyfile else "")
            raise TlsFileError(f"{files}: {_reason(exc)}") from None
    # after the CAs: check_hostname=False leaves verify_mode at CERT_REQUIRED, the chain is still verified
    context.check_hostname = check_hostname
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return {"NO_CERTIFICATE_OR_CRL_FOUND": "no PEM certificate in it",
                "KEY_VALUES_MISMATCH": "the key does not belong to the certificate",
                "PEM_LIB": "not a PEM certificate/key"}.get(exc.reason, exc.reason.lower().replace("_", " "))
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).replace("\n", " ")


def describe(exc: BaseException, host: str, port: int, *, client_cert: bool = False) -> str | None:
    """One line naming why the TLS connection to ``host:port`` failed, or None when ``exc`` is no TLS error."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        detail = (exc.verify_message or exc.reason or "certificate verify failed").rstrip(".")
        if code in _EXPIRED:
            return f"TLS: the certificate of {where} has expired ({detail})"
        if code in _NOT_YET_VALID:
            return f"TLS: the certificate of {where} is not valid yet ({detail}); check the clocks"
        if code in _UNKNOWN_CA:
            return (f"TLS: the certificate of {where} is signed by an unknown CA ({detail}); "
                    "set ?cafile= to the CA that signed it")
        if code in _NAME_MISMATCH:
            return (f"TLS: the certificate of {where} does not match the host name {host!r} ({detail}); "
                    "connect by a name the certificate holds, or set ?check_hostname=false")
        return f"TLS: the certificate of {where} was refused ({detail})"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason in _CLIENT_CERT_REQUIRED or (reason == "SSLV3_ALERT_HANDSHAKE_FAILURE" and not client_cert):
            if client_cert:
                return f"TLS: {where} refused the client certificate ({reason.lower()})"
            return f"TLS: {where} requires a client certificate; set ?certfile= (and ?keyfile=)"
        if reason in _CLIENT_CERT_REFUSED:
            return f"TLS: {where} refused the client certificate ({reason.lower()})"
        if reason in _NOT_TLS or isinstance(exc, ssl.SSLEOFError):
            return f"TLS: {where} does not answer as a TLS server ({(reason or 'EOF').lower()}); is it a TLS listener?"
        text = (reason.lower() or str(exc)).replace("\n", " ")
        return f"TLS: the handshake with {where} failed ({text})"
    return None


async def probe(host: str, port: int, context: ssl.SSLContext, *, request: bytes, timeout_s: float,
                client_cert: bool = False) -> str | None:
    """Connect to ``host:port`` over TLS, write ``request`` and read the first bytes of the answer; the
    one-line cause (:func:`describe`) when TLS is what fails, else None. ``client_cert``: the context
    presents one (the wording of a refusal depends on it)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host,
                                                           ssl_handshake_timeout=timeout_s)
            # Under TLS 1.3 a refusal of the client's certificate arrives right after the handshake: read it
            # first. Writing first races it: the server's reset to our request can discard the alert.
            try:
                async with asyncio.timeout(min(_ALERT_WAIT_S, timeout_s / 2)):
                    if not await reader.read(1):
                        return None  # closed without a word: not a TLS matter
            except TimeoutError:
                pass  # the server waits for a request, as it should
            writer.write(request)
            await writer.drain()
            await reader.readexactly(4)
    except TimeoutError:
        return (f"TLS: {host}:{port} did not complete a TLS exchange within {timeout_s:g}s; "
                "is it a TLS listener?")
    except ssl.SSLError as exc:
        return describe(exc, host, port, client_cert=client_cert)
    except (OSError, asyncio.IncompleteReadError):
        return None  # refused, reset, closed: not a TLS matter
    finally:
        if writer is not None:
            await _close(writer, timeout_s)
    return None


async def _close(writer: asyncio.StreamWriter, timeout_s: float) -> None:
    """Close and wait for it (TLS sends close_notify first): a transport left closing outlives its loop."""
    writer.close()
    try:
        async with asyncio.timeout(min(timeout_s, 1.0)):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()

