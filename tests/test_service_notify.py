"""sd_notify over a datagram socket, against a fake NOTIFY_SOCKET; the watchdog rule."""

from __future__ import annotations

import os
import socket

from pyramidd.service.notify import Notifier, pipeline_moves


def listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(2)
    return s


def test_messages_reach_the_socket(tmp_path):
    sock = listener(tmp_path / "notify")
    n = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert n.enabled
    assert n.ready("0 waiting")
    assert sock.recv(4096).decode().split("\n") == ["READY=1", "STATUS=0 waiting", f"MAINPID={os.getpid()}"]
    n.reloading()
    msg = sock.recv(4096).decode()
    assert msg.startswith("RELOADING=1\nMONOTONIC_USEC=") and int(msg.split("=")[-1]) > 0
    n.stopping()
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
    n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    n.status("3 waiting")
    assert sock.recv(4096) == b"STATUS=3 waiting"
    n.close()
    sock.close()


def test_abstract_socket_address():
    name = f"pyramidd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    n = Notifier(environ={"NOTIFY_SOCKET": "@" + name})
    n.watchdog()
    assert sock.recv(100) == b"WATCHDOG=1"
    sock.close()
    n.close()


def test_without_a_socket_nothing_is_sent_and_nothing_fails(tmp_path):
    n = Notifier(environ={})
    assert not n.enabled and not n.ready("x") and n.watchdog_interval is None
    gone = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.watchdog() is False  # the manager went away: the service carries on


def test_watchdog_settings():
    pid = str(os.getpid())
    assert Notifier(environ={"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": pid}).watchdog_interval == 2.0
    assert Notifier(environ={"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier(environ={"WATCHDOG_USEC": "x"}).watchdog_interval is None


def test_pings_only_while_the_pipeline_moves():
    assert pipeline_moves(now=100.0, busy=False, last_activity=0.0, period=10.0)
    assert pipeline_moves(now=100.0, busy=True, last_activity=95.0, period=10.0)
    assert not pipeline_moves(now=100.0, busy=True, last_activity=89.0, period=10.0)
