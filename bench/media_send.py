"""Media benchmark: media messages out against the send-rate ceiling, media files in, and memory.

Everything runs on this machine against real PostgreSQL (a fresh database, migrated, dropped at
the end), a private redis-server and the fake Cloud API (``testkit.fakes``, a real HTTP server in
this process), with a media store in a temporary directory:

- **Outbound, in one run.** N text messages, then N image messages of one stored 200 KB JPEG
  (the worker uploads it once to ``POST /{phone_number_id}/media``, streamed from the store, and
  sends every message with Meta's id), each through ``bench.outbound_rate.send_all`` (two
  ``-Q outbound`` workers) under the same ``OUTBOUND_RATE_PER_SECOND``. Printed: both rates,
  first to last message request, and image / text (goal >= 0.95).
- **Inbound.** M 16 MB videos the fake Cloud API keeps, one ``media_files`` row each as
  ``pipeline.media.note_inbound`` writes it, and one ``download_media`` task each for one
  ``celery worker -c 1 -Q media`` (prefork: one child downloads). Printed: files/s and MB/s from
  the publish to the last row stored, against the bench process itself streaming the same bytes
  from the fake to nowhere (what the machine can move), and the child's memory: its resident set
  once idle (after one small warm-up download, so code loaded on first use is not counted) and
  its peak while downloading the videos (Linux's high-water mark ``VmHWM``, reset through
  ``/proc/<pid>/clear_refs`` after the warm-up: exact, not sampled). Goal: peak - idle < 2 x the
  download chunk (``integrations.whatsapp.media.CHUNK_BYTES``), i.e. no file is held whole.
- **WAHA inline.** One outbound worker on the fake WAHA without PUBLIC_URL sends a 16 MB video
  as base64 ``file.data``, streamed into the JSON body: its peak RSS against idle (goal: a few
  store chunks and their base64, 8 x the store's chunk: far below the file's 16 MB and its 21 MB of
  base64, which the body held whole before).

Run from the project root::

    .venv/bin/python -m bench.media_send            # 1,200 messages per kind, 48 videos
    .venv/bin/python -m bench.media_send --quick    # 400 and 12
    .venv/bin/python -m bench.media_send --json figures.json

Figures are printed, never asserted. Every process started is stopped, and the database and the
media directory removed, on any exit.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.harness import bench_database, child_pids, phase, private_redis, proc_status_kib
from bench.outbound_rate import Result, load_outbox, report, send_all
from bench.outbound_support import (
    celery_workers,
    cloud_env,
    configure_outbound_environment,
    execute,
    insert_contacts,
    unfinished_outbox,
    verdict,
    wait_until,
)
from bench.report import Figure, bench_args, bench_main
from testkit.fakes.cloud_api import FakeCloudApi
from testkit.processes import CeleryProcess

DESCRIPTION = "Media benchmark: media sends against the rate ceiling, media downloads and worker memory."
# bench.outbound_rate's low ceiling: two workers send text unlimited at about 60-70/s on this
# shared 2-CPU machine (about 25 ms of CPU a send), so a higher one would not bind and the ratio
# would compare CPU costs rather than what the ceiling lets through.
CEILING = 40
TARGET_RATIO = 0.95
IMAGE_BYTES = 200 * 1024
VIDEO_BYTES = 16 * 1024 * 1024
WARM_UP_BYTES = 64 * 1024
DRAIN_TIMEOUT = 900.0
MIB = 1024 * 1024
_MEDIA_IDS = itertools.count(9_000_000_001)  # Meta's media ids are digits


# --- outbound ---------------------------------------------------------------------------------


def store_file(key: str, data: bytes, mime_type: str, source: str = "upload") -> int:
    """A stored file, as ``POST /api/media`` leaves it; its row id."""
    from integrations.storage import media_store
    from settings import settings

    handle, name = tempfile.mkstemp(prefix="bench-media-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    try:
        media_store(settings.media_store).put(key, Path(name), mime_type)
    finally:
        os.unlink(name)
    rows = execute(
        """
        INSERT INTO media_files (key, source, mime_type, size, sha256, filename, state, attempts,
                                 created_at, stored_at)
        VALUES (:key, :source, :mime, :size, :sha, 'katalog.jpg', 'stored', 0, now(), now())
        RETURNING id
        """,
        key=key,
        source=source,
        mime=mime_type,
        size=len(data),
        sha=hashlib.sha256(data).hexdigest(),
    )
    return rows[0].id


def media_loader(kind: str, mime_type: str, size: int) -> Callable[[int, int], list[int]]:
    """``load`` for ``send_all``: one ``kind`` message of a newly stored file of ``size`` bytes
    per contact (text rows turned into what ``pipeline.outbox`` writes for
    ``{"type": kind, kind: {"id"}}``)."""

    def load(first_contact: int, count: int) -> list[int]:
        ids = load_outbox(first_contact, count)  # its TRUNCATE ... CASCADE empties media_files too
        media_key = f"bench{kind}" + os.urandom(6).hex()
        media_id = store_file(media_key, os.urandom(size), mime_type)
        execute(
            """
            UPDATE outbound_messages
            SET body = jsonb_build_object('type', CAST(:kind AS text),
                                          CAST(:kind AS text), jsonb_build_object('id', CAST(:key AS text),
                                                                                  'caption', text)),
                media_file_id = :media_id
            """,
            kind=kind,
            key=media_key,
            media_id=media_id,
        )
        return ids

    return load


def outbound(count: int, media_env: dict[str, str]) -> tuple[Result, Result, int]:
    first_contact = insert_contacts(count, window_open=True)
    workers = "2 x celery worker -c 8 -Q outbound (prefork)"
    phase(f"text: {count} text messages, OUTBOUND_RATE_PER_SECOND={CEILING}, {workers}")
    text = send_all(CEILING, first_contact, count, env=media_env)
    report("text", text)
    phase(f"image: {count} image messages of one {IMAGE_BYTES // 1024} KB file, same ceiling, {workers}")
    load_images = media_loader("image", "image/jpeg", IMAGE_BYTES)
    image = send_all(CEILING, first_contact, count, load_images, env=media_env)
    report("image", image)
    uploads = execute("SELECT count(*) AS n FROM cloud_media_uploads")[0].n
    print(f"image: {uploads} upload(s) of the file to the fake Cloud API")
    return text, image, first_contact


def pool_child(process: CeleryProcess) -> int:
    children = child_pids(process.process.pid)
    if len(children) != 1:
        raise RuntimeError(f"expected one pool child, found {len(children)}")
    return children[0]


def memory_of(process: CeleryProcess, work: Callable[[], object]) -> tuple[int, int]:
    """The pool child's resident set now (idle) and its peak while ``work()`` runs: Linux's
    high-water mark, reset first through ``clear_refs`` (exact, not sampled)."""
    child = pool_child(process)
    time.sleep(1.0)
    Path(f"/proc/{child}/clear_refs").write_text("5")  # the high-water mark starts again
    idle = proc_status_kib(child, "VmRSS") * 1024
    work()
    peak = proc_status_kib(child, "VmHWM") * 1024
    if not idle or not peak:
        raise RuntimeError(f"pool child {child} is gone: no memory figure")
    if pool_child(process) != child:
        raise RuntimeError("the pool child changed during the work: its peak is not the work's")
    return idle, peak


def video_send_memory(first_contact: int, env: dict[str, str], warm_up: str, video: str) -> tuple[int, int]:
    """One outbound worker (-c 1) sends a warm-up image (the send's code loaded), then one 16 MB
    video: its idle and peak RSS around the video's send. ``warm_up`` and ``video`` name the phases."""
    from queueing.publish import send_outbound

    with celery_workers(1, 1, "outbound", env) as processes:

        def send(load: Callable[[int, int], list[int]]) -> None:
            send_outbound(load(first_contact, 1))
            wait_until(lambda: unfinished_outbox() == 0, processes, DRAIN_TIMEOUT, "the send")

        phase(warm_up)
        send(media_loader("image", "image/jpeg", WARM_UP_BYTES))
        phase(video)
        return memory_of(processes[0], lambda: send(media_loader("video", "video/mp4", VIDEO_BYTES)))


def upload_memory(first_contact: int, media_env: dict[str, str]) -> tuple[int, int]:
    """One outbound worker (-c 1) sends one image of a small file (warm-up: the upload's code is
    loaded), then one 16 MB video: its idle and peak RSS around the video's upload and send."""

    with FakeCloudApi() as fake:
        env = {**cloud_env(fake), **media_env}
        idle, peak = video_send_memory(
            first_contact,
            env,
            "outbound upload: a warm-up image, celery worker -c 1 -Q outbound",
            f"outbound upload: one {VIDEO_BYTES // MIB} MB video, uploaded to the fake and sent",
        )
        uploaded = [data for data in fake.media.values() if len(data.data) == VIDEO_BYTES]
        if len(uploaded) != 1 or len(fake.accepted) != 2:
            raise RuntimeError(f"{len(uploaded)} videos uploaded, {len(fake.accepted)} messages accepted")
    return idle, peak


def waha_inline_memory(first_contact: int, media_env: dict[str, str]) -> tuple[int, int]:
    """One outbound worker (-c 1) on WAHA without PUBLIC_URL sends a warm-up image, then one
    16 MB video as base64 ``file.data`` (streamed into the JSON body): its idle and peak RSS."""
    from testkit.fakes.waha import FakeWaha

    with FakeWaha(api_key="bench-waha-key") as fake:
        env = {
            **media_env,
            "WHATSAPP_GATEWAY": "waha",
            "WAHA_URL": fake.url,
            "WAHA_API_KEY": "bench-waha-key",
            "PUBLIC_URL": "",  # no link can be made: the file goes inline
        }
        idle, peak = video_send_memory(
            first_contact,
            env,
            "WAHA inline: a warm-up image, celery worker -c 1 -Q outbound, no PUBLIC_URL",
            f"WAHA inline: one {VIDEO_BYTES // MIB} MB video as streamed base64",
        )
        sizes = [len(data) for data in fake.files_received]
        if sizes != [WARM_UP_BYTES, VIDEO_BYTES]:
            raise RuntimeError(f"WAHA received files of {sizes} bytes, not the warm-up and the video")
    return idle, peak


# --- inbound ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    files: int
    seconds: float
    baseline_seconds: float  # the bench itself streaming the same files from the fake
    idle_rss: int
    peak_rss: int
    chunk: int
    upload_idle_rss: int  # the outbound worker around one 16 MB video's upload
    upload_peak_rss: int
    store_chunk: int

    @property
    def upload_growth(self) -> int:
        return self.upload_peak_rss - self.upload_idle_rss

    @property
    def growth(self) -> int:
        return self.peak_rss - self.idle_rss

    def mb_per_second(self, seconds: float) -> float:
        return self.files * VIDEO_BYTES / MIB / seconds


def pending_rows(fake: FakeCloudApi, data: bytes, mime_type: str, count: int) -> list[int]:
    """``count`` files the fake keeps (one bytes object, shared) and a pending row for each."""
    media_ids = [str(next(_MEDIA_IDS)) for _ in range(count)]
    sha = hashlib.sha256(data).hexdigest()
    for media_id in media_ids:
        fake.add_media(media_id, data, mime_type, sha)
    rows = execute(
        """
        INSERT INTO media_files (key, source, remote_ref, mime_type, state, attempts, created_at)
        SELECT 'in' || substr(md5(random()::text), 1, 20), 'cloud', ref, :mime, 'pending', 0, now()
        FROM unnest(CAST(:refs AS text[])) AS ref
        RETURNING id
        """,
        mime=mime_type,
        refs=media_ids,
    )
    return sorted(row.id for row in rows)


def unstored(ids: list[int]) -> int:
    return execute(
        "SELECT count(*) AS n FROM media_files WHERE id = ANY(:ids) AND state <> 'stored'", ids=ids
    )[0].n


def download_all(ids: list[int], size: int, processes: list) -> float:
    """Publish a download per row; the seconds until every one is stored."""
    from queueing.publish import download_media

    started = time.time()
    download_media(ids)
    wait_until(
        lambda: unstored(ids) == 0,
        processes,
        DRAIN_TIMEOUT,
        "every file to be stored",
        progress=lambda: unstored(ids),
    )
    failed = execute("SELECT count(*) AS n FROM media_files WHERE state = 'failed'")[0].n
    if failed:
        raise RuntimeError(f"{failed} downloads failed")
    sizes = {row.size for row in execute("SELECT size FROM media_files WHERE id = ANY(:ids)", ids=ids)}
    if sizes != {size}:
        raise RuntimeError(f"stored sizes {sizes}, not {size}: not the files the fake keeps")
    last = execute("SELECT max(stored_at) AS at FROM media_files WHERE id = ANY(:ids)", ids=ids)[0].at
    return last.timestamp() - started  # the rows' own time, not the polling's


def raw_download_seconds(fake: FakeCloudApi, media_id: str, count: int, chunk: int) -> float:
    """The same bytes streamed by this process from the fake, ``count`` times, to nowhere."""
    headers = {"Authorization": f"Bearer {fake.access_token}"}
    started, received = time.perf_counter(), 0
    for _ in range(count):
        url = requests.get(f"{fake.base_url}/{media_id}", headers=headers, timeout=30).json()["url"]
        with requests.get(url, headers=headers, stream=True, timeout=30) as answer:
            answer.raise_for_status()
            for part in answer.iter_content(chunk):
                received += len(part)
    seconds = time.perf_counter() - started
    if received != count * VIDEO_BYTES:
        raise RuntimeError(f"the baseline received {received} bytes, not {count * VIDEO_BYTES}")
    return seconds


def inbound(count: int, media_env: dict[str, str], upload: tuple[int, int]) -> Inbound:
    from integrations.storage import CHUNK_BYTES as STORE_CHUNK_BYTES
    from integrations.whatsapp.media import CHUNK_BYTES

    video = os.urandom(VIDEO_BYTES)
    with FakeCloudApi() as fake:
        env = {**cloud_env(fake), **media_env}
        with celery_workers(1, 1, "media", env) as processes:
            phase("inbound: one warm-up download of a small file")
            warm_up = pending_rows(fake, os.urandom(WARM_UP_BYTES), "video/mp4", 1)
            download_all(warm_up, WARM_UP_BYTES, processes)
            phase(f"inbound: {count} videos of {VIDEO_BYTES // MIB} MB, celery worker -c 1 -Q media")
            rows = pending_rows(fake, video, "video/mp4", count)
            timed: list[float] = []
            idle, peak = memory_of(
                processes[0], lambda: timed.append(download_all(rows, VIDEO_BYTES, processes))
            )
            seconds = timed[0]
            media_id = next(key for key, kept in fake.media.items() if kept.data is video)
            phase(f"baseline: this process streams the same {count} files from the fake to nowhere")
            baseline = raw_download_seconds(fake, media_id, count, CHUNK_BYTES)
    return Inbound(count, seconds, baseline, idle, peak, CHUNK_BYTES, *upload, STORE_CHUNK_BYTES)


# --- figures ------------------------------------------------------------------------------------


def figures_of(text: Result, image: Result, received: Inbound) -> list[Figure]:
    ratio = image.rate / text.rate
    growth_goal = 2 * received.chunk
    return [
        Figure(
            "media",
            f"ceiling {CEILING}/s: image messages per second ({image.messages:,})",
            image.rate,
            "/s",
            text.rate,
            "text messages, same ceiling, same run",
            f"ratio >= {TARGET_RATIO:g}",
            ratio >= TARGET_RATIO,
        ),
        Figure(
            "media",
            f"inbound: {VIDEO_BYTES // MIB} MB videos downloaded and stored per second (-c 1)",
            received.files / received.seconds,
            "/s",
            received.files / received.baseline_seconds,
            "the bench streaming the same bytes from the fake",
        ),
        Figure(
            "media",
            "inbound: MB/s downloaded and stored (-c 1)",
            received.mb_per_second(received.seconds),
            "MB/s",
            received.mb_per_second(received.baseline_seconds),
            "the bench streaming the same bytes from the fake",
        ),
        Figure(
            "media",
            f"inbound: media worker's peak RSS while downloading {VIDEO_BYTES // MIB} MB videos",
            received.peak_rss / MIB,
            "MiB",
            received.idle_rss / MIB,
            "the same worker idle",
            f"growth < {growth_goal / MIB:g} MiB (2 x the {received.chunk // 1024} KB chunk)",
            received.growth < growth_goal,
        ),
        Figure(
            "media",
            f"outbound: worker's peak RSS uploading a {VIDEO_BYTES // MIB} MB video to the Cloud API",
            received.upload_peak_rss / MIB,
            "MiB",
            received.upload_idle_rss / MIB,
            "the same worker idle",
            f"growth < {2 * received.store_chunk / MIB:g} MiB (2 x the store's chunk)",
            received.upload_growth < 2 * received.store_chunk,
        ),
    ]


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    figures = [] if figures is None else figures
    count, videos = (400, 12) if quick else (1200, 48)
    started = time.perf_counter()
    media_dir = Path(tempfile.mkdtemp(prefix="wacrm-bench-media-"))
    media_env = {"MEDIA_STORE": str(media_dir)}
    os.environ.update(media_env)  # this process puts the outbound file in the same store
    try:
        with ExitStack() as stack:
            server = stack.enter_context(private_redis())
            database_url = stack.enter_context(bench_database())
            configure_outbound_environment(database_url, server.url)
            from models.migrate import upgrade_to_head

            upgrade_to_head(database_url)
            text, image, first_contact = outbound(count, media_env)
            upload = upload_memory(first_contact, media_env)
            waha_idle, waha_peak = waha_inline_memory(first_contact, media_env)
            received = inbound(videos, media_env, upload)
    finally:
        shutil.rmtree(media_dir, ignore_errors=True)
    figures += figures_of(text, image, received)
    waha_goal = 8 * received.store_chunk  # a few chunks, their base64 and the socket's buffers
    figures.append(
        Figure(
            "media",
            f"outbound: worker's peak RSS sending a {VIDEO_BYTES // MIB} MB video to WAHA as base64",
            waha_peak / MIB,
            "MiB",
            waha_idle / MIB,
            "the same worker idle",
            f"growth < {waha_goal / MIB:g} MiB (8 x the store's chunk; the file is {VIDEO_BYTES // MIB} MiB)",
            waha_peak - waha_idle < waha_goal,
        )
    )
    ratio = image.rate / text.rate
    growth_goal = 2 * received.chunk
    print(
        f"\nSummary (load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"wall time {time.perf_counter() - started:.0f} s):"
    )
    print(
        f"  outbound, ceiling {CEILING}/s: text {text.rate:.1f} /s, image {image.rate:.1f} /s; "
        f"image / text {ratio:.3f}   target >= {TARGET_RATIO:g}   {verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"  inbound: {received.files} x {VIDEO_BYTES // MIB} MB in {received.seconds:.1f} s: "
        f"{received.files / received.seconds:.2f} files/s, "
        f"{received.mb_per_second(received.seconds):.1f} MB/s "
        f"(the bench alone streams them at {received.mb_per_second(received.baseline_seconds):.1f} MB/s; "
        f"ratio {received.baseline_seconds / received.seconds:.2f})"
    )
    print(
        f"  media worker RSS: idle {received.idle_rss / MIB:.1f} MiB, "
        f"peak {received.peak_rss / MIB:.1f} MiB, "
        f"growth {received.growth / 1024:.0f} KiB; chunk {received.chunk // 1024} KiB; "
        f"target growth < {growth_goal // 1024} KiB   {verdict(received.growth < growth_goal)}"
    )
    upload_goal = 2 * received.store_chunk
    print(
        f"  outbound worker RSS around a {VIDEO_BYTES // MIB} MB video's upload: "
        f"idle {received.upload_idle_rss / MIB:.1f} MiB, peak {received.upload_peak_rss / MIB:.1f} MiB, "
        f"growth {received.upload_growth / 1024:.0f} KiB; store chunk {received.store_chunk // 1024} KiB; "
        f"target growth < {upload_goal // 1024} KiB   {verdict(received.upload_growth < upload_goal)}"
    )
    print(
        f"  outbound worker RSS around a {VIDEO_BYTES // MIB} MB video sent to WAHA as base64: "
        f"idle {waha_idle / MIB:.1f} MiB, peak {waha_peak / MIB:.1f} MiB, "
        f"growth {(waha_peak - waha_idle) / 1024:.0f} KiB (the file: {VIDEO_BYTES // 1024} KiB, "
        f"its base64 {4 * -(-VIDEO_BYTES // 3) // 1024} KiB); "
        f"target growth < {waha_goal // 1024} KiB   {verdict(waha_peak - waha_idle < waha_goal)}"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(
        measure,
        bench_args("bench.media_send", DESCRIPTION, "400 messages per kind and 12 videos", argv),
    )


if __name__ == "__main__":
    main()
