"""Parse webhook bodies and query strings strictly.

Everything here turns bad input into :class:`WebhookRejectedError` (400 with a short, fixed
message that never echoes the input): JSON that is invalid, not an object, nested too deeply or
holding strings no backend can store; forms and query strings that are not valid UTF-8.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec

from airflow_provider_iterable.exceptions import WebhookRejectedError

#: Deepest nesting of objects and arrays accepted in a JSON body. Iterable's bodies are a few
#: levels deep; a limit keeps every later walk cheap (the decoder, recursive in C, stops at
#: Python's recursion limit by itself).
MAX_JSON_DEPTH = 64

#: Most fields accepted in a form body or query string.
MAX_FORM_FIELDS = 10_000

#: Decodes JSON strictly in one pass over the bytes: UTF-8 is checked, and NaN, Infinity,
#: numbers out of range and lone surrogates are refused.
_DECODER = msgspec.json.Decoder()


def check_value(value: Any) -> None:
    """Check a parsed payload: nesting depth, and strings PostgreSQL and UTF-8 can hold.

    Walks iteratively, so no input can exhaust the stack.

    :param value: A parsed JSON value or form dict.
    :raises WebhookRejectedError: 400 when nesting is deeper than :data:`MAX_JSON_DEPTH`, or a key or
        string holds ``\\u0000`` or a lone surrogate.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            if depth >= MAX_JSON_DEPTH:
                raise WebhookRejectedError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            for key, child in item.items():
                _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_JSON_DEPTH:
                raise WebhookRejectedError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in item)


def _check_string(text: str) -> None:
    if "\x00" in text:
        raise WebhookRejectedError(400, "strings must not contain \\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise WebhookRejectedError(400, "strings must not contain lone surrogates") from None


def _body_text(body: bytes) -> str:
    """Decode a form body, which must not be empty."""
    if not body.strip():
        raise WebhookRejectedError(400, "empty body")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejectedError(400, "body is not valid UTF-8") from None


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON body that must be an object.

    :param body: The raw body.
    :raises WebhookRejectedError: 400 for an empty body, invalid UTF-8 or JSON, a non-object, NaN or
        Infinity, numbers out of range, too deep nesting or forbidden strings.
    """
    if not body.strip():
        raise WebhookRejectedError(400, "empty body")
    try:
        value = _DECODER.decode(body)
    except RecursionError:
        raise WebhookRejectedError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except msgspec.DecodeError:
        # Also NaN, Infinity, 1e400, integers past Python's digit limit and lone surrogates.
        raise WebhookRejectedError(400, _decode_error_detail(body)) from None
    if not isinstance(value, dict):
        raise WebhookRejectedError(400, "body must be a JSON object")
    # The walk is needed only when the body could nest too deeply or hold a NUL (decoded from
    # its escape; a raw one is malformed JSON): the common body skips it.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH or b"\\u0000" in body:
        check_value(value)
    return value


def _decode_error_detail(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not valid UTF-8"
    return "body is not valid JSON"


def parse_pairs(text: str) -> dict[str, Any]:
    """Parse ``a=1&b=2&b=3`` into ``{"a": "1", "b": ["2", "3"]}`` (repeated keys become lists).

    :param text: A form body or query string (already decoded from bytes).
    :raises WebhookRejectedError: 400 for invalid percent-encoded UTF-8, too many fields or forbidden
        characters.
    """
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        raise WebhookRejectedError(400, "form or query is not valid UTF-8") from None
    except ValueError:
        raise WebhookRejectedError(400, f"more than {MAX_FORM_FIELDS} form or query fields") from None
    result: dict[str, Any] = {}
    for key, value in pairs:
        _check_string(key)
        _check_string(value)
        if key in result:
            existing = result[key]
            if isinstance(existing, list):
                existing.append(value)
            else:
                result[key] = [existing, value]
        else:
            result[key] = value
    return result


def parse_form(body: bytes) -> dict[str, Any]:
    """Parse a form-encoded body.

    :param body: The raw body.
    :raises WebhookRejectedError: 400 for an empty or invalid body.
    """
    return parse_pairs(_body_text(body))


def parse_query(raw: bytes) -> dict[str, Any]:
    """Parse an ASGI ``query_string``.

    :param raw: The raw query string bytes.
    :raises WebhookRejectedError: 400 when it is not valid UTF-8.
    """
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejectedError(400, "query string is not valid UTF-8") from None
    return parse_pairs(text)
