"""The gRPC channel: http:// (plaintext) or https:// (TLS with an optional CA bundle and client certificate)."""

from __future__ import annotations

from typing import Any

import grpc

APPEND_METHOD = "/auditum.v1.IngestService/Append"


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as handle:
        return handle.read()


def target_of(url: str) -> tuple[str, bool]:
    """(host:port, use TLS) from `http://h:p`, `https://h:p` or a bare `h:p` (plaintext)."""
    if url.startswith("https://"):
        return url[len("https://"):].rstrip("/"), True
    if url.startswith("http://"):
        return url[len("http://"):].rstrip("/"), False
    if "://" in url:
        raise ValueError(f"url: {url!r} must start with http:// or https://")
    return url, False


def channel_options(reconnect_max_seconds: float) -> list[tuple[str, Any]]:
    # The channel's own reconnect backoff defaults to 120 s at most: after an outage the SDK's
    # retries would keep failing fast for that long. Keep it in step with the SDK's backoff.
    # grpc.min_reconnect_backoff_ms is the connect timeout, which also spaces attempts after a
    # refused connection: its 20 s default delays recovery by several seconds, and 100 ms aborts
    # slow TLS handshakes over and over. 2 s does neither.
    most = int(max(0.1, reconnect_max_seconds) * 1000)
    return [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 2000),
        ("grpc.max_reconnect_backoff_ms", most),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]


def credentials(tls_ca: str | None, tls_client_cert: str | None, tls_client_key: str | None) -> grpc.ChannelCredentials:
    if (tls_client_cert is None) != (tls_client_key is None):
        raise ValueError("tls_client_cert and tls_client_key: give both or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca), private_key=_read(tls_client_key), certificate_chain=_read(tls_client_cert))


def make_channel(url: str, tls_ca: str | None, tls_client_cert: str | None, tls_client_key: str | None,
                 options: list[tuple[str, Any]], aio: bool = False) -> Any:
    target, tls = target_of(url)
    module: Any = grpc.aio if aio else grpc
    if tls:
        return module.secure_channel(target, credentials(tls_ca, tls_client_cert, tls_client_key), options=options)
    if tls_ca or tls_client_cert:
        raise ValueError(f"url: TLS options were given but {url!r} is not https://")
    return module.insecure_channel(target, options=options)


def call_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def request_header(size: int) -> bytes:
    """Tag of AppendRequest.events (field 1, length-delimited) and the length varint of an event."""
    if size < 0x80:
        return bytes((0x0A, size))
    if size < 0x4000:
        return bytes((0x0A, size & 0x7F | 0x80, size >> 7))
    header = bytearray(b"\x0a")
    while size > 0x7F:
        header.append(size & 0x7F | 0x80)
        size >>= 7
    header.append(size)
    return bytes(header)


def request_frame(event: bytes) -> bytes:
    """An encoded event as one entry of an encoded AppendRequest: joined frames are the request."""
    size = len(event)
    if 0x80 <= size < 0x4000:  # most events: without request_header()'s call
        return bytes((0x0A, size & 0x7F | 0x80, size >> 7)) + event
    return request_header(size) + event
