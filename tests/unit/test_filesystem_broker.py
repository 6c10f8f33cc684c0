"""The embedded broker never hands a consumer a message file that is still being written."""

from __future__ import annotations

import os

from kombu import Connection

import queueing.filesystem_broker as broker


def test_a_message_is_written_whole_under_another_name_then_renamed_into_place(tmp_path, monkeypatch):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    seen_at_rename: list[list[str]] = []
    real_replace = os.replace

    def replace(source: str, target: str) -> None:
        # At the rename the final name does not exist yet and the staged file is complete.
        seen_at_rename.append(sorted(os.listdir(tmp_path)))
        assert not os.path.exists(target)
        assert os.path.getsize(source) > 0
        real_replace(source, target)

    monkeypatch.setattr(broker.os, "replace", replace)
    with Connection("filesystem://", transport=broker.Transport, transport_options=options) as connection:
        queue = connection.SimpleQueue("ingest")
        queue.put({"event_id": 42})
        [listing] = seen_at_rename
        assert all(name.endswith(broker.STAGED) for name in listing)  # nothing a consumer takes
        assert queue.get(timeout=1).payload == {"event_id": 42}
        queue.close()
