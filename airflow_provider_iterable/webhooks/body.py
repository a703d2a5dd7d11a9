"""Read a delivery's body off the request, with bounded memory, and hand it to the parser.

Everything here turns bad input into :class:`WebhookRejectedError` (a 4xx with a short, fixed
message that never echoes the input). The body is read from the ASGI channel chunk by chunk and
reading stops as soon as it passes the limit, whatever ``Content-Length`` claims or when there
is none (chunked), so an oversize body costs at most one chunk beyond the limit in memory.
Parsing is :mod:`~airflow_provider_iterable.webhooks.parse`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from airflow_provider_iterable.exceptions import IterableError, WebhookRejectedError
from airflow_provider_iterable.webhooks.parse import parse_form, parse_json_object, parse_query

#: Bodies larger than this are parsed in a worker thread so the event loop stays responsive.
PARSE_IN_THREAD_BYTES = 64 * 1024

JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientGone(IterableError):
    """The sender disconnected before the body was complete."""


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Split a ``Content-Type`` header into its lower-case media type and parameters.

    :param content_type: The header value, or ``None``.
    """
    if not content_type:
        return "", {}
    main, *params = content_type.split(";")
    parsed = {}
    for param in params:
        key, _, value = param.partition("=")
        parsed[key.strip().lower()] = value.strip().strip('"').lower()
    return main.strip().lower(), parsed


def body_format(content_type: str | None, *, allow_form: bool) -> str:
    """Return ``"json"`` or ``"form"`` for a content type, or raise 415.

    :param content_type: The request's ``Content-Type`` header.
    :param allow_form: Whether ``application/x-www-form-urlencoded`` is accepted.
    :raises WebhookRejectedError: 415 for any other type, or a charset other than UTF-8.
    """
    mtype, params = media_type(content_type)
    charset = params.get("charset")
    if charset is not None and charset not in ("utf-8", "utf8"):
        raise WebhookRejectedError(415, "unsupported charset: send UTF-8")
    if mtype in JSON_TYPES or (mtype.startswith("application/") and mtype.endswith("+json")):
        return "json"
    if allow_form and mtype == FORM_TYPE:
        return "form"
    wanted = "application/json or application/x-www-form-urlencoded" if allow_form else "application/json"
    raise WebhookRejectedError(415, f"unsupported content type: send {wanted}")


def check_content_encoding(values: list[str]) -> None:
    """Refuse a body sent compressed or otherwise encoded: only ``identity`` is read.

    Iterable sends bodies as they are; a gzip body read as text would be stored as garbage or
    refused as malformed, which tells the sender nothing. 415 names what is wrong.

    :param values: Every ``Content-Encoding`` header of the request (each may list several).
    :raises WebhookRejectedError: 415 for any encoding other than ``identity``.
    """
    for value in values:
        for coding in value.split(","):
            if coding.strip().lower() not in ("", "identity"):
                raise WebhookRejectedError(415, "unsupported content encoding: send the body unencoded")


async def read_body(receive: Receive, *, limit: int, declared_length: int | None) -> bytes:
    """Read the request body from the ASGI channel, refusing it once it passes ``limit`` bytes.

    :param receive: The ASGI ``receive`` callable.
    :param limit: The largest body accepted, in bytes.
    :param declared_length: The ``Content-Length`` header, if any (checked first, but never
        trusted: the bytes are counted as they come).
    :raises WebhookRejectedError: 413 when the body is larger than ``limit``.
    :raises ClientGone: When the sender disconnects first.
    """
    if declared_length is not None and declared_length > limit:
        raise WebhookRejectedError(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            raise ClientGone()
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                # Stop here: the rest is never read (the server drops the connection).
                raise WebhookRejectedError(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def read_payload(request: Request, kind: str, *, limit: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return a delivery's payload and parsed query string.

    A body-less journey ``GET`` or ``DELETE`` carries its data in the query string, which is
    then the payload too. Otherwise the content type and encoding (415), the size (413) and the
    body (400) are checked in that order.

    :param request: The delivery, its secret already checked.
    :param kind: ``"system"`` (JSON only) or ``"journey"`` (JSON or form-encoded).
    :param limit: The largest body accepted, in bytes.
    :raises WebhookRejectedError: For a body or query string that is refused.
    :raises ClientGone: When the sender disconnects before the body is complete.
    """
    headers = request.headers
    length_header = headers.get("content-length")
    chunked = "transfer-encoding" in headers
    if (
        kind == "journey"
        and request.method in ("GET", "DELETE")
        and not chunked
        and length_header in (None, "0")
    ):
        query = parse_query(request.scope.get("query_string", b""))
        return dict(query), query
    fmt = body_format(headers.get("content-type"), allow_form=kind == "journey")
    check_content_encoding(headers.getlist("content-encoding"))
    declared: int | None = None
    if length_header is not None:
        try:
            declared = int(length_header)
        except ValueError:
            raise WebhookRejectedError(400, "invalid Content-Length") from None
    body = await read_body(request.receive, limit=limit, declared_length=declared)
    parse = parse_json_object if fmt == "json" else parse_form
    if len(body) > PARSE_IN_THREAD_BYTES:
        payload = await asyncio.to_thread(parse, body)
    else:
        payload = parse(body)
    return payload, parse_query(request.scope.get("query_string", b""))
