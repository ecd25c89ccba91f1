"""slackd as a systemd service, without systemd as PID 1: the units
(systemd-analyze), sd_notify (a test-owned NOTIFY_SOCKET) and life without
it, the watchdog, socket activation (systemd-socket-activate) and logging to
the journal.  Reloading is in test_reload.py, access to the socket in
test_access.py; `make check-systemd` runs the units under a real systemd."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import SLACKD, SLACKCTL, Client, wait_until

SRCDIR = os.environ.get("TESTS_SRCDIR", os.path.dirname(__file__))
UNITS = ["slackd.service", "slackd.socket", "slackd@.service",
         "slackd@.socket"]


# ---- the units --------------------------------------------------------------

def substituted_units(tmp_path):
    """The unit templates with @sbindir@ etc. pointing at this build."""
    d = tmp_path / "units"
    d.mkdir()
    for u in UNITS:
        with open(os.path.join(SRCDIR, "..", "systemd", u + ".in")) as f:
            text = f.read()
        text = text.replace("@sbindir@", os.path.dirname(SLACKD))
        text = text.replace("@sysconfdir@", str(tmp_path))
        text = text.replace("@bindir@", os.path.dirname(SLACKCTL))
        (d / u).write_text(text)
    return d


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies_cleanly(tmp_path, unit):
    d = substituted_units(tmp_path)
    p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        str(d / unit)], capture_output=True, text=True,
                       cwd=str(d))
    # verify exits 0 on warnings: they must not be there either.
    assert p.returncode == 0 and p.stderr == "" and p.stdout == "", \
        p.stdout + p.stderr


@pytest.mark.parametrize("unit", ["slackd.service", "slackd@.service"])
def test_unit_security_exposure(tmp_path, unit):
    d = substituted_units(tmp_path)
    # --threshold is in tenths: 20 means an exposure of at most 2.0 ("OK").
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                        "--threshold=20", str(d / unit)],
                       capture_output=True, text=True, cwd=str(d))
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)",
                  p.stdout + p.stderr)
    assert m, p.stdout + p.stderr
    assert float(m.group(1)) <= 2.0 and m.group(2) == "OK", m.group(0)
    assert p.returncode == 0


def test_units_say_what_the_daemon_needs(tmp_path):
    d = substituted_units(tmp_path)
    svc = (d / "slackd.service").read_text()
    assert "Type=notify" in svc and "WatchdogSec=" in svc
    assert "RestartPreventExitStatus=78" in svc
    # Not /bin/kill: procps is not on every system (a minimal Debian).
    assert "ExecReload=/bin/sh -c 'kill -HUP \"$MAINPID\"'" in svc
    assert "LoadCredential=slack-token:" in svc
    assert "Requires=slackd.socket" in svc
    sock = (d / "slackd.socket").read_text()
    assert "ListenStream=/run/slackd/slackd.sock" in sock
    assert "SocketMode=0660" in sock and "SocketGroup=slackd" in sock
    assert "FileDescriptorName=api" in sock
    tpl = (d / "slackd@.service").read_text()
    assert "-f %s/slackd/%%i.conf" % tmp_path in tpl
    assert "slack-token:%s/slackd/%%i.token" % tmp_path in tpl
    # Instances do not share, or nest in, slackd.service's state directory.
    assert "StateDirectory=slackd\n" in svc
    assert "StateDirectory=slackd-%i\n" in tpl
    # A dynamic user may not be named like the static group "slackd"
    # (systemd fails the start with 217/USER); instances get their own.
    assert "DynamicUser=yes\n" in svc and "User=_slackd\n" in svc
    assert "User=_slackd-%i\n" in tpl
    assert "ListenStream=/run/slackd/%i.sock" in \
        (d / "slackd@.socket").read_text()


# ---- sd_notify -------------------------------------------------------------

def test_notify_lifecycle(daemon_factory, fake, notify):
    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": notify.path})
    ready = notify.wait("READY", "1")
    assert ready[0][1] == d.proc.pid
    notify.wait_status(r"^connected to Fake Workspace as slackd-bot$")
    t = time.monotonic()
    fake.drop()
    notify.wait_status(r"^reconnecting in \d+ s after ", after=t)
    notify.wait_status(r"^connected to Fake Workspace", after=t)
    t = time.monotonic()
    d.signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING", "1", after=t)
    assert "MONOTONIC_USEC" in reloading[0][2]
    again = notify.wait("READY", "1", after=reloading[0][0] - 0.001)
    assert again[-1][0] >= reloading[0][0]
    t = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    notify.wait("STOPPING", "1", after=t)
    # READY=1 comes once the socket accepts clients, before the first
    # news about the Slack connection.
    first = notify.all()[0][2]
    assert first.get("READY") == "1", notify.all()[:3]


def test_ready_before_slack_answers(daemon_factory, fake, notify):
    fake.queue_api_hang()
    d = daemon_factory(connect_timeout="5")
    d.start(env={"NOTIFY_SOCKET": notify.path}, wait="socket")
    notify.wait("READY", "1", timeout=5)
    c = d.client()
    assert c.hello["state"] == "connecting"


def test_auth_failure_status(daemon_factory, fake, notify):
    fake.set_token("xoxb-another-one")
    d = daemon_factory()
    d.expected_exit = 78
    d.start(env={"NOTIFY_SOCKET": notify.path}, wait=None)
    assert d.wait_exit() == 78
    assert "authentication failed: invalid_auth" in notify.statuses()


def test_watchdog_cadence(daemon_factory, fake, notify):
    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    time.sleep(2.2)
    pings = [m[0] for m in notify.with_key("WATCHDOG", "1")]
    assert 7 <= len(pings) <= 14, len(pings)
    gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
    median = gaps[len(gaps) // 2]
    assert 0.15 <= median <= 0.3, gaps


def test_watchdog_stops_when_upstream_wedges(daemon_factory, fake, notify):
    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000",
                 "SLACKD_TEST_HOOKS": "1"})
    notify.wait("WATCHDOG", "1")
    c = d.client()
    assert c.request({"id": 1, "type": "slackd.debug",
                      "wedge": "upstream"})["ok"] is True
    t = time.monotonic()
    time.sleep(1.5)
    late = [m for m in notify.with_key("WATCHDOG", "1") if m[0] > t + 0.45]
    assert late == [], "watchdog still fed %d times" % len(late)
    assert "has not answered" in d.log_text()
    # The main loop itself is fine: clients are still served.
    assert c.request({"id": 2, "type": "ping"})["type"] == "pong"
    d.proc.kill()
    d.proc.wait()
    d.expected_exit = None


def test_debug_hook_off_by_default(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 1, "type": "slackd.debug", "wedge": "upstream"})
    assert r["error"]["name"] == "unknown_type"
    assert c.request({"id": 2, "type": "ping"})["type"] == "pong"


def test_no_notify_socket_is_fine(daemon_factory, fake):
    """Not under systemd: every sd_notify call is a no-op, and slackd
    starts, connects, serves and stops as it does under systemd, at full
    verbosity without a word about notifying."""
    d = daemon_factory()
    d.start(args=("-vvv",), wait="socket",
            env={"NOTIFY_SOCKET": None, "WATCHDOG_USEC": None,
                 "WATCHDOG_PID": None})
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        env = f.read().split(b"\0")
    assert not [v for v in env if v.startswith(b"NOTIFY_SOCKET=")]
    d.wait_state("connected", 10)
    c = d.client()
    assert c.hello["state"] == "connected"
    fake.emit({"type": "message", "channel": "C1", "text": "no systemd"})
    m = c.recv_until(lambda m: m.get("type") == "message")
    assert m["text"] == "no systemd"
    r = c.request({"id": 1, "type": "message", "channel": "C1",
                   "text": "still sent"})
    assert r["ok"] is True
    assert d.stop() == 0
    log = d.log_text().replace(d.tmp, "TMP")   # the test's name has it
    assert "debug: " in log and "stopped" in log
    assert not re.search(r"notify|watchdog", log, re.I), log


# ---- socket activation ---------------------------------------------------------

def unix_listening(path):
    """Is a Unix stream socket listening at path (without connecting,
    which would start an activated service)?"""
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if len(cols) >= 8 and cols[7] == path and \
                    int(cols[3], 16) & 0x10000:
                return True
    return False


def test_socket_activation(daemon_factory, fake, notify):
    d = daemon_factory()
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1")
    d.start(prefix=["systemd-socket-activate", "-l", d.sock, "--fdname=api",
                    "-E", "NOTIFY_SOCKET=" + notify.path,
                    "-E", "ASAN_OPTIONS=" + asan], wait=None)
    # (listening, not only there: the activator binds, then listens)
    wait_until(lambda: unix_listening(d.sock), 5, what="activation socket")
    assert notify.all() == []            # slackd does not run yet
    c = Client(d.sock)                   # the first client starts it
    d.clients.append(c)
    assert c.hello["type"] == "slackd.hello"
    notify.wait("READY", "1")
    c.state("connected", 10)
    fake.emit({"type": "message", "channel": "C1", "text": "activated"})
    m = c.recv_until(lambda m: m.get("type") == "message")
    assert m["text"] == "activated"
    assert "socket from systemd" in d.log_text()
    assert "socket from systemd, not" not in d.log_text()
    d.stop()
    # The socket file belongs to whoever made it: slackd leaves it alone.
    assert os.path.exists(d.sock)


def test_activation_with_wrong_socket_type(daemon_factory, fake, tmp_path):
    d = daemon_factory()
    d.write_config()
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(tmp_path / "dgram.sock"))

    def as_fd3():
        os.dup2(dgram.fileno(), 3)
    # What systemd would pass, by hand: fd 3, LISTEN_FDS, LISTEN_PID.
    p = subprocess.run(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"',
                        "sh", SLACKD, "-d", "-f", d.conf_path],
                       capture_output=True, text=True, timeout=5,
                       preexec_fn=as_fd3, close_fds=False)
    dgram.close()
    assert p.returncode == 1, p.stderr
    assert "not a listening Unix stream socket" in p.stderr


# ---- logging under systemd ------------------------------------------------

def test_journal_stream_gets_priority_prefixes(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    open(d.log_path, "ab").close()
    st = os.stat(d.log_path)
    d.start(args=(), env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev,
                                                       st.st_ino)})
    c = d.client()
    fake.drop()             # a warning: "upstream: ... reconnecting"
    c.state("reconnecting", 10)
    c.state("connected", 10)
    d.stop()
    lines = [l for l in d.log_text().splitlines() if l]
    assert lines and all(re.match(r"^<[0-7]>", l) for l in lines), lines
    assert any(l.startswith("<6>slackd ") for l in lines)
    assert any(l.startswith("<4>upstream: ") for l in lines)
    assert not any(re.match(r"^<\d>\d{4}-\d\d-\d\d", l) for l in lines)


def test_journal_gets_the_fatal_token_error_as_an_error(daemon_factory, fake):
    fake.set_token("xoxb-some-other-token")
    d = daemon_factory()
    d.write_config()
    open(d.log_path, "ab").close()
    st = os.stat(d.log_path)
    d.start(args=(), wait=None,
            env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    d.expected_exit = 78
    assert d.wait_exit(10) == 78
    lines = d.log_text().splitlines()
    fatal = [l for l in lines if "check the token" in l]
    assert fatal and all(l.startswith("<3>fatal: ") for l in fatal), lines
