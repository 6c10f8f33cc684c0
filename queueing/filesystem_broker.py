"""The embedded broker (``CELERY_BROKER_URL=filesystem://``): kombu's file transport, with each
message written whole before any consumer can see it.

kombu's own ``_put`` creates the message file under its final name and then writes it, while
``_get`` takes any file with that name without the writer's lock: under load a consumer read a
file still empty, failed to decode it, and the worker died (``JSONDecodeError``). Here the
message is written under a name no consumer looks for and renamed into place, which POSIX makes
atomic: a consumer sees the whole message or nothing.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# A staged file's name ends in this, not in ".<queue>.msg", so ``_get`` never takes it.
STAGED = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        staged = final + STAGED
        try:
            with open(staged, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(staged, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
