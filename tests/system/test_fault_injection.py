"""The fault-injection suite (``python -m faults``) in its short form, as CI runs it.

600 events flow (messages, statuses, WAHA labels and messages, order events, replays) while
every kind of fault is injected at least once: whole workers, pool children and beat SIGKILLed,
the private Redis stopped and restarted empty (once while sends wait for their rate-limit
slots), every PostgreSQL session of the system
terminated, the Cloud API answering 500, 429, too late and not at all. The suite runs in a
process of its own, with its own scratch database, Redis, API, workers and beat (this test
session's services are not touched), and must report nothing lost, nothing sent twice, no
order's messages out of stage order, a consistent state and a drain within its bound.
"""

from __future__ import annotations

import json
import subprocess
import sys

from faults.chaos import KINDS
from testkit.processes import PROJECT_ROOT

EVENTS = 600
SEED = 20261123


def test_short_fault_injection_run_loses_nothing_and_sends_nothing_twice(tmp_path):
    summary_path = tmp_path / "faults.json"
    command = [sys.executable, "-m", "faults", "--events", str(EVENTS), "--seed", str(SEED)]
    command += ["--rate", "30", "--drain-timeout", "240", "--json", str(summary_path)]
    # The suite sets every setting it needs itself; this session's variables are overridden.
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    print(output[-20000:])

    assert summary_path.exists(), f"the suite wrote no summary (exit {result.returncode}):\n{output[-5000:]}"
    summary = json.loads(summary_path.read_text())
    assert summary["problems"] == [], summary["problems"]
    assert result.returncode == 0, output[-5000:]
    assert summary["events_accepted"] == EVENTS
    assert summary["events_processed"] == EVENTS
    assert summary["events_lost"] == 0
    assert summary["messages_expected"] > 0
    assert summary["messages_lost"] == 0
    assert summary["messages_sent_twice"] == 0
    assert summary["messages_out_of_order"] == 0
    assert summary["state_mismatches"] == 0
    assert summary["drain_seconds"] is not None
    assert {kind for kind, count in summary["faults"].items() if count >= 1} == set(KINDS)
    assert "Verdict: PASS" in result.stdout
