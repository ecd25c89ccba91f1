"""The daemon as a program: its command line, the socket file it owns (a
live daemon's left alone, a stale one replaced, a plain file refused, -s,
the default path), detaching, and shutting down on SIGTERM/SIGINT.  The
configuration file is in test_config.py, the token in test_token.py, TLS in
test_tls.py, who may use the socket in test_access.py."""

import os
import signal
import socket
import time

from conftest import SLACKD, SLACKCTL, TOKEN, Client, run, wait_until


def test_help_and_version():
    p = run(SLACKD, "--help")
    assert p.returncode == 0 and "usage: slackd" in p.stdout
    assert "-n, --check" in p.stdout
    p = run(SLACKD, "--version")
    assert p.returncode == 0 and p.stdout.startswith("slackd ")
    p = run(SLACKD, "--bogus")
    assert p.returncode == 64
    p = run(SLACKD, "xoxb-on-the-command-line")
    assert p.returncode == 64 and "never goes on the command line" in p.stderr
    p = run(SLACKCTL, "--help")
    assert p.returncode == 0 and "send" in p.stdout
    assert run(SLACKCTL).returncode == 2
    assert run(SLACKCTL, "frobnicate").returncode == 2


def test_live_daemon_not_displaced(daemon_factory, daemon, fake):
    d2 = daemon_factory()
    d2.sock = daemon.sock
    d2.settings["socket"] = daemon.sock
    d2.write_config()
    p = run(SLACKD, "-d", "-f", d2.conf_path)
    assert p.returncode == 1
    assert "another slackd is already listening on" in p.stderr
    assert daemon.status()["state"] == "connected"


def test_stale_socket_replaced(daemon_factory, fake):
    d = daemon_factory()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(d.sock)
    s.close()                     # leaves a socket file nobody listens on
    d.start()
    assert "removed stale socket" in d.log_text()


def test_non_socket_file_left_alone(daemon_factory, fake):
    d = daemon_factory()
    with open(d.sock, "w") as f:
        f.write("precious")
    d.write_config()
    p = run(SLACKD, "-d", "-f", d.conf_path)
    assert p.returncode == 1 and "is not a socket" in p.stderr
    assert open(d.sock).read() == "precious"


def test_socket_option_overrides_config(daemon_factory, fake, tmp_path):
    d = daemon_factory()
    other = str(tmp_path / "other.sock")
    d.start(args=("-s", other), wait=None)
    wait_until(lambda: os.path.exists(other), 5)
    c = Client(other)
    assert c.hello["type"] == "slackd.hello"
    c.close()
    d.stop()
    assert not os.path.exists(other)


def test_slackctl_daemon_not_running(tmp_path):
    p = run(SLACKCTL, "-s", str(tmp_path / "nope.sock"), "status")
    assert p.returncode == 3
    assert "slackd is not running" in p.stderr
    p = run(SLACKCTL, "status", env={"SLACKD_SOCKET":
                                     str(tmp_path / "nope.sock")})
    assert p.returncode == 3 and "nope.sock" in p.stderr


def test_sigterm_clean_shutdown(daemon_factory, fake):
    d = daemon_factory(reconnect_min="5", reconnect_max="5").start()
    listener = d.client()
    sender = d.client()
    fake.hold_acks(True)
    sender.send({"id": 1, "type": "message", "channel": "C1",
                 "text": "in flight"})
    fake.wait_for(lambda: fake.messages(), 5)
    d.signal(signal.SIGTERM)
    assert d.wait_exit(10) == 0
    r = sender.reply(1, 5)
    assert r["error"]["name"] == "not_confirmed"
    st = listener.state("stopping", 5)
    assert st["state"] == "stopping"
    assert listener.closed_by_peer(5)
    assert not os.path.exists(d.sock)
    wait_until(lambda: not fake.sessions[0].open, 5)
    assert fake.sessions[0].close_code_received == 1000
    assert "stopped" in d.log_text()


def test_sigterm_while_disconnected_answers_queue(daemon_factory, fake):
    fake.set_api_default(503, "down")
    d = daemon_factory(reconnect_min="5", reconnect_max="5").start(
        wait="socket")
    c = d.client()
    c.send({"id": 1, "type": "message", "channel": "C1", "text": "q"})
    wait_until(lambda: d.status()["queued"] == 1, 5)
    t0 = time.monotonic()
    d.signal(signal.SIGINT)
    r = c.reply(1, 5)
    assert r["error"]["name"] == "shutting_down"
    assert d.wait_exit(10) == 0
    assert time.monotonic() - t0 < 3


def test_detaches_without_d(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    p = run(SLACKD, "-f", d.conf_path)
    assert p.returncode == 0
    wait_until(lambda: os.path.exists(d.sock), 5)
    c = Client(d.sock)
    st = c.request({"id": 1, "type": "slackd.status"})
    c.close()
    assert st["pid"] != os.getpid()
    os.kill(st["pid"], signal.SIGTERM)
    wait_until(lambda: not os.path.exists(d.sock), 10, what="detached "
               "slackd to stop")


def test_detached_startup_failure_is_reported(daemon_factory, fake, tmp_path):
    d = daemon_factory()
    d.write_config()
    blocker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    blocker.bind(d.sock)
    blocker.listen(1)            # a live "daemon" on the path
    try:
        p = run(SLACKD, "-f", d.conf_path)
    finally:
        blocker.close()
    assert p.returncode == 1
    assert "another slackd is already listening" in p.stderr


def test_default_socket_path(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("")
    p = run(SLACKD, "-n", "-f", str(conf), env={"SLACK_API_TOKEN": TOKEN})
    assert p.returncode == 0, p.stderr
    if os.geteuid() == 0:
        assert "socket /run/slackd/slackd.sock" in p.stdout
    else:
        assert "slackd.sock" in p.stdout

