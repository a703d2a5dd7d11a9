"""Keep the API key out of every text the hook builds from Iterable's answers.

Iterable never echoes the ``Api-Key`` header, but a proxy, a misconfigured server or a future
answer might put it in ``msg`` or ``params``. What the hook reads from an answer goes through
here before it reaches an exception, so the key cannot travel on in one (defence in depth; the
key is also registered with Airflow's secrets masker).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["REDACTED", "redact_params", "redact_text"]

#: What the API key is replaced with.
REDACTED = "***"


def redact_text(text: str | None, api_key: str) -> str | None:
    """Return ``text`` with every occurrence of the API key replaced.

    :param text: a message or an excerpt of an answer.
    :param api_key: the connection's API key.
    """
    if text and api_key and api_key in text:
        return text.replace(api_key, REDACTED)
    return text


def redact_params(params: Any, api_key: str) -> Any:
    """Return Iterable's ``params`` with every occurrence of the API key replaced, at any depth.

    :param params: the JSON value of an answer's ``params``.
    :param api_key: the connection's API key.
    """
    if params is None or not api_key:
        return params
    text = json.dumps(params, default=str)
    if api_key not in text:
        return params
    return json.loads(text.replace(api_key, REDACTED))
