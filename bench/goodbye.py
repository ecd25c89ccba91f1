"""The goodbye case of make bench (bench/run.py imports it): the events a
client of slackd misses, gets twice or gets out of order across one RTM
goodbye, at 1,000 and 5,000 events/s, for slackd as it is
(make-before-break) and for the old behaviour (break-before-make: the
session closed at once and only then replaced, which the test hook
SLACKD_TEST_BREAK_BEFORE_MAKE brings back), in the same run.

The fake Slack is tests/fakeslack.py (Debian's python3-websockets), as in
tests/test_continuity.py: it sends every event to every open session of
the token, as Slack does while an old and a new session overlap; events
sent while no session is open are lost, as at Slack.  Each run: a fresh
fake and slackd (backfill off, so that only the live stream counts),
events numbered 0..N-1 at the rate for SECONDS s in 1 ms slices,
goodbye on the first session after GOODBYE_AT s, which the fake closes
CLOSE_AFTER s later if slackd has not; one reader on slackd's socket
collects the numbers.
"""

import json
import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

RATES = (1000, 5000)
MODES = ("make_before_break", "break_before_make")
SECONDS = 3.0
GOODBYE_AT = 1.0
CLOSE_AFTER = 1.5
CHANNEL = "C024BE91L"


class Stream(threading.Thread):
    """n message events at rate/s to every open session, in 1 ms slices
    (Slack's stream has no pauses for a gap to fall into: 10 ms slices,
    as tests/test_continuity.py sends, hide the loss of the old
    behaviour); the text of event i is str(i)."""

    def __init__(self, fake, n, rate):
        super().__init__(daemon=True)
        self.fake, self.n, self.rate = fake, n, rate
        self.sent = 0
        self.took = None

    def run(self):
        per_slice = max(1, self.rate // 1000)
        start = time.monotonic()
        while self.sent < self.n:
            k = min(per_slice, self.n - self.sent)
            batch = [{"type": "message", "channel": CHANNEL, "user": "U1",
                      "text": str(self.sent + i),
                      "ts": "1700000000.%06d" % (self.sent + i)}
                     for i in range(k)]
            for s in self.fake.open_sessions:
                self.fake.emit_many(batch, session=s, wait=False)
            self.sent += k
            due = start + self.sent / self.rate
            time.sleep(max(0.0, due - time.monotonic()))
        self.took = time.monotonic() - start


class Reader(threading.Thread):
    """One client of slackd: the numbers of the message events it reads,
    in order, and the slackd.state changes it sees."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.s.settimeout(0.2)
        self.buf = b""
        self.nums = []
        self.states = []
        self.last = time.monotonic()
        self.stop = threading.Event()
        self.hello = None

    def run(self):
        while not self.stop.is_set():
            try:
                data = self.s.recv(1 << 16)
            except socket.timeout:
                continue
            if not data:
                break
            self.buf += data
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                m = json.loads(line)
                t = m.get("type")
                if t == "message":
                    self.nums.append(int(m["text"]))
                    self.last = time.monotonic()
                elif t == "slackd.hello":
                    self.hello = m
                elif t == "slackd.state":
                    self.states.append(m.get("state"))
        self.s.close()


def count(nums, n):
    """missed, duplicated, reordered (an event after a higher one)."""
    seen, dup, reord, high = set(), 0, 0, -1
    for x in nums:
        if x in seen:
            dup += 1
            continue
        seen.add(x)
        if x < high:
            reord += 1
        else:
            high = x
    return len(set(range(n)) - seen), dup, reord


def status(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(b'{"id":1,"type":"slackd.status"}\n')
        buf = b""
        while True:
            data = s.recv(65536)
            if not data:
                raise OSError("closed")
            buf += data
            for line in buf.split(b"\n")[:-1]:
                m = json.loads(line)
                if m.get("reply_to") == 1:
                    return m
    finally:
        s.close()


def run_one(bench, run, rate, mode):
    """One goodbye at rate events/s with slackd in mode; returns the
    figures (run is bench/run.py, for Proc and BenchError)."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    try:
        from fakeslack import FakeSlack
    except ImportError as e:
        raise run.BenchError("goodbye: tests/fakeslack.py needs Debian's "
                             "python3-websockets: %s" % e)
    d = os.path.join(bench.tmp, "goodbye-%d-%s" % (rate, mode))
    os.makedirs(os.path.join(d, "state"), mode=0o700, exist_ok=True)
    token = os.path.join(d, "token")
    if not os.path.exists(token):
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (run.TOKEN + "\n").encode())
        os.close(fd)
    sock = os.path.join(d, "slackd.sock")
    fake = FakeSlack(token=run.TOKEN).start()
    conf = {"api_url": fake.api_url, "token_file": token, "socket": sock,
            "state_dir": os.path.join(d, "state"), "log_level": "info",
            "backfill": "off", "rtm_connect_interval": "0",
            "reconnect_min": "0.1", "reconnect_max": "1",
            "client_buffer_limit": "256M", "client_buffer_soft": "256M"}
    path = os.path.join(d, "slackd.conf")
    with open(path, "w") as f:
        for k, v in conf.items():
            f.write("%s = %s\n" % (k, v))
    env = dict(os.environ, SLACKD_TEST_HOOKS="1")
    env.pop("SLACKD_TEST_BREAK_BEFORE_MAKE", None)
    if mode == "break_before_make":
        env["SLACKD_TEST_BREAK_BEFORE_MAKE"] = "1"
    daemon = run.Proc("slackd-goodbye-%d-%s" % (rate, mode),
                      [os.path.join(bench.b, "slackd"), "-d", "-f", path],
                      bench.daemon_cpu, bench.tmp, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            if daemon.p.poll() is not None:
                raise run.BenchError("goodbye: slackd exited with %d: %s" % (
                    daemon.p.returncode, daemon.log_tail()))
            try:
                if status(sock).get("state") == "connected":
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise run.BenchError("goodbye: slackd did not connect: %s"
                                     % daemon.log_tail())
            time.sleep(0.05)
        reader = Reader(sock)
        reader.start()
        n = int(rate * SECONDS)
        stream = Stream(fake, n, rate)
        stream.start()
        time.sleep(GOODBYE_AT)
        fake.goodbye(session=fake.session, close_after=CLOSE_AFTER,
                     wait=False)
        stream.join(SECONDS + 30)
        # The last events, or quiet for a second: what is missing by then
        # is not coming.
        deadline = time.monotonic() + 10
        while len(set(reader.nums)) < n and time.monotonic() < deadline \
                and time.monotonic() - reader.last < 1:
            time.sleep(0.05)
        time.sleep(0.3)                  # a late duplicate would show here
        reader.stop.set()
        reader.join(5)
        missed, dup, reord = count(reader.nums, n)
        sessions = len(fake.sessions)
        daemon.p.send_signal(signal.SIGTERM)
        rc = daemon.wait(20)
        if rc != 0:
            bench.errors.append("goodbye: slackd exited with %s" % rc)
        if run.TOKEN in open(daemon.log_path, errors="replace").read():
            bench.errors.append("a token appeared in slackd's log")
        return {"events": n, "delivered": len(reader.nums),
                "missed": missed, "duplicated": dup, "reordered": reord,
                "sessions": sessions, "state_changes": len(reader.states),
                "sent_per_s": n / stream.took if stream.took else None}
    finally:
        daemon.kill()
        fake.stop()
