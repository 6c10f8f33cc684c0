"""Workers refuse to start on a broken configuration, naming what is wrong (real processes)."""

from __future__ import annotations

import pytest

from testkit.processes import CeleryProcess, wait_for
from testkit.samples import with_trigger


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WHATSAPP_ACCESS_TOKEN": ""}, "WHATSAPP_ACCESS_TOKEN"),
        ({"ORDER_MESSAGES_FILE": "BROKEN"}, "{nama}"),
    ],
)
def test_a_worker_with_broken_configuration_refuses_to_start_and_says_why(tmp_path, env, named):
    if env.get("ORDER_MESSAGES_FILE") == "BROKEN":
        env = {
            "ORDER_MESSAGES_FILE": str(
                with_trigger(tmp_path, "order_paid", '[order_paid]\ntext = "Halo {nama}"\n')
            )
        }
    worker = CeleryProcess.worker(queues="outbound", **env)
    try:
        wait_for(lambda: worker.process.poll() is not None, 60, "the worker to exit")
    finally:
        worker.stop()
    assert worker.process.returncode != 0
    assert named in worker.output()
