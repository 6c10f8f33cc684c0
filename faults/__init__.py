"""The fault-injection suite: ``python -m faults [--events 5000] [--seed N] [--workers 2]``.

While thousands of mixed webhook events (WhatsApp messages and statuses, WAHA label events and
messages, order-system events) flow into the real system, a chaos thread SIGKILLs Celery worker
processes (whole workers and single pool children) and beat, stops and restarts the private
redis-server (which keeps nothing on disk; once while sends wait for their rate-limit slots),
terminates the system's PostgreSQL connections (``pg_terminate_backend``), and makes the local
Cloud API answer 500, 429, too late (a read timeout after it accepted) or not at all (a hang-up
after it accepted). At the end it prints events accepted, processed and lost, the automated
messages expected, sent, unconfirmed, sent twice and out of stage order, state mismatches, and
the time to drain, and exits non-zero unless nothing was lost, nothing was sent twice or out of
order and everything drained in time.

The parts are all real and all private to the run:

- a scratch PostgreSQL database ``wacrm_faults_<random>``, migrated to head, dropped at the end;
- a private ``redis-server`` on a free port (``--save "" --appendonly no``), the broker and the
  shared send-rate limit;
- ``uvicorn producers.app:app`` (the webhook producers), ``--workers`` x ``celery -A workers
  worker`` on every queue, and one ``celery -A workers beat`` with short sweeper intervals, each
  restarted by a supervisor when it dies (as compose's ``restart: unless-stopped`` would);
- the fake Cloud API of the tests (``testkit/fakes/cloud_api.py``), a real HTTP server in this
  process, with ``WHATSAPP_GATEWAY=cloud``.

Modules: ``environment`` (the scratch database and the settings of every process),
``processes`` (child processes, the restartable Redis, the supervisor), ``cloud`` (the fake
Cloud API, remembering what it answered), ``traffic`` (the event stream and the retrying
sender), ``chaos`` (the faults), ``ledger`` (what the database and the fake say at the end),
``suite`` (the run and its report).
"""
