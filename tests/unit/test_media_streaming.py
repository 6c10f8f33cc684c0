"""Our files leave the store as a stream: the reader the Cloud API upload streams from, the
JSON body with the base64 WAHA gets when it cannot be given a link (written as it is sent), and
the signed link it is given instead."""

from __future__ import annotations

import base64
import json
import os

import pytest

from domain.media_links import LINK_SECONDS, is_valid, link_key, path_of
from integrations.storage import ChunkReader
from integrations.whatsapp.base import Attachment
from integrations.whatsapp.waha_body import Base64Data, StreamedBody

DATA = os.urandom(1_000_003)  # not a whole number of chunks, nor of 3-byte groups


def chunks(size: int = 65_537):
    for at in range(0, len(DATA), size):
        yield DATA[at : at + size]


def test_the_reader_gives_the_file_back_whole_in_reads_of_any_size_and_counts_what_is_left():
    reader = ChunkReader(chunks(), len(DATA))
    parts = [reader.read(8192)]
    assert reader.len == len(DATA) - 8192
    while part := reader.read(100_000):
        parts.append(part)
    assert b"".join(parts) == DATA
    assert reader.len == 0


def test_the_waha_fallback_body_is_json_whose_data_is_the_files_own_base64_and_as_long_as_it_says():
    attachment = Attachment("video/mp4", "v.mp4", len(DATA), lambda: ChunkReader(chunks(), len(DATA)))
    caption = 'Harga "spesial" \\ 日本 \n'  # escaped as json.dumps escapes it
    fields = {"session": "default", "caption": caption, "file": {"mimetype": "video/mp4"}}
    body = StreamedBody({**fields, "file": {**fields["file"], "data": Base64Data(attachment)}})
    length = body.len
    parts = [body.read(8192)]
    while part := body.read(100_000):
        parts.append(part)
    sent = b"".join(parts)
    assert len(sent) == length  # the Content-Length it was sent with
    decoded = json.loads(sent)
    assert base64.b64decode(decoded.pop("file").pop("data"), validate=True) == DATA
    assert decoded == {"session": "default", "caption": fields["caption"]}


def test_a_media_link_opens_its_own_file_until_it_expires_and_no_other():
    key = link_key("a-long-secret-key")
    path = path_of(key, "abc", now=1000.0)
    expires = int(path.split("expires=")[1].split("&")[0])
    signature = path.split("signature=")[1]
    assert expires == 1000 + LINK_SECONDS
    assert is_valid(key, "abc", expires, signature, now=1000.0 + LINK_SECONDS)
    assert not is_valid(key, "abc", expires, signature, now=1001.0 + LINK_SECONDS)  # expired
    assert not is_valid(key, "abd", expires, signature, now=1000.0)  # another file
    assert not is_valid(key, "abc", expires + 1, signature, now=1000.0)  # a longer life
    assert not is_valid(link_key("another-secret-key"), "abc", expires, signature, now=1000.0)


def test_a_stored_file_shorter_than_its_recorded_size_is_an_error_not_an_endless_upload():
    reader = ChunkReader(chunks(), len(DATA) + 10)
    with pytest.raises(OSError, match="10 bytes short"):
        while reader.read(100_000):
            pass


def test_a_signature_of_any_characters_or_a_far_expiry_is_simply_not_ours():
    key = link_key("a-long-secret-key")
    far = 1000 + 10 * LINK_SECONDS
    signature = path_of(key, "abc", now=far - LINK_SECONDS).split("signature=")[1]
    assert not is_valid(key, "abc", far, signature, now=1000.0)  # made by us, but lives too long
    assert not is_valid(key, "abc", 1000 + LINK_SECONDS, "tanda-tangan-日本", now=1000.0)
