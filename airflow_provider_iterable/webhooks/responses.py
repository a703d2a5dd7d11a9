"""The receiver's answers: small JSON bodies with fixed texts that never echo the request."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


def json_response(status: int, content: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """Return ``content`` as a compact JSON answer.

    :param status: The HTTP status.
    :param content: The JSON body.
    :param headers: Extra headers (``Retry-After``, ``Allow``).
    """
    body = json.dumps(content, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """Return a refusal, ``{"status": "error", "detail": ...}``.

    :param status: The HTTP status.
    :param detail: A short fixed text; never data from the request.
    :param headers: Extra headers.
    """
    return json_response(status, {"status": "error", "detail": detail}, headers)
