"""A small HTTP client bound to one simulator, for the simulator's own tests."""

from __future__ import annotations

import requests

from airflow_provider_iterable.testing import IterableSimulator


class ApiClient:
    """``requests.Session`` bound to one simulator: ``api.post("/api/users/update", json=...)``."""

    def __init__(self, sim: IterableSimulator, api_key: str | None = None) -> None:
        self.base = sim.url
        self.session = requests.Session()
        self.session.headers["Api-Key"] = sim.api_key if api_key is None else api_key

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.get(self.base + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.post(self.base + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def delete(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.delete(self.base + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.close()
