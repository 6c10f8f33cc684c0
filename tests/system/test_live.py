"""The inbox's live event stream, ``GET /api/events``, end to end: two real API processes
(uvicorn), the real worker, the real Redis Stream and PostgreSQL. Each page is an httpx stream
read in a thread, parsed as a browser's EventSource would (testkit/sse.py)."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from sqlalchemy import select

from models import Channel, Contact, Conversation, Message
from models.base import utcnow
from models.conversations import INBOUND, OUTBOUND
from models.db import session_scope
from queueing.live import QUEUE, STREAM_KEY, LiveEvent
from testkit import samples
from testkit.processes import api_server, wait_for
from testkit.sse import Event, Parser

from .conftest import ADMIN_TOKEN, REDIS
from .test_accounts import PASSWORD

pytestmark = pytest.mark.usefixtures("worker")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BUDI, SITI = "6281212345678", "6281298765432"


def _serve() -> Iterator[str]:
    with api_server("live", {"ADMIN_TOKEN": ADMIN_TOKEN}) as url:
        yield url


@pytest.fixture(scope="module")
def server_a() -> Iterator[str]:
    yield from _serve()


@pytest.fixture(scope="module")
def server_b() -> Iterator[str]:
    yield from _serve()


class Page:
    """One open ``GET /api/events``, as an inbox page holds it: every event it got, in order."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None, **cookies: str) -> None:
        self.events: list[Event] = []
        self.comments: queue.Queue[str] = queue.Queue()
        self.parser = Parser()
        self.client = httpx.Client(base_url=base_url, cookies=cookies, timeout=httpx.Timeout(10, read=None))
        self.response = self.client.send(
            self.client.build_request("GET", "/api/events", headers=headers), stream=True
        )
        self.status = self.response.status_code
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
            assert self.comments.get(timeout=30) == "connected"  # joined: what follows reaches it

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                got = self.parser.feed(line)
                if isinstance(got, Event):
                    self.events.append(got)
                elif isinstance(got, str):
                    self.comments.put(got)
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            self.ended.set()

    def first(self, kind: str, after: Event | None = None, **data: object) -> Event:
        """Wait for the first event of this kind whose data has these values (after ``after``)."""

        def found() -> Event | None:
            events = list(self.events)
            start = events.index(after) + 1 if after is not None else 0
            return next((e for e in events[start:] if e.kind == kind and _has(e, data)), None)

        return wait_for(found, 60, f"a {kind} event with {data}")

    def close(self) -> None:
        self.response.close()
        self.client.close()


def _has(event: Event, data: dict[str, object]) -> bool:
    return all(event.data.get(key) == value for key, value in data.items())


@pytest.fixture
def pages() -> Iterator[Callable[..., Page]]:
    opened: list[Page] = []

    def open_page(*args: object, **kwargs: str) -> Page:
        page = Page(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(page)
        return page

    yield open_page
    for page in opened:
        page.close()


def agent(url: str, login: str, role: str = "agent", teams: tuple[str, ...] = ("sales",)) -> dict[str, str]:
    """A new account and a bearer token for it."""
    body = {"login": login, "name": login.title(), "role": role, "teams": list(teams), "password": PASSWORD}
    assert httpx.post(f"{url}/api/agents", json=body, headers=ADMIN).status_code == 201
    signed_in = httpx.post(f"{url}/api/auth/token", json={"login": login, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['token']}"}


def session_cookie(url: str, login: str) -> str:
    """The dashboard's session cookie for an account, as a browser gets it by signing in."""
    answer = httpx.post(f"{url}/dashboard/login", data={"login": login, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return answer.cookies["wacrm_session"]


def inbound(url: str, wa_id: str, text: str) -> Message:
    """A customer's message through the webhook; its row once the worker has stored it."""
    message = samples.text(wa_id, text)
    payload = samples.envelope(messages=[message], contacts=[samples.profile(wa_id, "Budi")])
    body, headers = samples.encode(payload)
    assert httpx.post(f"{url}/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    return stored(INBOUND, external_id=message["id"])


def stored(direction: str, **where: object) -> Message:
    def found() -> Message | None:
        with session_scope() as session:
            query = select(Message).where(Message.direction == direction).order_by(Message.id.desc())
            return session.scalars(query.filter_by(**where)).first()

    return wait_for(found, 60, f"an {direction} message stored")


def stream_ids(after: str, until: str) -> list[str]:
    """What the Redis Stream itself holds after one id up to another."""
    entries = redis.Redis.from_url(REDIS.url).xrange(STREAM_KEY, min=f"({after}", max=until)
    return [raw_id.decode() for raw_id, _ in entries]


def test_pages_on_two_api_processes_see_a_new_message_and_its_read_receipt(server_a, server_b, pages):
    ayu = agent(server_a, "ayu")
    on_a = pages(server_a, ayu)
    on_b = pages(server_b, wacrm_session=session_cookie(server_b, "ayu"))  # the dashboard's cookie
    message = inbound(server_a, BUDI, "Halo kak, masih ada stok?")
    expected = {
        "conversation_id": message.conversation_id,
        "contact_id": message.contact_id,
        "message_id": message.id,
        "direction": "inbound",
    }
    for page in (on_a, on_b):
        assert page.first("message", message_id=message.id).data == expected
    assert on_a.parser.retry == on_b.parser.retry == 3000  # sent once, when it connects

    reply = httpx.post(
        f"{server_a}/api/conversations/{message.conversation_id}/messages",
        json={"text": "Ada kak"},
        headers=ayu,
    )
    assert reply.status_code == 202, reply.text
    sent = stored(OUTBOUND, conversation_id=message.conversation_id)  # recorded once the gateway took it
    for page in (on_a, on_b):
        assert page.first("message", message_id=sent.id).data["direction"] == "outbound"
    receipt = samples.status(sent.external_id, "read", BUDI)
    body, headers = samples.encode(samples.envelope(statuses=[receipt]))
    assert httpx.post(f"{server_b}/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    for page in (on_a, on_b):
        read = page.first("status", message_id=sent.id, status="read")
        assert read.data == {
            "conversation_id": message.conversation_id,
            "message_id": sent.id,
            "status": "read",
        }
        assert read.id is not None


def test_an_assignment_through_the_api_is_announced(server_a, server_b, pages):
    agent(server_a, "bayu")
    page = pages(server_b, ADMIN)
    message = inbound(server_a, BUDI, "Mau pesan 2 ya")
    page.first("queue", conversation_id=message.conversation_id)  # a human answers: it waits for one
    path = f"{server_a}/api/conversations/{message.conversation_id}/assignee"
    assert httpx.post(path, json={"agent": "bayu"}, headers=ADMIN).status_code == 200
    taken = page.first("conversation", conversation_id=message.conversation_id, owner_agent="bayu")
    assert taken.data == {
        "conversation_id": message.conversation_id,
        "contact_id": message.contact_id,
        "assigned_agent": "bayu",
        "owner_agent": "bayu",
        "closed": False,
    }
    assert httpx.post(path, json={"agent": None}, headers=ADMIN).status_code == 200
    handed_back = page.first("conversation", after=taken, conversation_id=message.conversation_id)
    assert (handed_back.data["owner_agent"], handed_back.data["assigned_agent"]) == (None, "bayu")


def test_a_label_given_and_taken_away_is_announced_and_resumed(server_a, server_b, pages):
    page = pages(server_b, ADMIN)
    message = inbound(server_a, BUDI, "Mau pesan 2 ya")
    seen = page.first("message", message_id=message.id)
    url = f"{server_a}/api/contacts/{message.contact_id}/labels/Grosir"
    assert httpx.post(url, headers=ADMIN).status_code == 201
    given = page.first("label", after=seen, contact_id=message.contact_id)
    assert given.data == {"conversation_id": message.conversation_id, "contact_id": message.contact_id}
    page.close()
    assert page.ended.wait(30)
    # Taken away while the page is away: it gets it when it comes back with its last id.
    assert httpx.delete(url, headers=ADMIN).status_code == 200
    again = pages(server_a, {**ADMIN, "Last-Event-ID": page.events[-1].id})
    taken = again.first("label", contact_id=message.contact_id)
    assert taken.id not in {e.id for e in page.events}  # it came after the page left


def test_a_page_that_reconnects_gets_exactly_what_it_missed(server_a, server_b, pages):
    page = pages(server_a, ADMIN)
    page.first("message", message_id=inbound(server_b, BUDI, "Halo").id)
    page.close()
    assert page.ended.wait(30)
    last = page.events[-1]  # what a browser sends back as Last-Event-ID
    # While it is away: three more customers write, and routing decides for each.
    missed = [
        inbound(server_b, wa_id, text)
        for wa_id, text in (
            ("6281200000001", "Berapa harganya?"),
            ("6281200000002", "Ada warna?"),
            (SITI, "Ok"),
        )
    ]

    again = pages(server_b, {**ADMIN, "Last-Event-ID": last.id})
    for message in missed:
        again.first("message", message_id=message.id)
    # One more, live: it comes after everything missed, and nothing comes twice.
    latest = again.first("message", message_id=inbound(server_a, BUDI, "Jadi pesan ya").id)
    received = [e.id for e in again.events]
    assert received[: received.index(latest.id) + 1] == stream_ids(last.id, latest.id)
    assert len(set(received)) == len(received)


def test_a_page_resuming_from_before_the_streams_start_is_told_to_reload(server_a, pages):
    page = pages(server_a, ADMIN)
    seen = page.first("message", message_id=inbound(server_a, BUDI, "Halo").id)
    page.close()
    inbound(server_a, SITI, "Halo juga")
    wait_for(lambda: stream_ids(seen.id, "+"), 60, "events after the page's last one")
    # As LIVE_STREAM_MAXLEN trims a busy stream: the page's last event is gone.
    redis.Redis.from_url(REDIS.url).xtrim(STREAM_KEY, maxlen=1, approximate=False)
    again = pages(server_a, {**ADMIN, "Last-Event-ID": seen.id})
    latest = again.first("message", message_id=inbound(server_a, SITI, "Masih di sana?").id)
    assert again.events[0].kind == "reload"
    assert again.events.index(latest) > 0


def test_an_agent_gets_only_the_events_of_their_teams(server_a, server_b, pages):
    ayu, sari = agent(server_a, "ayu", teams=("sales",)), agent(server_a, "sari", teams=("service",))
    with session_scope() as session:  # a conversation on the service team's number
        channel = Channel(name="toko-service", kind="waha", team="service", session="service-live")
        contact = Contact(name="Rina", phone_e164="+6281311112222")
        session.add_all([channel, contact])
        session.flush()
        now = utcnow()
        service = Conversation(
            contact_id=contact.id, channel_id=channel.id, started_at=now, last_message_at=now
        )
        session.add(service)
    sales_page, service_page = pages(server_a, ayu), pages(server_b, sari)

    sales = inbound(server_a, BUDI, "Halo kak")  # the default number: team sales
    sales_page.first("message", message_id=sales.id)
    path = f"{server_a}/api/conversations/{service.id}/assignee"
    assert httpx.post(path, json={"agent": "sari"}, headers=ADMIN).status_code == 200
    service_page.first("conversation", conversation_id=service.id, owner_agent="sari")
    assert {e.data["conversation_id"] for e in service_page.events} == {service.id}

    later = inbound(server_a, BUDI, "Jadi ya")  # after the service event: Ayu's events up to it are all hers
    sales_page.first("message", message_id=later.id)
    assert {e.data["conversation_id"] for e in sales_page.events} == {sales.conversation_id}


def test_the_stream_needs_a_credential_and_a_well_formed_last_event_id(server_a, make_client):
    assert httpx.get(f"{server_a}/api/events").status_code == 401
    assert httpx.get(f"{server_a}/api/events", headers={"Authorization": "Bearer nope"}).status_code == 401
    bad = httpx.get(f"{server_a}/api/events", headers={**ADMIN, "Last-Event-ID": "yesterday"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]
    embedded = make_client(celery_broker_url="filesystem://").get("/api/events", headers=ADMIN)
    assert embedded.status_code == 503 and "LIVE_REDIS_URL" in embedded.json()["detail"]


def test_a_hundred_and_twenty_pages_opening_at_once_all_get_the_next_event(server_a):
    """After an API restart every open inbox reconnects at once; each catches up from the stream
    at the same moment. None may be dropped (it would miss events until it reconnects)."""
    host, port = server_a.removeprefix("http://").split(":")

    async def page(got: asyncio.Queue[str]) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        request = f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
        writer.write(request.encode())
        parser = Parser()
        try:
            while line := await reader.readline():
                found = parser.feed(line.decode().rstrip("\r\n"))
                if found == "connected":
                    await got.put("connected")
                elif isinstance(found, Event) and found.kind == "queue":
                    await got.put(str(found.data.get("marker")))
        finally:
            writer.close()
        await got.put("closed")

    async def open_all() -> list[list[str]]:
        queues = [asyncio.Queue() for _ in range(120)]
        tasks = [asyncio.create_task(page(q)) for q in queues]
        for q in queues:
            assert await asyncio.wait_for(q.get(), 60) == "connected"
        event = LiveEvent.of(QUEUE, "sales", marker="after-the-rush")
        redis.Redis.from_url(REDIS.url).xadd(STREAM_KEY, event.fields())
        firsts = [[await asyncio.wait_for(q.get(), 60)] for q in queues]
        for task in tasks:
            task.cancel()
        return firsts

    assert asyncio.run(open_all()) == [["after-the-rush"]] * 120
