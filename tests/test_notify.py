"""sd_notify client, checked on real unix datagram sockets (path and abstract namespace)."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

from daemons.session.notify import Notifier, watchdog_interval


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path, monkeypatch):
    """A bound datagram socket standing in for systemd; NOTIFY_SOCKET points at it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    else:
        name = f"blazz-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        address = "@" + name
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    yield sock
    sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_each_message_arrives_as_one_datagram(notify_socket):
    notifier = Notifier.from_env()
    assert notifier.enabled
    assert notifier.ready()
    assert received(notify_socket) == "READY=1"
    assert notifier.status("holding 12 accounts")
    assert received(notify_socket) == "STATUS=holding 12 accounts"
    assert notifier.watchdog()
    assert received(notify_socket) == "WATCHDOG=1"
    assert notifier.stopping()
    assert received(notify_socket) == "STOPPING=1"
    assert notifier.extend_timeout(2.5)
    assert received(notify_socket) == "EXTEND_TIMEOUT_USEC=2500000"
    notifier.close()


def test_fields_share_a_datagram_and_stay_one_line_each(notify_socket):
    notifier = Notifier.from_env()
    assert notifier.ready("claimed 3 accounts")
    assert received(notify_socket) == "READY=1\nSTATUS=claimed 3 accounts"
    assert notifier.send(status="line one\nline two", errno=0)
    assert received(notify_socket) == "STATUS=line one line two\nERRNO=0"
    assert notifier.stopping("draining 3 sessions")
    assert received(notify_socket) == "STOPPING=1\nSTATUS=draining 3 sessions"


def test_without_notify_socket_every_call_is_a_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_env()
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.status("x") is False
    assert Notifier.from_env({"NOTIFY_SOCKET": ""}).enabled is False


def test_a_failed_send_is_logged_not_raised(tmp_path, caplog):
    notifier = Notifier(str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.DEBUG, logger="daemons.session.notify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert "sd_notify" in caplog.text and "failed" in caplog.text


def test_recovers_when_the_socket_appears_later(tmp_path):
    path = tmp_path / "late.sock"
    notifier = Notifier(str(path))
    assert notifier.watchdog() is False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        assert notifier.watchdog() is True
        assert received(sock) == "WATCHDOG=1"


def test_watchdog_interval_from_environment():
    me = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 30.0
    # Inherited by a child: the watchdog belongs to another process.
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1500000"})
    assert notifier.watchdog_interval() == 1.5
