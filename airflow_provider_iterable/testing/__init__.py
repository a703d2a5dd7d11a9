"""A local Iterable simulator for testing DAGs that use this provider, without an Iterable account.

:class:`IterableSimulator` serves Iterable's REST API over HTTP on loopback. It is stateful (users,
lists, events, sends and journey triggers live in memory), answers with Iterable's shapes and
status codes, enforces Iterable's per-endpoint rate limits (429 when a bucket overflows), records
every request for assertions, can be scripted to fail, and fires system webhooks (``emailSend``,
``smsSend``, ...) at a receiver when it "sends" a message.

Test a DAG against it (:func:`run_dag` points the connection at the simulator, makes sure
Airflow has the DAG serialized, and runs ``dag.test()``)::

    from airflow_provider_iterable.testing import IterableSimulator, run_dag

    def test_welcome_dag():
        with IterableSimulator() as sim:
            run = run_dag(dag, simulator=sim)   # the DAG under test, e.g. from your dags folder

            assert run.state == "success"
            calls = sim.requests_for("POST /api/users/update")
            assert calls[0].json["email"] == "ada@example.com"
            assert sim.get_user(email="ada@example.com")["dataFields"]["plan"] == "pro"
            assert sim.sends[0]["campaignId"] == 1001

What it offers:

- ``run_dag(dag, simulator=sim)``: run a DAG once against it; see :mod:`.dag_runs`.
- ``sim.url`` and ``sim.connection_json(**extra)``: where it listens and the Airflow connection
  for it (the API key is ``sim.api_key``, :data:`DEFAULT_API_KEY` unless you pass ``api_key``).
- ``sim.requests`` / ``sim.requests_for("POST /api/lists/subscribe")``: :class:`RecordedRequest`
  objects with ``method``, ``path``, ``query``, ``headers``, ``body``, ``json``, ``endpoint``,
  ``status``; endpoints are named ``"METHOD /api/path-template"`` as in Iterable's docs
  (``"GET /api/users/{email}"``).
- State: ``sim.get_user(email=...)``, ``sim.lists``, ``sim.list_members(list_id)``,
  ``sim.events``, ``sim.sends``, ``sim.workflow_triggers``; seed it with ``sim.add_user``,
  ``sim.add_list``, ``sim.add_campaign``, ``sim.add_workflow``, ``sim.forget_user``.
  Campaigns 1001 (Email) and 2001 (SMS) and journey 3001 exist from the start, as do channels
  1-4 and message types 11-14.
- Failures: ``sim.add_fault("POST /api/sms/target", status=503)``, ``delay=`` (a read timeout
  after Iterable got the request), ``drop=True`` (connection closed without an answer),
  ``headers={"Retry-After": "1"}``, ``times=``.
- Rate limits: Iterable's documented limits per endpoint (10/s where undocumented);
  ``rate_limit_scale=1000`` to run bulk loads fast, ``set_rate_limit(endpoint, per_second)``,
  ``enforce_rate_limits=False``, ``rate_limited_count()``.
- Webhooks: pass ``webhook_url`` (and ``webhook_headers``) and every ``email/target`` /
  ``sms/target`` fires ``emailSend`` / ``smsSend`` there; ``sim.fire_webhook("emailOpen",
  email=...)`` sends any other event; ``sim.wait_for_webhooks()`` and ``sim.webhook_deliveries``;
  each failed attempt is a WARNING; ``sim.webhook_connection_extra()`` is what the receiver's
  connection needs to accept them.

From a shell: ``python -m airflow_provider_iterable.testing --port 8765`` (or the
``iterable-simulator`` command) runs one until Ctrl-C, prints the connection to use (webhook
secret included) and prints each failed webhook delivery on stderr.
"""

from __future__ import annotations

from airflow_provider_iterable.testing.dag_runs import run_dag
from airflow_provider_iterable.testing.simulator import DEFAULT_API_KEY, IterableSimulator, RecordedRequest

__all__ = ["DEFAULT_API_KEY", "IterableSimulator", "RecordedRequest", "run_dag"]
