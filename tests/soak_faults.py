"""Fault-injection soak test (`make check-soak`; not part of `make check`).

100 rounds of random upstream faults while 20 clients listen and 5 send.
At the end:
  - every request got exactly one reply (success, Slack's error, or the
    daemon's own "not confirmed"/"timeout");
  - no listener saw an event twice or out of order within one upstream
    session (events carry the fake's session number and a sequence);
  - slackd's resident memory grew by less than RSS_GROWTH_KB after warm-up;
  - no sanitizer report, and the token in nothing slackd wrote (the
    harness' usual teardown checks).
"""

import os
import random
import threading
import time

from conftest import Client, rss_kb, wait_until

ROUNDS = int(os.environ.get("SOAK_ROUNDS", "100"))
LISTENERS = 20
SENDERS = 5
RSS_GROWTH_KB = 20 * 1024
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))


class Emitter(threading.Thread):
    """Events into whichever session is current, numbered per session."""

    def __init__(self, fake):
        super().__init__(daemon=True)
        self.fake = fake
        self.stop = threading.Event()
        self.sent = 0

    def run(self):
        seq = {}
        while not self.stop.is_set():
            s = self.fake.session
            if s is not None and s.open:
                n = seq.get(s.index, 0)
                batch = [{"type": "message", "channel": "C%d" % (i % 3),
                          "sid": s.index, "seq": n + i, "text": "soak"}
                         for i in range(20)]
                try:
                    self.fake.emit_many(batch, session=s, wait=False)
                except (RuntimeError, TimeoutError):
                    pass
                seq[s.index] = n + 20   # numbers are never reused
                self.sent += 20
            time.sleep(0.05)


class Listener(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.c = Client(path)
        self.last = {}          # sid -> last seq seen
        self.errors = []
        self.events = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                m = self.c.recv(0.5)
            except AssertionError:
                if self.c.eof:
                    self.errors.append("listener disconnected")
                    return
                continue
            if m.get("type") != "message" or "sid" not in m:
                continue
            self.events += 1
            prev = self.last.get(m["sid"], -1)
            if m["seq"] <= prev:
                self.errors.append("session %s: seq %s after %s" % (
                    m["sid"], m["seq"], prev))
            self.last[m["sid"]] = m["seq"]


class Sender(threading.Thread):
    def __init__(self, path, k):
        super().__init__(daemon=True)
        self.c = Client(path)
        self.c.send({"id": 0, "type": "slackd.subscribe", "types": []})
        self.c.reply(0)
        self.k = k
        self.sent = 0
        self.replies = {}       # id -> list of replies
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            self.c.send({"id": i, "type": "message",
                         "channel": "C%d%d" % (self.k, i % 4),
                         "text": "soak %d/%d" % (self.k, i)})
            self.sent = i
            try:
                m = self.c.reply(i, 60)
            except AssertionError:
                return
            self.replies.setdefault(i, []).append(m)
        for m in self.c.drain(1.0):     # anything extra is a duplicate
            if "reply_to" in m:
                self.replies.setdefault(m["reply_to"], []).append(m)


FAULTS = [
    "drop", "stall-ignore", "stall-noread", "goodbye", "error", "close",
    "junk", "binary", "oversize", "api-429", "api-500", "api-html",
    "api-hang", "refuse-upgrade", "unacked",
]


def inject(fake, fault, rng):
    if fault == "drop":
        fake.drop()
    elif fault == "stall-ignore":
        fake.stall("ignore")
    elif fault == "stall-noread":
        fake.stall("noread")
    elif fault == "goodbye":
        fake.goodbye(wait=False)
    elif fault == "error":
        fake.error_event(1, "Socket URL has expired", wait=False)
    elif fault == "close":
        fake.close(1011, "boom", wait=False)
    elif fault == "junk":
        fake.emit("<html>not json</html>", wait=False)
    elif fault == "binary":
        fake.emit(b"\x00\xffbinary", wait=False)
    elif fault == "oversize":
        fake.emit({"type": "message", "text": "x" * 100000}, wait=False)
    elif fault in ("api-429", "api-500", "api-html", "api-hang"):
        if fault == "api-429":
            fake.queue_api_response(429, {"ok": False, "error":
                                          "ratelimited"},
                                    {"Retry-After": "1"})
        elif fault == "api-500":
            fake.queue_api_response(500, {"ok": False, "error":
                                          "internal_error"})
        elif fault == "api-html":
            fake.queue_api_response(502, "<html>bad gateway</html>",
                                    {"Content-Type": "text/html"})
        else:
            fake.queue_api_hang()
        fake.drop()
    elif fault == "refuse-upgrade":
        fake.refuse_upgrade(1)
        fake.drop()
    elif fault == "unacked":
        fake.hold_acks(True)
        time.sleep(rng.uniform(0.05, 0.3))
        fake.drop()
        fake.hold_acks(False)


def test_soak(daemon_factory, fake):
    rng = random.Random(SEED)
    print("soak seed %d, %d rounds" % (SEED, ROUNDS))
    # The replay ring fills up to replay_bytes by design (16M by default):
    # keep it small, so that RSS_GROWTH_KB measures leaks, not the ring.
    d = daemon_factory(max_event="64K", queue_max="10000", send_rate="50",
                       send_burst="50", connect_timeout="2",
                       reconnect_min="0.05", reconnect_max="0.3",
                       ack_timeout="5", log_level="warning",
                       replay_bytes="1M").start(args=())
    listeners = [Listener(d.sock) for _ in range(LISTENERS)]
    senders = [Sender(d.sock, k) for k in range(SENDERS)]
    d.clients.extend(x.c for x in listeners + senders)
    emitter = Emitter(fake)
    for t in listeners + senders + [emitter]:
        t.start()

    rss_warm = None
    counts = {}
    for r in range(ROUNDS):
        fault = rng.choice(FAULTS)
        counts[fault] = counts.get(fault, 0) + 1
        before = len(fake.sessions)
        inject(fake, fault, rng)
        if fault in ("stall-ignore", "stall-noread", "drop", "goodbye",
                     "error", "close", "api-429", "api-500", "api-html",
                     "api-hang", "refuse-upgrade", "unacked"):
            wait_until(lambda: len(fake.sessions) > before and
                       fake.session.open, 20,
                       what="round %d (%s): a new session" % (r, fault))
        time.sleep(rng.uniform(0.1, 0.4))
        if r == 10:
            rss_warm = rss_kb(d.proc.pid)

    wait_until(lambda: d.status()["state"] == "connected", 20)
    time.sleep(1)
    emitter.stop.set()
    emitter.join()
    for s in senders:
        s.stop.set()
    for s in senders:
        s.join(90)
    time.sleep(1)
    for x in listeners:
        x.stop.set()
        x.join(5)
    rss_end = rss_kb(d.proc.pid)
    st = d.status()
    print("faults: %s" % sorted(counts.items()))
    print("sessions %d, events emitted %d, listener events %s" % (
        len(fake.sessions), emitter.sent,
        [x.events for x in listeners][:3]))
    print("status: reconnects %d, sent %d, failed %d, dropped %d" % (
        st["reconnects"], st["messages_sent"], st["messages_failed"],
        st["events_dropped"]))
    print("rss after warm-up %d KB, at the end %d KB" % (rss_warm, rss_end))

    for x in listeners:
        assert x.errors == [], x.errors[:5]
        assert x.events > 0
    total = 0
    outcomes = {}
    for s in senders:
        assert not s.is_alive(), "a sender is stuck"
        for i in range(1, s.sent + 1):
            got = s.replies.get(i, [])
            assert len(got) == 1, "sender %d id %d: %d replies: %s" % (
                s.k, i, len(got), got)
            m = got[0]
            key = "ok" if m.get("ok") else m["error"].get("name", "slack")
            outcomes[key] = outcomes.get(key, 0) + 1
            total += 1
    print("requests %d: %s" % (total, sorted(outcomes.items())))
    assert total > 100
    assert outcomes.get("ok", 0) > total // 2
    assert rss_end - rss_warm < RSS_GROWTH_KB, (rss_warm, rss_end)
    assert st["clients_dropped"] == 0
