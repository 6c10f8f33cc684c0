"""Unit tests: pure Python, no PostgreSQL, no Redis, no Celery worker.

They may start the outside world's fakes (real HTTP on loopback, from ``testkit.fakes``), but
nothing of ours that needs a service. ``./run test tests/unit`` runs them on a bare machine.
"""
