"""`message send --media` stores the file's bytes with the message (both dialects): chunks of
512 KiB that reassemble to the file, written in the message's transaction or not at all.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from blazzctl.models.auth_archive import CHUNK_BYTES

PHONE = "+62 812-3456-7890"


@pytest.fixture
def acme(cli, migrated_url):
    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=migrated_url).code == 0
    return migrated_url


def send(cli, url, *args, env: dict | None = None):
    return cli("message", "send", "sales", "--workspace", "acme", "--to", PHONE, *args, db=url, env=env)


def chunks(database) -> list[tuple[int, int, bytes]]:
    from blazzctl.models import MessageMediaChunk

    with database.session() as s:
        return [tuple(r) for r in s.execute(select(MessageMediaChunk.message_id, MessageMediaChunk.seq,
                                                   MessageMediaChunk.data).order_by(MessageMediaChunk.id))]


def message_count(database) -> int:
    from blazzctl.models import Message

    with database.session() as s:
        return s.scalar(select(func.count()).select_from(Message))


def test_the_file_bytes_are_stored_in_chunks_with_the_message(cli, acme, database, tmp_path):
    data = os.urandom(2 * CHUNK_BYTES + 12345)
    file = tmp_path / "report.pdf"
    file.write_bytes(data)
    r = send(cli, acme, "--media", str(file), "--caption", "Q3", "--json")
    assert r.code == 0, r
    message_id = r.json()["id"]
    stored = chunks(database)
    assert [(m, seq, len(d)) for m, seq, d in stored] == [
        (message_id, 0, CHUNK_BYTES), (message_id, 1, CHUNK_BYTES), (message_id, 2, 12345)]
    assert b"".join(d for _m, _seq, d in stored) == data

    from blazzctl.models import Message
    from blazzctl.services import message_media

    with database.session() as s:
        assert message_media.load(s, message_id) == data
        m = s.get(Message, message_id)
        assert (m.media_path, m.media_size, m.media_filename, m.media_mimetype, m.type) == (
            str(file), len(data), "report.pdf", "application/pdf", "document")


def test_the_same_idempotency_key_stores_the_bytes_once(cli, acme, database, tmp_path):
    file = tmp_path / "a.pdf"
    file.write_bytes(os.urandom(CHUNK_BYTES + 1))
    for _ in range(2):
        assert send(cli, acme, "--media", str(file), "--idempotency-key", "k1").code == 0
    assert message_count(database) == 1 and len(chunks(database)) == 2


def test_a_refused_send_writes_no_chunk(cli, acme, database, tmp_path, monkeypatch):
    """Refused before reading (over the limit) or after some chunks were written (the file grew
    after its check): either way neither the message nor any chunk remains."""
    from blazzctl.services import messages

    big = tmp_path / "big.jpg"
    big.write_bytes(os.urandom(2 * CHUNK_BYTES))
    r = send(cli, acme, "--media", str(big), env={"BLAZZ_MESSAGES_MEDIA_MAX_MB": "{image: 0.5}"})
    assert r.code == 2 and "limit for image is 0.5 MB" in r.stderr, r

    checked = messages.check_media

    def check_then_grow(path, limits):
        found = checked(path, limits)
        with open(big, "ab") as fh:  # a writer still appending after the check
            fh.write(os.urandom(CHUNK_BYTES))
        return found

    monkeypatch.setattr(messages, "check_media", check_then_grow)
    r = send(cli, acme, "--media", str(big))
    assert r.code == 2 and "changed while it was read" in r.stderr, r
    assert message_count(database) == 0 and chunks(database) == []
