"""Nothing missed: make-before-break when Slack says goodbye.

The fake Slack delivers every event to every open session of the token, as
Slack does while an old and a new RTM session overlap.  Across a goodbye
the clients must get every event once, in order, and see no state change.
"""
import threading
import time

import pytest

from conftest import wait_until


class Stream(threading.Thread):
    """n message events at rate/s to every open session, in 10 ms slices."""

    def __init__(self, fake, n, rate):
        super().__init__(daemon=True)
        self.fake, self.n, self.rate = fake, n, rate
        self.sent = 0

    def run(self):
        per_slice = max(1, self.rate // 100)
        start = time.monotonic()
        while self.sent < self.n:
            k = min(per_slice, self.n - self.sent)
            batch = [{"type": "message", "channel": "C024BE91L",
                      "user": "U1", "text": str(self.sent + i),
                      "ts": "1700000000.%06d" % (self.sent + i)}
                     for i in range(k)]
            for s in self.fake.open_sessions:
                self.fake.emit_many(batch, session=s, wait=False)
            self.sent += k
            due = start + self.sent / self.rate
            time.sleep(max(0.0, due - time.monotonic()))


def messages(c, n, timeout):
    """The texts of the next n message events, and every state seen."""
    texts, states = [], []
    deadline = time.monotonic() + timeout
    while len(texts) < n and time.monotonic() < deadline:
        m = c.recv(timeout=max(0.1, deadline - time.monotonic()))
        if m.get("type") == "message":
            texts.append(m["text"])
        elif m.get("type") == "slackd.state":
            states.append(m["state"])
    return texts, states


def test_goodbye_makes_before_it_breaks(daemon, fake):
    c = daemon.client()
    fake.goodbye()
    m = c.recv_until(lambda m: m.get("type") == "goodbye")
    assert m == {"type": "goodbye"}
    wait_until(lambda: len(fake.sessions) == 2 and fake.sessions[1].open, 2,
               what="the replacement session")
    # The old session is closed by slackd (1000) once the new one has
    # taken over; clients never see the connection go down.
    wait_until(lambda: not fake.sessions[0].open, 8, what="old closed")
    assert fake.sessions[0].close_code_received == 1000
    assert fake.sessions[1].open
    for m in c.drain(0.5):
        assert m.get("type") != "slackd.state", m
    assert daemon.status()["state"] == "connected"
    fake.emit({"type": "message", "channel": "C1", "text": "after",
               "ts": "1.2"})
    m = c.recv_until(lambda m: m.get("type") == "message")
    assert m["text"] == "after"


@pytest.mark.parametrize("rate", [1000, 5000])
def test_goodbye_at_rate_misses_nothing(daemon, fake, rate):
    c = daemon.client()
    n = rate * 3
    stream = Stream(fake, n, rate)
    stream.start()
    time.sleep(1.0)
    old = fake.session
    fake.goodbye(session=old, close_after=1.5, wait=False)
    texts, states = messages(c, n, timeout=30)
    stream.join(10)
    extra = [m for m in c.drain(1.0) if m.get("type") == "message"]
    assert len(fake.sessions) == 2, fake
    missed = sorted(set(range(n)) - {int(t) for t in texts})
    seen, dups = set(), []
    for t in texts:
        if t in seen:
            dups.append(int(t))
        seen.add(t)
    assert missed == [] and dups == [] and extra == [], \
        "missed %d (first %s), duplicated %d (first %s), late %d" % (
            len(missed), missed[:5], len(dups), dups[:5], len(extra))
    assert texts == [str(i) for i in range(n)], "order kept"
    assert states == [], "no state change across a goodbye"


def test_reply_after_goodbye_is_not_lost(daemon, fake):
    """Slack acknowledges a message on the old session after its goodbye:
    the old session is still read, so the client gets Slack's reply, not
    not_confirmed."""
    c = daemon.client()
    fake.delay_acks(1.0)
    c.send({"id": 5, "type": "message", "channel": "C024BE91L",
            "text": "just before"})
    wait_until(lambda: fake.messages(), 5, what="the message at Slack")
    fake.goodbye(session=fake.sessions[0])
    r = c.reply(5, timeout=10)
    assert r["ok"] is True and r["text"] == "just before", r
    wait_until(lambda: len(fake.sessions) == 2, 5, what="the new session")


@pytest.mark.parametrize("hooks", ["1", None])
def test_break_before_make_test_hook(daemon_factory, fake, hooks):
    """SLACKD_TEST_BREAK_BEFORE_MAKE=1 (for make bench) brings back the old
    behaviour, closing the session at goodbye before making the next, and
    only with SLACKD_TEST_HOOKS=1: without it slackd makes before it
    breaks."""
    d = daemon_factory().start(env={"SLACKD_TEST_HOOKS": hooks,
                                    "SLACKD_TEST_BREAK_BEFORE_MAKE": "1"})
    c = d.client()
    fake.goodbye()
    wait_until(lambda: len(fake.sessions) == 2 and fake.sessions[1].open, 5,
               what="the replacement session")
    wait_until(lambda: not fake.sessions[0].open, 8, what="old closed")
    old, new = fake.sessions
    assert old.close_code_received == 1000
    states = [m["state"] for m in c.drain(0.5)
              if m.get("type") == "slackd.state"]
    log = d.log_text()
    if hooks:
        # Down, then up again: the clients saw the break.
        assert states and states[0] != "connected" and \
            states[-1] == "connected", states
        assert "making the next session before closing" not in log
        d.wait_log(r"test hook: .*closed at once \(break-before-make\)")
    else:
        assert new.connected_at < old.closed_at, "broken before the make"
        assert states == [], states
        assert "making the next session before closing" in log
        assert "break-before-make" not in log
