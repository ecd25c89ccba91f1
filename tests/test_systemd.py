"""slackd as a systemd service, without systemd as PID 1: the units
(systemd-analyze), sd_notify (a test-owned NOTIFY_SOCKET), the watchdog,
socket activation (systemd-socket-activate), reload, journald logging and
access control."""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import SLACKD, SLACKCTL, TOKEN, Client, wait_until

SRCDIR = os.environ.get("TESTS_SRCDIR", os.path.dirname(__file__))
UNITS = ["slackd.service", "slackd.socket", "slackd@.service",
         "slackd@.socket"]


class NotifyListener:
    """What a service manager would see on $NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.messages = []      # (monotonic time, pid, {key: value})
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(
                    4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and \
                        kind == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(cdata[:4], "little")
            fields = dict(line.split("=", 1) for line in
                          data.decode().split("\n") if "=" in line)
            with self.lock:
                self.messages.append((time.monotonic(), pid, fields))

    def close(self):
        self.running = False
        self.sock.close()
        self.thread.join()

    def all(self):
        with self.lock:
            return list(self.messages)

    def with_key(self, key, value=None):
        return [m for m in self.all() if key in m[2] and
                (value is None or m[2][key] == value)]

    def statuses(self):
        return [m[2]["STATUS"] for m in self.all() if "STATUS" in m[2]]

    def wait(self, key, value=None, after=0.0, timeout=10):
        return wait_until(
            lambda: [m for m in self.with_key(key, value) if m[0] > after],
            timeout, what="%s=%s on NOTIFY_SOCKET" % (key, value or "*"))

    def wait_status(self, pattern, after=0.0, timeout=10):
        rx = re.compile(pattern)
        return wait_until(
            lambda: [m for m in self.all() if m[0] > after and
                     rx.search(m[2].get("STATUS", ""))],
            timeout, what="STATUS matching /%s/" % pattern)


@pytest.fixture
def notify(tmp_path):
    n = NotifyListener(str(tmp_path / "notify.sock"))
    yield n
    n.close()


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


def test_no_notify_socket_is_fine(daemon, fake):
    assert daemon.status()["state"] == "connected"


# ---- socket activation ---------------------------------------------------------

def test_socket_activation(daemon_factory, fake, notify):
    d = daemon_factory()
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1")
    d.start(prefix=["systemd-socket-activate", "-l", d.sock, "--fdname=api",
                    "-E", "NOTIFY_SOCKET=" + notify.path,
                    "-E", "ASAN_OPTIONS=" + asan], wait=None)
    wait_until(lambda: os.path.exists(d.sock), 5, what="activation socket")
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


# ---- reload --------------------------------------------------------------------

def rewrite(d, **changes):
    d.settings.update({k: str(v) for k, v in changes.items()})
    os.unlink(d.conf_path)
    d.write_config()


def test_reload_keeps_clients_and_session(daemon_factory, fake, notify):
    d = daemon_factory(log_level="info")
    d.start(args=(), env={"NOTIFY_SOCKET": notify.path})
    c = d.client()
    assert "debug:" not in d.log_text()
    rewrite(d, log_level="debug")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    assert c.request({"id": 1, "type": "ping"})["type"] == "pong"
    c.send({"id": 2, "type": "message", "channel": "C1", "text": "after"})
    assert c.reply(2)["ok"] is True
    assert len(fake.sessions) == 1 and fake.session.open
    st = d.status()
    assert st["session"] == 1 and st["reconnects"] == 0
    d.wait_log("debug: ")      # the new level is in force


def test_reload_applies_limits(daemon_factory, fake):
    d = daemon_factory().start()
    c = d.client()
    line = b'{"id":1,"type":"ping","pad":"' + b"a" * 5000 + b'"}\n'
    c.send_raw(line)
    assert c.reply(1)["type"] == "pong"
    rewrite(d, max_line="4K", queue_max="1")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    c.send_raw(line)
    m = c.recv_until(lambda m: "error" in m)
    assert m["error"]["name"] == "line_too_long"
    fake.hold_acks(True)
    c.send({"id": 2, "type": "message", "channel": "C1", "text": "x"})
    r = c.request({"id": 3, "type": "message", "channel": "C2",
                   "text": "y"})
    assert r["error"]["name"] == "queue_full"


def test_reload_keepalive_settings(daemon_factory, fake):
    d = daemon_factory(ping_interval="10", pong_timeout="5").start()
    rewrite(d, ping_interval="0.3", pong_timeout="0.5")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    n = len(fake.session.pings())
    time.sleep(1.5)       # the new interval applies at once
    assert len(fake.session.pings()) >= n + 3
    assert len(fake.sessions) == 1


def test_reload_invalid_config_keeps_old(daemon_factory, fake, notify):
    d = daemon_factory()
    d.start(env={"NOTIFY_SOCKET": notify.path})
    c = d.client()
    with open(d.conf_path, "a") as f:
        f.write("queue_max = lots\nnonsense\n")
    t = time.monotonic()
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed")
    notify.wait("READY", "1", after=t)
    log = d.log_text()
    assert "bad value for queue_max" in log
    assert "keeping the one in force" in log
    assert c.request({"id": 1, "type": "ping"})["type"] == "pong"
    assert d.status()["state"] == "connected"
    n = len(fake.session.pings())
    time.sleep(1.5)       # the old ping_interval (1 s) is still in force
    assert len(fake.session.pings()) > n


def test_reload_token_change_reconnects(daemon_factory, fake):
    new = "xoxb-test-NewTokenAfterRotation"
    d = daemon_factory().start()
    d.secrets.append(new)
    c = d.client()
    fake.set_token(new)
    with open(d.token_path, "w") as f:
        f.write(new + "\n")
    d.signal(signal.SIGHUP)
    c.state("reconnecting", 5)
    c.state("connected", 5)
    last = [x for x in fake.api_calls if x["method"] == "rtm.connect"][-1]
    assert last["headers"]["authorization"] == "Bearer " + new
    assert len(fake.sessions) == 2
    assert fake.sessions[0].close_code_received == 1000


def test_reload_unusable_token_keeps_old(daemon_factory, fake):
    d = daemon_factory().start()
    os.chmod(d.token_path, 0o644)
    d.signal(signal.SIGHUP)
    d.wait_log("reload failed: no usable token")
    assert d.status()["state"] == "connected"
    os.chmod(d.token_path, 0o600)


def test_reload_keeps_environment_token(daemon_factory, fake):
    d = daemon_factory(token_file=None)
    d.start(env={"SLACK_API_TOKEN": TOKEN})
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    fake.drop()
    d.wait_state("connected", 10)
    assert len(fake.sessions) == 2


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


# ---- access control --------------------------------------------------------

@pytest.fixture
def open_dir():
    """A directory other users can reach (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="slackd-test-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(*args):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                           "--clear-groups"] + list(args),
                          capture_output=True, text=True, timeout=10)


needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root to act as another user")


@needs_root
def test_allow_users_refuses_others(daemon_factory, fake, open_dir):
    sock = os.path.join(open_dir, "s.sock")
    d = daemon_factory(socket=sock, socket_mode="0666", allow_users="root")
    d.sock = sock
    d.start()
    p = as_nobody(SLACKCTL, "-s", sock, "status")
    assert p.returncode == 3
    assert "uid 65534 is not allowed" in p.stderr
    assert d.status()["clients_refused"] == 1
    assert "refused a client: uid 65534" in d.log_text()
    p = subprocess.run([SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 0


@needs_root
def test_allow_groups_admits_members(daemon_factory, fake, open_dir):
    sock = os.path.join(open_dir, "s.sock")
    d = daemon_factory(socket=sock, socket_mode="0666",
                       allow_groups="nogroup")
    d.sock = sock
    d.start()
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                        "--clear-groups", SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr           # primary group nogroup
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=1",
                        "--groups=65534", SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr           # supplementary group
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=1",
                        "--clear-groups", SLACKCTL, "-s", sock, "status"],
                       capture_output=True, text=True)
    assert p.returncode == 3 and "not allowed" in p.stderr


@needs_root
def test_reload_changes_access_rules(daemon_factory, fake, open_dir):
    sock = os.path.join(open_dir, "s.sock")
    d = daemon_factory(socket=sock, socket_mode="0666")
    d.sock = sock
    d.start()
    assert as_nobody(SLACKCTL, "-s", sock, "status").returncode == 0
    rewrite(d, allow_users="root")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    p = as_nobody(SLACKCTL, "-s", sock, "status")
    assert p.returncode == 3 and "not allowed" in p.stderr


@needs_root
def test_socket_group_applied(daemon_factory, fake):
    d = daemon_factory(socket_group="nogroup").start()
    st = os.stat(d.sock)
    assert st.st_gid == 65534
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_unknown_user_in_config(daemon_factory, fake):
    d = daemon_factory(allow_users="root no-such-user-here")
    d.write_config()
    p = subprocess.run([SLACKD, "-n", "-f", d.conf_path],
                       capture_output=True, text=True)
    assert p.returncode == 78
    assert 'allow_users: there is no user "no-such-user-here"' in p.stderr
