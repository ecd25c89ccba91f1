"""NATS: events to JetStream, requests over NATS (nats_url).

Every test runs a real nats-server (JetStream in a temporary directory),
started here; they are skipped, with a message saying so, only where
nats-server is not installed.  The test side speaks the NATS protocol
itself (NatsClient below, plain sockets), so what slackd's libnats does is
checked by an independent implementation.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import SCALE, SLACKCTL, wait_until

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server")
    else None)
pytestmark = pytest.mark.skipif(
    NATS_SERVER is None,
    reason="nats-server is not installed (Debian: apt-get install "
    "nats-server; scripts/deps installs it): the NATS tests need a real "
    "server")

TEAM = "T0FAKE"
PREFIX = "slack." + TEAM
STREAM = "SLACK_" + TEAM
PASSWORD = "nats-pw-Q9SECRETvalue"
WAIT = 20 * SCALE  # s: generous, for a loaded machine


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class NatsServer:
    """One nats-server with JetStream on a loopback port; restartable with
    its store kept."""

    def __init__(self, tmp, users=None, tls=None):
        self.tmp = str(tmp)
        os.makedirs(self.tmp, exist_ok=True)
        self.port = free_port()
        self.store = os.path.join(self.tmp, "js")
        self.log_path = os.path.join(self.tmp, "nats-server.log")
        self.conf = os.path.join(self.tmp, "nats-server.conf")
        self.users = users
        self.proc = None
        with open(self.conf, "w") as f:
            f.write("listen: 127.0.0.1:%d\n" % self.port)
            f.write("jetstream { store_dir: %s }\n" % json.dumps(self.store))
            if tls:
                f.write("tls { cert_file: %s, key_file: %s }\n" % (
                    json.dumps(tls["cert"]), json.dumps(tls["key"])))
            if users:
                f.write("authorization { users: [\n")
                for u in users:
                    f.write("  %s\n" % json.dumps(u))
                f.write("] }\n")

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    @property
    def tls_url(self):
        return "tls://127.0.0.1:%d" % self.port

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-c", self.conf], stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=self.log)

        def up():
            assert self.proc.poll() is None, self.log_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, what="nats-server")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if hasattr(self, "log"):
            self.log.close()

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class NatsClient:
    """The NATS client protocol, just enough: PUB/HPUB, SUB, MSG/HMSG,
    request/reply, and JetStream's STREAM.MSG.GET and STREAM.INFO."""

    def __init__(self, url, user=None, password=None, login=None):
        """login(info), if given, returns more CONNECT fields from the
        server's INFO (a signed nonce, a JWT)."""
        host, port = url.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)), 5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sid = 0
        self.inbox_n = 0
        info = self._line()
        assert info.startswith(b"INFO "), info
        conn = {"verbose": False, "pedantic": False, "headers": True,
                "no_responders": True, "protocol": 1, "lang": "python",
                "version": "test"}
        if user is not None:
            conn["user"] = user
            conn["pass"] = password
        if login is not None:
            conn.update(login(json.loads(info[5:])))
        self.sock.sendall(b"CONNECT " + json.dumps(conn).encode() +
                          b"\r\nPING\r\n")
        while True:
            line = self._line()
            if line == b"PONG":
                break
            assert not line.startswith(b"-ERR"), line

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("NATS closed the connection")
        self.buf += data

    def _line(self, timeout=5):
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def sub(self, subject):
        self.sid += 1
        self.sock.sendall(b"SUB %s %d\r\n" % (subject.encode(), self.sid))
        return self.sid

    def pub(self, subject, data, reply=None):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(b"PUB %s %s%d\r\n%s\r\n" % (
            subject.encode(), (reply.encode() + b" ") if reply else b"",
            len(data), data))

    def next_msg(self, timeout=5):
        """(subject, headers dict, data) of the next message."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(max(0.01, deadline - time.monotonic()))
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            if line in (b"PONG", b"+OK"):
                continue
            assert not line.startswith(b"-ERR"), line
            parts = line.split()
            if parts[0] == b"MSG":
                data = self._bytes(int(parts[-1]))
                return parts[1].decode(), {}, data
            if parts[0] == b"HMSG":
                hlen, tlen = int(parts[-2]), int(parts[-1])
                raw = self._bytes(tlen)
                return (parts[1].decode(), self._headers(raw[:hlen]),
                        raw[hlen:])

    @staticmethod
    def _headers(raw):
        lines = raw.decode().split("\r\n")
        h = {"_status": lines[0]}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                h[k.strip()] = v.strip()
        return h

    def request(self, subject, data, timeout=10):
        self.inbox_n += 1
        inbox = "_INBOX.test.%d.%d" % (os.getpid(), self.inbox_n)
        self.sub(inbox)
        self.pub(subject, data, reply=inbox)
        subj, h, body = self.next_msg(timeout)
        assert subj == inbox, (subj, body)
        return h, body

    def stream_info(self, stream):
        _, body = self.request("$JS.API.STREAM.INFO." + stream, b"")
        return json.loads(body)

    def stream_msg(self, stream, seq):
        """The stored message seq: (subject, headers, data) or None."""
        _, body = self.request("$JS.API.STREAM.MSG.GET." + stream,
                               json.dumps({"seq": seq}))
        r = json.loads(body)
        if "error" in r:
            return None
        m = r["message"]
        h = {}
        if m.get("hdrs"):
            h = self._headers(base64.b64decode(m["hdrs"]))
        return m["subject"], h, base64.b64decode(m.get("data", ""))

    def stream_all(self, stream):
        info = self.stream_info(stream)
        st = info["state"]
        out = []
        for seq in range(st["first_seq"], st["last_seq"] + 1):
            m = self.stream_msg(stream, seq)
            if m is not None:
                out.append(m)
        return out


@pytest.fixture
def nats(tmp_path):
    d = tmp_path / "nats"
    d.mkdir()
    s = NatsServer(d).start()
    yield s
    s.stop()


def nats_daemon(daemon_factory, server, **conf):
    conf.setdefault("nats_url", server.url)
    return daemon_factory(**conf)


def message(i, channel="C024BE91L", text=None):
    return {"type": "message", "channel": channel, "user": "U1",
            "text": text if text is not None else "hello %d" % i,
            "ts": "1700000000.%06d" % i}


def secret_file(path, data, mode=0o600):
    """A file only its owner may read (as slackd wants its secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data.encode() if isinstance(data, str) else data)
    os.close(fd)
    return path


def stream_count(nc, stream=STREAM):
    try:
        return nc.stream_info(stream)["state"]["messages"]
    except (KeyError, ValueError):
        return -1


def wait_stream(nc, n, timeout=15, stream=STREAM):
    wait_until(lambda: stream_count(nc, stream) >= n, timeout * SCALE,
               what="%d messages in the stream" % n)


def test_events_in_stream_byte_identical(daemon_factory, fake, nats):
    d = nats_daemon(daemon_factory, nats).start()
    d.wait_log("publishing to the stream " + STREAM)
    c = d.client()
    nc = NatsClient(nats.url)
    live = NatsClient(nats.url)
    live.sub(PREFIX + ".event.>")
    events = [message(1), message(2, channel="D0DM"),
              {"type": "user_typing", "channel": "C024BE91L", "user": "U1"},
              {"type": "presence_change", "user": "U1",
               "presence": "away"},
              {"type": "reaction_added", "user": "U1",
               "item": {"type": "message", "channel": "C1", "ts": "1.2"}},
              {"type": "weird.type*>", "channel": "C 9"}]
    fake.emit_many(events)
    lines = []
    for _ in events:
        m = c.recv_until(lambda m: m.get("type") != "slackd.state")
        lines.append(m)
    local = c.lines[-len(events):]
    wait_stream(nc, len(events) + 1)
    stored = nc.stream_all(STREAM)
    # RTM's hello came first (before the local client connected).
    assert stored[0][0] == PREFIX + ".event.hello"
    stored = stored[1:]
    assert len(stored) == len(events)
    subjects = [s for s, _, _ in stored]
    assert subjects == [
        PREFIX + ".event.message.C024BE91L",
        PREFIX + ".event.message.D0DM",
        PREFIX + ".event.user_typing.C024BE91L",
        PREFIX + ".event.presence_change",
        PREFIX + ".event.reaction_added",
        PREFIX + ".event.weird_type__.C_9",
    ]
    for (subj, h, data), line in zip(stored, local):
        assert data == (line + "\n").encode(), (data, line)
        ev = json.loads(data)
        if ev.get("type") == "message":
            # a message's identity: its channel and ts
            assert h["Nats-Msg-Id"] == "message:%s:%s" % (ev["channel"],
                                                          ev["ts"])
        else:  # anything else: a SHA-256 of its bytes
            assert len(h["Nats-Msg-Id"]) == 64, h
    # Slackd-Seq: the cursor "<run>:<n>" local clients see as slackd_seq
    run = d.status()["seq"].split(":")[0]
    assert all(h["Slackd-Seq"].startswith(run + ":") for _, h, _ in stored)
    seqs = [int(h["Slackd-Seq"].split(":")[1]) for _, h, _ in stored]
    assert seqs == list(range(seqs[0], seqs[0] + len(events)))
    # Live subscribers on the subjects get the same bytes.
    for i in range(len(events)):
        subj, h, data = live.next_msg()
        assert subj == subjects[i] and data == stored[i][2]
    info = nc.stream_info(STREAM)
    cfg = info["config"]
    assert cfg["subjects"] == [PREFIX + ".event.>"]
    assert cfg["max_age"] == 7 * 86400 * 10**9
    assert cfg["max_bytes"] == 1 << 30
    assert cfg["storage"] == "file"
    st = d.status()
    n = st["nats"]
    assert n["state"] == "connected" and n["server"] == nats.url
    assert n["stream"] == STREAM and n["prefix"] == PREFIX
    wait_until(lambda: d.status()["nats"]["published"] == len(events) + 1,
               WAIT, what="all acks")
    n = d.status()["nats"]
    assert n["pending_acks"] == 0 and n["backlog"] == 0
    assert n["gaps"] == 0 and n["last_error"] is None
    out = d.ctl("status")
    assert out.returncode == 0, out.stderr
    assert "nats:       connected to %s, stream %s\n" % (nats.url, STREAM) \
        in out.stdout, out.stdout
    assert "%d published, 0 pending acks, 0 kept" % (len(events) + 1) \
        in out.stdout, out.stdout
    nc.close()
    live.close()


def test_existing_stream_used_as_it_is(daemon_factory, fake, nats):
    nc = NatsClient(nats.url)
    cfg = {"name": "MINE", "subjects": ["ops.slack.>"], "storage": "memory",
           "max_age": 3600 * 10**9}
    _, body = nc.request("$JS.API.STREAM.CREATE.MINE", json.dumps(cfg))
    assert "error" not in json.loads(body), body
    d = nats_daemon(daemon_factory, nats, nats_prefix="ops.slack",
                    nats_stream="MINE").start()
    d.wait_log("publishing to the stream MINE as ops.slack.event")
    fake.emit(message(1))
    wait_stream(nc, 2, stream="MINE")
    subj, _, data = nc.stream_msg("MINE", 2)
    assert subj == "ops.slack.event.message.C024BE91L"
    info = nc.stream_info("MINE")["config"]
    assert info["storage"] == "memory" and info["max_age"] == 3600 * 10**9
    assert "created the stream" not in d.log_text()
    nc.close()


def test_request_reply_status_and_send(daemon_factory, fake, nats):
    d = nats_daemon(daemon_factory, nats).start()
    d.wait_log("requests on " + PREFIX + ".request")
    nc = NatsClient(nats.url)
    # status, with and without an id
    _, body = nc.request(PREFIX + ".request",
                         json.dumps({"type": "slackd.status", "id": 7}))
    st = json.loads(body)
    assert st["type"] == "slackd.status" and st["ok"] is True
    assert st["reply_to"] == 7 and st["state"] == "connected"
    assert st["nats"]["requests"] == 1
    _, body = nc.request(PREFIX + ".request", '{"type":"slackd.status"}')
    st = json.loads(body)
    assert st["ok"] is True and "reply_to" not in st
    # a message, answered as Slack answers a local client
    _, body = nc.request(PREFIX + ".request", json.dumps(
        {"type": "message", "channel": "C024BE91L", "text": "from NATS",
         "id": 41}))
    r = json.loads(body)
    assert r["ok"] is True and r["reply_to"] == 41 and r["ts"], r
    sent = fake.session.frames("message")
    assert sent[-1]["text"] == "from NATS"
    # without an id: still a reply, without reply_to
    _, body = nc.request(PREFIX + ".request", json.dumps(
        {"type": "message", "channel": "C024BE91L", "text": "no id"}))
    r = json.loads(body)
    assert r["ok"] is True and "reply_to" not in r
    # a bad request gets the local socket's error
    _, body = nc.request(PREFIX + ".request", "not json")
    r = json.loads(body)
    assert r["type"] == "slackd.error" and r["error"]["name"]
    _, body = nc.request(PREFIX + ".request",
                         json.dumps({"type": "nope", "id": 3}))
    r = json.loads(body)
    assert r["ok"] is False and r["reply_to"] == 3
    assert r["error"]["name"] == "unknown_type"
    # the same through a local client, for comparison
    c = d.client()
    local = c.request({"type": "nope", "id": 3})
    assert local == r
    nc.close()


def test_nats_restart_publishes_everything_once(daemon_factory, fake, nats):
    d = nats_daemon(daemon_factory, nats).start()
    d.wait_log("publishing to the stream")
    nc = NatsClient(nats.url)
    fake.emit_many([message(i) for i in range(1, 51)])
    wait_stream(nc, 51)
    nc.close()
    nats.stop()
    fake.emit_many([message(i) for i in range(51, 151)])
    wait_until(lambda: d.status()["nats"]["state"] == "disconnected", WAIT,
               what="slackd to see NATS gone")
    fake.emit_many([message(i) for i in range(151, 201)])
    wait_until(lambda: d.status()["events_received"] >= 200, WAIT,
               what="the events reach slackd")
    n = d.status()["nats"]
    assert n["backlog"] >= 100 and n["last_error"]
    nats.start()
    nc = NatsClient(nats.url)
    wait_stream(nc, 201, timeout=30)
    wait_until(lambda: d.status()["nats"]["backlog"] == 0, WAIT,
               what="the backlog emptied")
    time.sleep(1)
    stored = nc.stream_all(STREAM)
    texts = [json.loads(data)["text"] for _, _, data in stored[1:]]
    assert texts == ["hello %d" % i for i in range(1, 201)], texts
    assert d.status()["nats"]["gaps"] == 0
    nc.close()


def test_nats_restarted_while_events_flow(daemon_factory, fake, nats):
    """Events keep coming, one every few milliseconds, while NATS is
    stopped (some of them in flight) and started again: every one is in
    the stream once, in order."""
    d = nats_daemon(daemon_factory, nats).start()
    d.wait_log("publishing to the stream")
    total = 600
    done = threading.Event()

    def flow():
        for i in range(1, total + 1):
            fake.emit(message(i), wait=False)
            time.sleep(0.004)
        done.set()
    t = threading.Thread(target=flow)
    t.start()
    try:
        wait_until(lambda: d.status()["nats"]["published"] >= 100, WAIT,
                   what="some events published")
        nats.stop()
        time.sleep(0.8)
        nats.start()
    finally:
        t.join(60)
    assert done.is_set()
    wait_until(lambda: d.status()["events_received"] >= total + 1, WAIT,
               what="every event reaches slackd")
    nc = NatsClient(nats.url)
    wait_stream(nc, total + 1, timeout=30)
    wait_until(lambda: d.status()["nats"]["backlog"] == 0, WAIT,
               what="the backlog emptied")
    time.sleep(1)
    stored = nc.stream_all(STREAM)
    texts = [json.loads(data)["text"] for _, _, data in stored[1:]]
    assert texts == ["hello %d" % i for i in range(1, total + 1)], \
        [t for t in texts if t != "hello %d" % (texts.index(t) + 1)][:5]
    seqs = [int(h["Slackd-Seq"].split(":")[1]) for _, h, _ in stored]
    assert seqs == list(range(1, total + 2))
    n = d.status()["nats"]
    assert n["gaps"] == 0 and n["last_error"]
    nc.close()


def test_nats_down_overflow_one_gap(daemon_factory, fake, nats):
    d = nats_daemon(daemon_factory, nats, nats_backlog="16K").start()
    d.wait_log("publishing to the stream")
    nc = NatsClient(nats.url)
    fake.emit_many([message(i) for i in range(1, 11)])
    wait_stream(nc, 11)
    nc.close()
    nats.stop()
    wait_until(lambda: d.status()["nats"]["state"] == "disconnected", WAIT,
               what="slackd to see NATS gone")
    pad = "x" * 400
    fake.emit_many([message(i, text="%d %s" % (i, pad))
                    for i in range(11, 211)])
    wait_until(lambda: d.status()["events_received"] >= 210, WAIT,
               what="the events reach slackd")
    n = d.status()["nats"]
    assert n["gaps"] == 1 and n["events_lost"] > 0
    assert n["backlog_bytes"] <= 16384
    lost = n["events_lost"]
    nats.start()
    nc = NatsClient(nats.url)
    wait_until(lambda: d.status()["nats"]["backlog"] == 0, 2 * WAIT,
               what="the backlog emptied")
    stored = nc.stream_all(STREAM)
    bodies = [json.loads(data) for _, _, data in stored[1:]]
    gaps = [b for b in bodies if b.get("type") == "slackd.gap"]
    assert len(gaps) == 1, gaps
    g = gaps[0]
    assert g["events"] == lost and g["last_seq"] - g["first_seq"] + 1 == lost
    assert stored[11][0] == PREFIX + ".event.slackd_gap"
    kept = [b for b in bodies[11:]]
    assert len(kept) == 200 - lost
    assert [int(b["text"].split()[0]) for b in kept] == \
        list(range(11 + lost, 211))
    assert d.status()["nats"]["gaps"] == 1
    nc.close()


def test_nats_unreachable_at_start(daemon_factory, fake, tmp_path):
    server = NatsServer(tmp_path / "late")
    d = nats_daemon(daemon_factory, server).start()
    c = d.client()
    fake.emit(message(1))
    c.recv_until(lambda m: m.get("type") == "message")
    n = d.status()["nats"]
    assert n["state"] in ("connecting", "disconnected")
    assert n["backlog"] == 2  # RTM's hello and the message
    server.start()
    try:
        nc = NatsClient(server.url)
        wait_stream(nc, 2, timeout=20)
        nc.close()
    finally:
        server.stop()


def test_credentials_checked_and_never_shown(daemon_factory, fake, tmp_path):
    server = NatsServer(tmp_path / "auth", users=[
        {"user": "slackd", "password": PASSWORD},
        {"user": "reader", "password": "reader-pw",
         "permissions": {"publish": ["$JS.API.STREAM.INFO.>",
                                     "$JS.API.STREAM.MSG.GET.>"],
                         "subscribe": ["_INBOX.>", PREFIX + ".event.>"]}}])
    server.start()
    try:
        pw = os.path.join(str(tmp_path), "nats.pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw, 0o644)
        d = nats_daemon(daemon_factory, server, nats_user="slackd",
                        nats_password_file=pw)
        d.secrets.append(PASSWORD)
        d.expected_exit = None
        d.start(wait=None)
        assert d.wait_exit() == 78
        assert "nats_password_file %s is accessible by group or others" \
            % pw in d.log_text()
        # an NKey file without its public key is refused at start too
        nk = os.path.join(str(tmp_path), "nats.nk")
        fd = os.open(nk, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"SUAKEXAMPLESEEDQ9SECRETSEED\n")
        os.close(fd)
        d.secrets.append("SUAKEXAMPLESEEDQ9SECRETSEED")
        d.settings.update(nats_user=None, nats_password_file=None,
                          nats_nkey_file=nk)
        d.start(wait=None)
        assert d.wait_exit() == 78
        assert "nats_nkey_file %s must hold a user seed (SU...) and its " \
            "public key (U...)" % nk in d.log_text()
        # and a creds file without a JWT and a seed (an NKey file, here)
        d.settings.update(nats_nkey_file=None, nats_creds_file=nk)
        d.start(wait=None)
        assert d.wait_exit() == 78
        assert "nats_creds_file %s holds no user JWT and seed" % nk \
            in d.log_text()
        d.settings.update(nats_user="slackd", nats_password_file=pw,
                          nats_creds_file=None)
        os.chmod(pw, 0o600)
        d.expected_exit = 0
        d.start()
        d.wait_log("publishing to the stream")
        fake.emit(message(1))
        nc = NatsClient(server.url, "reader", "reader-pw")
        wait_stream(nc, 2)
        out = d.ctl("status")
        assert out.returncode == 0
        assert PASSWORD not in json.dumps(d.status())
        nc.close()
        # a password in nats_url is never shown either
        d.stop()
        d.settings.update(nats_user=None, nats_password_file=None,
                          nats_url="nats://slackd:%s@127.0.0.1:%d" % (
                              PASSWORD, server.port))
        d.start()
        # (the log has the first run's lines too: wait for the status)
        wait_until(lambda: d.status()["nats"]["server"] is not None, WAIT,
                   what="connected")
        assert d.status()["nats"]["server"] == \
            "nats://***@127.0.0.1:%d" % server.port
        assert "NATS: connected to nats://***@127.0.0.1:%d; publishing" \
            % server.port in d.log_text()
        p = ctl_nats(d, server, "status", url="nats://slackd:%s@127.0.0.1:1"
                     % PASSWORD)
        assert p.returncode == 3
        assert "cannot connect to NATS at nats://***@127.0.0.1:1: " \
            in p.stderr
        d.settings.update(nats_user="slackd", nats_password_file=pw,
                          nats_url=server.url)
        # a wrong password: slackd says NATS refused, never the password
        with open(pw, "w") as f:
            f.write("wrong-" + PASSWORD + "\n")
        d.stop()
        d.start()
        wait_until(lambda: "Authorization Violation" in (
            d.status()["nats"]["last_error"] or ""), WAIT,
            what="NATS's refusal in slackctl status")
    finally:
        server.stop()


def ctl_nats(d, server, *args, prefix=PREFIX, env=None, timeout=30,
             stdin=None, url=None):
    """slackctl over NATS, from a "host" without slackd's socket."""
    e = dict(os.environ)
    for k in ("SLACKD_SOCKET", "SLACKD_NATS", "SLACKD_NATS_PREFIX"):
        e.pop(k, None)
    e["XDG_RUNTIME_DIR"] = "/nonexistent"
    if env:
        e.update(env)
    cmd = [SLACKCTL, "--nats", url or server.url]
    if prefix is not None:
        cmd += ["--nats-prefix", prefix]
    p = subprocess.run(cmd + list(args), capture_output=True, text=True,
                       timeout=timeout, env=e, input=stdin)
    d.outputs += [p.stdout, p.stderr]
    return p


def test_slackctl_over_nats_send_status(daemon_factory, fake, nats):
    d = nats_daemon(daemon_factory, nats).start()
    d.wait_log("requests on " + PREFIX + ".request")
    p = ctl_nats(d, nats, "status")
    assert p.returncode == 0, p.stderr
    assert "state:      connected to Fake Workspace (T0FAKE)" in p.stdout
    assert "nats:       connected to " + nats.url in p.stdout
    p = ctl_nats(d, nats, "status", "--json")
    st = json.loads(p.stdout)
    assert st["type"] == "slackd.status" and st["reply_to"] == 1
    p = ctl_nats(d, nats, "send", "C024BE91L", "over", "NATS")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()  # Slack's ts
    assert fake.session.frames("message")[-1]["text"] == "over NATS"
    p = ctl_nats(d, nats, "send", "C024BE91L", stdin="from stdin\n")
    assert p.returncode == 0, p.stderr
    assert fake.session.frames("message")[-1]["text"] == "from stdin"
    # channels and users come the same way (slackd.names requests)
    p = ctl_nats(d, nats, "channels", "--json")
    assert p.returncode == 0, p.stderr
    local = d.ctl("channels", "--json")
    assert local.returncode == 0 and json.loads(p.stdout) == \
        json.loads(local.stdout)
    p = ctl_nats(d, nats, "users")
    assert p.returncode == 0 and p.stdout == d.ctl("users").stdout
    # SLACKD_NATS and SLACKD_NATS_PREFIX do the same
    e = dict(os.environ, SLACKD_NATS=nats.url, SLACKD_NATS_PREFIX=PREFIX,
             XDG_RUNTIME_DIR="/nonexistent")
    e.pop("SLACKD_SOCKET", None)
    p = subprocess.run([SLACKCTL, "status", "--json"], capture_output=True,
                       text=True, timeout=30, env=e)
    assert p.returncode == 0 and json.loads(p.stdout)["ok"] is True
    d.outputs += [p.stdout, p.stderr]


def test_slackctl_over_nats_errors(daemon_factory, fake, nats):
    d = nats_daemon(daemon_factory, nats).start()
    d.wait_log("requests on " + PREFIX + ".request")
    p = ctl_nats(d, nats, "status", prefix="slack.TNOBODY")
    assert p.returncode == 3
    assert "no slackd answers on slack.TNOBODY.request at %s" % nats.url \
        in p.stderr
    p = ctl_nats(d, nats, "status", prefix=None)
    assert p.returncode == 2 and "--nats needs --nats-prefix" in p.stderr
    port = free_port()
    p = subprocess.run([SLACKCTL, "--nats", "nats://127.0.0.1:%d" % port,
                        "--nats-prefix", PREFIX, "status"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3
    assert "cannot connect to NATS at nats://127.0.0.1:%d" % port in p.stderr
    p = ctl_nats(d, nats, "listen", "--since", "yesterday")
    assert p.returncode == 1 and "--since yesterday: not a stream" in p.stderr
    # Without --nats, --since is a slackd cursor, not a stream position.
    p = d.ctl("listen", "--since", "5")
    assert p.returncode == 2 and "--since takes a cursor RUN:N" in p.stderr


def test_slackctl_listen_over_nats(daemon_factory, fake, nats):
    d = nats_daemon(daemon_factory, nats).start()
    d.wait_log("publishing to the stream")
    nc = NatsClient(nats.url)
    fake.emit_many([message(i) for i in range(1, 6)])
    wait_stream(nc, 6)
    stored = nc.stream_all(STREAM)
    # --since a stream sequence: from the third message on, then live
    e = dict(os.environ, XDG_RUNTIME_DIR="/nonexistent")
    e.pop("SLACKD_SOCKET", None)
    p = subprocess.Popen(
        [SLACKCTL, "--nats", nats.url, "--nats-prefix", PREFIX, "listen",
         "--since", "4", "-t", "message"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    try:
        got = [p.stdout.readline() for _ in range(3)]
        assert got == [data.decode() for _, _, data in stored[3:6]], got
        fake.emit({"type": "user_typing", "channel": "C1", "user": "U1"})
        fake.emit(message(6))
        line = p.stdout.readline()
        assert json.loads(line)["text"] == "hello 6"
    finally:
        p.terminate()
        out, err = p.communicate(timeout=10)
        d.outputs += [out, err]
    # --since an age: everything of the last hour
    p = subprocess.Popen(
        [SLACKCTL, "--nats", nats.url, "--nats-prefix", PREFIX, "listen",
         "--since", "1h"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    try:
        first = json.loads(p.stdout.readline())
        assert first["type"] == "hello"
    finally:
        p.terminate()
        out, err = p.communicate(timeout=10)
        d.outputs += [out, err]
    nc.close()


# The subject permissions README.md ("More than one host") documents, for
# the team T0FAKE.
PERMISSIONS = {
    "slackd": {
        "publish": [PREFIX + ".event.>",
                    "$JS.API.STREAM.INFO." + STREAM,
                    "$JS.API.STREAM.CREATE." + STREAM, "_INBOX.>"],
        "subscribe": [PREFIX + ".request", "_INBOX.>"]},
    "reader": {
        "publish": ["$JS.API.STREAM.NAMES",
                    "$JS.API.CONSUMER.CREATE." + STREAM,
                    "$JS.API.CONSUMER.DELETE." + STREAM + ".>",
                    "$JS.FC." + STREAM + ".>"],
        "subscribe": ["_INBOX.>"]},
    "sender": {
        "publish": [PREFIX + ".request"],
        "subscribe": ["_INBOX.>"]},
}


def test_documented_permissions(daemon_factory, fake, tmp_path):
    users = [{"user": u, "password": u + "-pw", "permissions": p}
             for u, p in PERMISSIONS.items()]
    users.append({"user": "admin", "password": "admin-pw"})
    server = NatsServer(tmp_path / "perm", users=users).start()
    try:
        pw = secret_file(os.path.join(str(tmp_path), "nats.pw"),
                         b"slackd-pw\n")
        d = nats_daemon(daemon_factory, server, nats_user="slackd",
                        nats_password_file=pw).start()
        d.wait_log("publishing to the stream " + STREAM)
        fake.emit(message(1))
        nc = NatsClient(server.url, "admin", "admin-pw")
        wait_stream(nc, 2)
        wait_until(lambda: d.status()["nats"]["backlog"] == 0, WAIT,
                   what="the acks")
        assert d.status()["nats"]["last_error"] is None
        url = "nats://%s:%s@127.0.0.1:%d"
        e = dict(os.environ, XDG_RUNTIME_DIR="/nonexistent")
        e.pop("SLACKD_SOCKET", None)

        def ctl(user, *args):
            p = subprocess.run(
                [SLACKCTL, "--nats", url % (user, user + "-pw", server.port),
                 "--nats-prefix", PREFIX] + list(args),
                capture_output=True, text=True, timeout=30, env=e)
            d.outputs += [p.stdout, p.stderr]
            return p
        # the reader reads the stream, and may not send
        lp = subprocess.Popen(
            [SLACKCTL, "--nats", url % ("reader", "reader-pw", server.port),
             "--nats-prefix", PREFIX, "listen", "--since", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
        try:
            assert json.loads(lp.stdout.readline())["type"] == "hello"
            assert json.loads(lp.stdout.readline())["text"] == "hello 1"
        finally:
            lp.terminate()
            out, err = lp.communicate(timeout=10)
            d.outputs += [out, err]
        p = ctl("reader", "send", "C024BE91L", "not allowed")
        assert p.returncode == 1
        assert "refused: " in p.stderr and "Permissions Violation" in p.stderr
        # the sender sends (and sees the status), and may not read the stream
        p = ctl("sender", "send", "C024BE91L", "allowed")
        assert p.returncode == 0, p.stderr
        assert fake.session.frames("message")[-1]["text"] == "allowed"
        p = ctl("sender", "listen")
        assert p.returncode == 1, p.stderr
        assert "Permissions Violation" in p.stderr or \
            "listen: following %s.event.>: " % PREFIX in p.stderr, p.stderr
        nc.close()
    finally:
        server.stop()


def test_tls_with_a_private_ca(daemon_factory, fake, tmp_path, pki):
    server = NatsServer(tmp_path / "tls", tls=pki).start()
    try:
        d = nats_daemon(daemon_factory, server, nats_url=server.tls_url,
                        nats_ca_file=pki["ca"]).start()
        d.wait_log("publishing to the stream")
        fake.emit(message(1))
        wait_until(lambda: d.status()["nats"]["published"] >= 2, WAIT,
                   what="events acknowledged over TLS")
        assert d.status()["nats"]["server"] == server.tls_url
        p = ctl_nats(d, server, "status", "--json", url=server.tls_url,
                     env={"SLACKD_NATS_CA": pki["ca"]})
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["nats"]["stream"] == STREAM
        # a CA that did not sign the server's certificate: refused, said
        d2 = nats_daemon(daemon_factory, server, nats_url=server.tls_url,
                         nats_ca_file=pki["otherca"])
        d2.start()
        wait_until(lambda: d2.status()["nats"]["last_error"], WAIT,
                   what="the TLS refusal")
        n = d2.status()["nats"]
        assert n["state"] != "connected" and "cannot connect" in \
            n["last_error"], n
        p = ctl_nats(d, server, "status", url=server.tls_url,
                     env={"SLACKD_NATS_CA": pki["otherca"]})
        assert p.returncode == 3 and "cannot connect to NATS at" in p.stderr
    finally:
        server.stop()


def test_recovered_copy_of_a_message_is_not_stored_twice(daemon_factory,
                                                         fake, nats):
    """A message and its recovered copy (slackd_backfill, other bytes)
    have one identity, Nats-Msg-Id message:<channel>:<ts>: JetStream keeps
    the first and drops the other."""
    d = nats_daemon(daemon_factory, nats)
    d.start(env={"SLACKD_TEST_HOOKS": "1"})
    d.wait_log("publishing to the stream " + STREAM)
    c = d.client()
    fake.emit(message(1))
    c.recv_until(lambda m: m.get("text") == "hello 1")
    copy = dict(message(1), slackd_backfill=True)
    r = c.request({"id": 3, "type": "slackd.debug", "inject": copy})
    assert r["ok"] is True, r
    # (the copy went out to local clients before the reply)
    assert any(json.loads(x).get("slackd_backfill") for x in c.lines)
    nc = NatsClient(nats.url)
    wait_until(lambda: d.status()["nats"]["backlog"] == 0, WAIT,
               what="both acknowledged")
    st = d.status()["nats"]
    assert st["duplicates"] == 1, st
    stored = [json.loads(b) for s, _, b in nc.stream_all(STREAM)
              if s.startswith(PREFIX + ".event.message")]
    assert [m["text"] for m in stored] == ["hello 1"], stored
    assert "slackd_backfill" not in stored[0]
    nc.close()


def test_refused_login_is_said_and_tried_again(daemon_factory, fake,
                                               tmp_path):
    """A server that refuses slackd's credentials: libnats gives up after
    two refusals, slackd says why (the server's words) and what to check,
    and connects on its own once the server takes them."""
    server = NatsServer(tmp_path / "refuse", users=[
        {"user": "slackd", "password": "not-" + PASSWORD}]).start()
    try:
        pw = secret_file(os.path.join(str(tmp_path), "nats.pw"),
                         PASSWORD + "\n")
        d = nats_daemon(daemon_factory, server, nats_user="slackd",
                        nats_password_file=pw)
        d.secrets.append(PASSWORD)
        d.start()
        wait_until(lambda: "libnats stopped trying" in (
            d.status()["nats"]["last_error"] or ""), WAIT,
            what="the refusal in slackctl status")
        err = d.status()["nats"]["last_error"]
        assert "NATS refused slackd (Authorization Violation)" in err, err
        assert "nats_password_file" in err, err
        # stays said (not "no server available" a moment later)
        time.sleep(2)
        assert d.status()["nats"]["last_error"] == err
        assert d.log_text().count("libnats stopped trying") == 1
        # the server's administrator mends the user: slackd comes back
        server.stop()
        with open(server.conf) as f:
            conf = f.read()
        with open(server.conf, "w") as f:
            f.write(conf.replace("not-" + PASSWORD, PASSWORD))
        server.start()
        wait_until(lambda: d.status()["nats"]["state"] == "connected",
                   30 * SCALE, what="connected after the server was mended")
        d.wait_log("publishing to the stream " + STREAM)
        fake.emit(message(1))
        nc = NatsClient(server.url, "slackd", PASSWORD)
        wait_stream(nc, 2)
        nc.close()
    finally:
        server.stop()


def test_credentials_changed_while_connected(daemon_factory, fake, tmp_path):
    """The server's password for slackd changes while it is connected:
    libnats, reconnecting, is refused twice and gives the connection up.
    slackd says so, starts over reading its password file again, and once
    that holds the new password publishes what came meanwhile."""
    server = NatsServer(tmp_path / "rotate", users=[
        {"user": "slackd", "password": PASSWORD}]).start()
    try:
        pw = secret_file(os.path.join(str(tmp_path), "nats.pw"),
                         PASSWORD + "\n")
        d = nats_daemon(daemon_factory, server, nats_user="slackd",
                        nats_password_file=pw)
        d.secrets += [PASSWORD, "new-" + PASSWORD]
        d.start()
        d.wait_log("publishing to the stream " + STREAM)
        fake.emit(message(1))
        wait_until(lambda: d.status()["nats"]["published"] >= 2, WAIT,
                   what="the first events published")
        server.stop()
        with open(server.conf) as f:
            conf = f.read()
        with open(server.conf, "w") as f:
            f.write(conf.replace(PASSWORD, "new-" + PASSWORD))
        server.start()
        d.wait_log("libnats gave the connection up", timeout=WAIT)
        fake.emit(message(2))  # while NATS is away: kept
        with open(pw, "w") as f:
            f.write("new-" + PASSWORD + "\n")
        wait_until(lambda: d.status()["nats"]["state"] == "connected",
                   30 * SCALE, what="connected with the new password")
        nc = NatsClient(server.url, "slackd", "new-" + PASSWORD)
        wait_stream(nc, 3)
        texts = [json.loads(b).get("text") for s, _, b in
                 nc.stream_all(STREAM)
                 if s.startswith(PREFIX + ".event.message")]
        assert texts == ["hello 1", "hello 2"], texts
        nc.close()
    finally:
        server.stop()
