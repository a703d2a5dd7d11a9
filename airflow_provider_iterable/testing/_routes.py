"""Routing of the simulator: a request's method and path to an endpoint key and its path parameters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote


class _Route:
    __slots__ = ("method", "names", "pattern", "template")

    def __init__(self, endpoint: str) -> None:
        self.method, self.template = endpoint.split(" ", 1)
        self.names = re.findall(r"{(\w+)}", self.template)
        # A parameter is one raw path segment: an e-mail with "/" arrives as %2F and still matches.
        self.pattern = re.compile("^" + re.sub(r"\\{\w+\\}", "([^/]+)", re.escape(self.template)) + "$")


class Router:
    """Match requests against endpoint keys such as ``"GET /api/users/{email}"``.

    :param endpoints: the ``"METHOD /api/path-template"`` keys to serve.
    """

    def __init__(self, endpoints: Iterable[str]) -> None:
        # Literal templates first, so /api/users/getByEmail never matches /api/users/{email}.
        self._routes = sorted(
            (_Route(endpoint) for endpoint in endpoints),
            key=lambda route: ("{" in route.template, route.template),
        )
        self._literal = {
            (route.method, route.template): route for route in self._routes if "{" not in route.template
        }

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """Return the endpoint key and path parameters (decoded) for a request, or None if unknown.

        :param method: the HTTP method, upper case.
        :param path: the request path, still percent-encoded.
        """
        route = self._literal.get((method, path))
        if route is not None:
            return f"{route.method} {route.template}", {}
        for route in self._routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                params = {
                    name: unquote(value) for name, value in zip(route.names, found.groups(), strict=True)
                }
                return f"{route.method} {route.template}", params
        return None
