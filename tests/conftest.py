"""Integration test harness for slackd.

Each test gets a fresh fake Slack (tests/fakeslack.py, an independent
implementation on Debian's python3-websockets) and starts slackd on a private
socket against it.  Helpers drive slackd with raw socket clients and with
slackctl, and every test ends by checking what a user would care about: the
daemon exited as expected, no sanitizer report, and the Slack token appears
in nothing slackd or slackctl wrote.

Environment (set by `make check`): SLACKD, SLACKCTL (built binaries),
TESTS_SRCDIR.  Run by hand:  make check TESTS=tests/test_basic.py
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakeslack import FakeSlack  # noqa: E402

SLACKD = os.environ.get("SLACKD", os.path.abspath("slackd"))
SLACKCTL = os.environ.get("SLACKCTL", os.path.abspath("slackctl"))

# Looks like a bot token, is not one.  The suite fails if this string shows up
# in any log, reply or slackctl output.
TOKEN = "xoxb-test-Zq7Kx2SECRETvalue"
# Socket Mode's app-level token, likewise never to be seen.
APP_TOKEN = "xapp-1-A0FAKE-test-Pw4SECRETapp"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "Sanitizer:DEADLYSIGNAL",
                     "WARNING: ThreadSanitizer")

# SLACKD_WRAPPER runs the daemon under a tool (valgrind); everything it
# does is then slower by TEST_TIMEOUT_SCALE.
WRAPPER = shlex.split(os.environ.get("SLACKD_WRAPPER", ""))
SCALE = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))

# Fast timings so that reconnect tests take seconds, not minutes.
FAST = {
    "ping_interval": "1",
    "pong_timeout": "1",
    "hello_timeout": "2",
    "connect_timeout": "3",
    "reconnect_min": "0.1",
    "reconnect_max": "0.5",
    "rtm_connect_interval": "0",
}
for _k in ("ping_interval", "pong_timeout", "hello_timeout",
           "connect_timeout"):
    FAST[_k] = "%g" % (float(FAST[_k]) * SCALE)


def sanitized(pid):
    """Is this process built with ASan?  (Its memory figures mean little:
    shadow memory and the quarantine of freed blocks.)"""
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def run(*args, env=None, timeout=10):
    """Run a command (slackd -n, slackctl, ...) without the token variables
    of this environment; -> CompletedProcess with text output."""
    e = dict(os.environ)
    e.pop("SLACK_API_TOKEN", None)
    e.pop("CREDENTIALS_DIRECTORY", None)
    if env:
        e.update(env)
    return subprocess.run(list(args), capture_output=True, text=True,
                          timeout=timeout, env=e)


class Client:
    """A raw client of the local socket: JSON lines in and out."""

    def __init__(self, path, read_hello=True, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.lines = []        # every line received, raw
        self.pending = []      # parsed, not yet consumed
        self.eof = False
        self.hello = self.recv() if read_hello else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj, separators=(",", ":")) + "\n")

    def _fill(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            text = line.decode("utf-8")
            self.lines.append(text)
            self.pending.append(json.loads(text))
        return True

    def recv(self, timeout=10):
        """The next message (parsed), or AssertionError on timeout/EOF."""
        deadline = time.monotonic() + timeout * SCALE
        while not self.pending:
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                raise AssertionError("no message within %.1fs (eof=%s)"
                                     % (timeout, self.eof))
            self._fill(left)
        return self.pending.pop(0)

    def recv_until(self, pred, timeout=10, what="message"):
        """Skip messages until pred(msg); return that one."""
        deadline = time.monotonic() + timeout * SCALE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %.1fs" % (what, timeout))
            msg = self.recv(left)
            if pred(msg):
                return msg

    def reply(self, msg_id, timeout=10):
        return self.recv_until(lambda m: m.get("reply_to") == msg_id,
                               timeout, "reply to %r" % (msg_id,))

    def request(self, obj, timeout=10):
        self.send(obj)
        return self.reply(obj.get("id"), timeout)

    def state(self, state, timeout=10):
        return self.recv_until(
            lambda m: m.get("type") == "slackd.state"
            and m.get("state") == state, timeout, "slackd.state " + state)

    def drain(self, quiet=0.2):
        """Collect whatever arrives until quiet seconds pass."""
        out = []
        while True:
            try:
                out.append(self.recv(quiet))
            except AssertionError:
                return out

    def closed_by_peer(self, timeout=5):
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._fill(deadline - time.monotonic())
        return self.eof


class TcpProxy:
    """A TCP proxy to a local port, on 127.0.0.1 and ::1 (so that
    "localhost" works): "pass" forwards, "refuse" is no listener at all,
    "junk" answers every connection with bytes that are not TLS; cut()
    also ends every connection through it (a link that drops)."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.mode = "pass"
        self.port = None
        self.listeners = []
        self.pipes = []
        self.lock = threading.Lock()
        self._listen()

    def _listen(self):
        for family, addr in ((socket.AF_INET, "127.0.0.1"),
                             (socket.AF_INET6, "::1")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, self.port or 0))
            self.port = s.getsockname()[1]
            s.listen(16)
            self.listeners.append(s)
            threading.Thread(target=self._accept, args=(s,),
                             daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            if self.mode == "junk":
                try:
                    c.sendall(b"HTTP/1.1 200 OK\r\n\r\nthis is not TLS\r\n")
                finally:
                    c.close()
                continue
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pipes += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def set(self, mode):
        with self.lock:
            if mode == "refuse":
                for s in self.listeners:
                    # shutdown() wakes the accept() blocked on it; a
                    # close() alone would leave the socket listening.
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
                self.listeners = []
            elif not self.listeners:
                self._listen()
            self.mode = mode

    def cut(self):
        """Refuse, and end the connections through it."""
        self.set("refuse")
        with self.lock:
            pipes, self.pipes = self.pipes, []
        for s in pipes:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()


class Daemon:
    """One slackd process on a private socket."""

    def __init__(self, tmp, fake, token=TOKEN, app_token=None, **conf):
        self.tmp = str(tmp)
        self.fake = fake
        self.token = token
        self.app_token = app_token
        self.app_token_path = os.path.join(self.tmp, "app.token")
        self.sock = os.path.join(self.tmp, "slackd.sock")
        self.conf_path = os.path.join(self.tmp, "slackd.conf")
        self.token_path = os.path.join(self.tmp, "token")
        self.log_path = os.path.join(self.tmp, "slackd.log")
        self.proc = None
        self.clients = []
        self.outputs = []      # everything slackctl printed
        self.secrets = [TOKEN, APP_TOKEN]  # in nothing slackd wrote
        self.expected_exit = 0
        self.settings = dict(FAST)
        if fake is not None:
            self.settings["api_url"] = fake.api_url
        self.settings["socket"] = self.sock
        self.settings["token_file"] = self.token_path
        if app_token is not None:
            self.settings["app_token_file"] = self.app_token_path
        self.settings.update({k: None if v is None else str(v)
                              for k, v in conf.items()})

    def write_config(self):
        with open(self.conf_path, "w") as f:
            for k, v in self.settings.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))
        if self.token is not None and not os.path.exists(self.token_path):
            fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, (self.token + "\n").encode())
            os.close(fd)
        if self.app_token is not None and \
                not os.path.exists(self.app_token_path):
            fd = os.open(self.app_token_path, os.O_WRONLY | os.O_CREAT,
                         0o600)
            os.write(fd, (self.app_token + "\n").encode())
            os.close(fd)

    def rewrite_config(self, **changes):
        """Change settings and write the file anew (for a reload)."""
        self.settings.update({k: str(v) for k, v in changes.items()})
        os.unlink(self.conf_path)
        self.write_config()

    def start(self, args=("-v",), env=None, wait="connected", timeout=10,
              prefix=()):
        """Run slackd (after the command prefix, e.g. a socket activator)
        and wait for its socket, or also for the Slack connection.  env
        adds to this environment; a value of None removes the variable."""
        self.write_config()
        e = dict(os.environ)
        e.pop("SLACK_API_TOKEN", None)
        e.pop("SLACK_APP_TOKEN", None)
        e.pop("CREDENTIALS_DIRECTORY", None)
        e.pop("JOURNAL_STREAM", None)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        self.log = open(self.log_path, "ab")
        timeout *= SCALE
        self.proc = subprocess.Popen(
            list(prefix) + WRAPPER + [SLACKD, "-d", "-f", self.conf_path] +
            list(args),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            env=e)
        if wait is None:
            return self
        wait_until(lambda: self._socket_up() or self.proc.poll() is not None,
                   timeout, what="slackd's socket")
        if self.proc.poll() is not None:
            raise AssertionError("slackd exited with %d:\n%s"
                                 % (self.proc.returncode, self.log_text()))
        if wait == "connected":
            self.wait_state("connected", timeout)
        return self

    def _socket_up(self):
        if not os.path.exists(self.sock):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def status(self):
        c = Client(self.sock)
        try:
            return c.request({"id": 1, "type": "slackd.status"})
        finally:
            c.close()
            self.outputs.extend(c.lines)

    def wait_state(self, state, timeout=10):
        timeout *= SCALE

        def check():
            if self.proc.poll() is not None:
                raise AssertionError("slackd exited with %d:\n%s" % (
                    self.proc.returncode, self.log_text()[-3000:]))
            try:
                return self.status()["state"] == state
            except OSError:
                return False
        return wait_until(check, timeout, interval=0.05,
                          what="state " + state)

    def client(self, **kw):
        c = Client(self.sock, **kw)
        self.clients.append(c)
        return c

    def ctl(self, *args, input=None, timeout=30, env=None):
        e = dict(os.environ)
        e.pop("SLACKD_SOCKET", None)
        if env:
            e.update(env)
        p = subprocess.run([SLACKCTL, "-s", self.sock] + list(args),
                           input=input, capture_output=True, text=True,
                           timeout=timeout, env=e)
        self.outputs.append(p.stdout)
        self.outputs.append(p.stderr)
        return p

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log_text()), timeout,
                          what="log line /%s/" % pattern)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=15):
        timeout *= SCALE
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("slackd did not exit within %ss" % timeout)

    def stop(self, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def finish(self):
        """Teardown checks shared by every test."""
        rc = self.stop()
        for c in self.clients:
            c.close()
            self.outputs.extend(c.lines)
        if hasattr(self, "log"):
            self.log.close()
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, "sanitizer report:\n" + text
        for secret in self.secrets:
            assert secret not in text, "token in slackd's log"
            for out in self.outputs:
                assert secret not in out, "token in client output"
        if rc is not None and self.expected_exit is not None:
            assert rc == self.expected_exit, \
                "slackd exited %s, expected %s; log:\n%s" % (
                    rc, self.expected_exit, text[-4000:])


@pytest.fixture
def fake():
    f = FakeSlack(token=TOKEN).start()
    yield f
    f.stop()


def _daemons(request, tmp_path, fake, prefix, **defaults):
    """Make daemons in tmp_path on demand; check each when the test ends
    (and show the end of each one's log if the test failed)."""
    made = []

    def make(fake_=fake, **conf):
        for k, v in defaults.items():
            conf.setdefault(k, v)
        d = Daemon(tmp_path / ("%s%d" % (prefix, len(made))), fake_, **conf)
        os.makedirs(d.tmp, exist_ok=True)
        made.append(d)
        return d
    yield make
    errors = []
    failed = getattr(request.node, "rep_call", None)
    for d in made:
        try:
            d.finish()
        except AssertionError as e:
            errors.append(str(e))
            continue
        if failed is not None and failed.failed:
            tail = [l for l in d.log_text().splitlines()
                    if "debug: client " not in l][-40:]
            sys.stderr.write("---- the end of %s's log\n%s\n" % (
                os.path.basename(d.tmp), "\n".join(tail)))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def daemon_factory(request, tmp_path, fake):
    yield from _daemons(request, tmp_path, fake, "d")


@pytest.fixture
def daemon(daemon_factory):
    """A slackd connected to the fake."""
    return daemon_factory().start()


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


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A test CA with a leaf for localhost, and an unrelated second CA."""
    d = str(tmp_path_factory.mktemp("pki"))
    for ca in ("ca", "otherca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=slackd test %s" % ca, "-keyout", ca + ".key",
                "-out", ca + ".pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "leaf.key", "-out", "leaf.csr", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf",
            "-out", "leaf.pem", cwd=d)
    # Signed by the right CA, but for another name.
    with open(os.path.join(d, "wrong.cnf"), "w") as f:
        f.write("subjectAltName=DNS:wrong.example\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-extfile",
            "wrong.cnf", "-out", "wrong.pem", cwd=d)
    return {k: os.path.join(d, v) for k, v in {
        "ca": "ca.pem", "otherca": "otherca.pem", "cert": "leaf.pem",
        "key": "leaf.key", "wrongname": "wrong.pem"}.items()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test (rep_call: did it fail?)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_sessionfinish(session, exitstatus):
    """The suite-wide secrecy check: no file any test left behind -- logs,
    configs, captured output -- holds the token, except the token files."""
    base = session.config._tmp_path_factory.getbasetemp() \
        if hasattr(session.config, "_tmp_path_factory") else None
    if base is None or not os.path.isdir(str(base)):
        return
    leaks = []
    for root, dirs, files in os.walk(str(base)):
        for name in files:
            if name in ("token", "slack-token", "slack-app-token") or \
                    name.endswith(".token"):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
                    if TOKEN.encode() in data or APP_TOKEN.encode() in data:
                        leaks.append(path)
            except OSError:
                pass
    if leaks:
        session.exitstatus = 1
        sys.stderr.write("\nTOKEN LEAK: the test token is in:\n  %s\n"
                         % "\n  ".join(leaks))


@pytest.fixture
def sm_fake():
    """A fake Slack for Socket Mode (it serves RTM too)."""
    f = FakeSlack(token=TOKEN, app_token=APP_TOKEN)
    f.sm_retry_after = 1.5
    f.sm_ping_interval = 1.0
    f.start()
    yield f
    f.stop()


@pytest.fixture
def sm_daemon_factory(request, tmp_path, sm_fake):
    """Daemons in Socket Mode against sm_fake (the app token in a file)."""
    yield from _daemons(request, tmp_path, sm_fake, "sm",
                        app_token=APP_TOKEN)


@pytest.fixture
def sm_fake_tls(pki):
    """A fake Slack over TLS that serves Socket Mode too."""
    f = FakeSlack(token=TOKEN, app_token=APP_TOKEN, certfile=pki["cert"],
                  keyfile=pki["key"]).start()
    yield f
    f.stop()


@pytest.fixture
def fake_tls(pki):
    f = FakeSlack(token=TOKEN, certfile=pki["cert"],
                  keyfile=pki["key"]).start()
    yield f
    f.stop()
