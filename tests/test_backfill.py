"""Backfill: after an unplanned gap in the connection to Slack (a drop, a
stall, a daemon restart), the messages Slack sent meanwhile are recovered
from conversations.history / conversations.replies and delivered once,
oldest first, marked "slackd_backfill":true, with one slackd.gap summing
up the gap.

The fake Slack keeps every message it sent (or was given with
add_message(..., deliver=False), which is a message sent while the daemon
was away) in its channel's history.
"""
import json
import threading
import time

import pytest

from conftest import wait_until

CH = "C0GENERAL"
HOLD = {"ok": False, "error": "service_unavailable"}


def is_gap(m, channel=False):
    return m.get("type") == "slackd.gap" and (("channel" in m) == channel)


def until_summary(c, timeout=15):
    """Everything up to and including the summary slackd.gap."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        m = c.recv(max(0.1, deadline - time.monotonic()))
        out.append(m)
        if is_gap(m):
            return out


def texts(msgs, backfill=None):
    return [m["text"] for m in msgs if m.get("type") == "message" and
            (backfill is None or bool(m.get("slackd_backfill")) == backfill)]


def history_calls(fake, method="conversations.history"):
    return [c for c in fake.api_calls if c["method"] == method]


def hold_connect(fake):
    """rtm.connect fails until release(): the gap lasts as long as we want."""
    fake.set_api_default(status=503, body=HOLD)


def release(fake):
    fake.clear_api_default("rtm.connect")


def live(c, fake, text, channel=CH, **kw):
    ev = fake.add_message(channel, text, **kw)
    m = c.recv_until(lambda m: m.get("text") == text, what=text)
    assert "slackd_backfill" not in m
    return ev


def test_backfill_after_drop(daemon, fake):
    c = daemon.client()
    before = live(c, fake, "before")
    live(c, fake, "elsewhere", channel="C0RANDOM")
    hold_connect(fake)
    fake.drop()
    c.state("reconnecting", 5)
    gap = [fake.add_message(CH, "gap %d" % i, deliver=False)
           for i in range(3)]
    fake.add_message("C0RANDOM", "random gap", deliver=False)
    release(fake)
    c.state("connected", 10)
    got = until_summary(c)
    msgs = [m for m in got if m.get("type") == "message"]
    assert texts(msgs) == ["gap 0", "gap 1", "gap 2", "random gap"] or \
        texts(msgs) == ["random gap", "gap 0", "gap 1", "gap 2"], got
    for m in msgs:
        assert m["slackd_backfill"] is True
        assert m["channel"] in (CH, "C0RANDOM")
        assert m["user"] == "U0ALICE"
    assert [m["ts"] for m in msgs if m["channel"] == CH] == \
        [e["ts"] for e in gap], "oldest first, Slack's ts"
    summary = got[-1]
    assert summary["recovered"] == 4 and summary["incomplete"] == 0
    assert summary["backfill"] == "seen"
    assert summary["reason"] == "disconnected" and "lost" in summary["why"]
    assert "cannot be recovered" in summary["not_recovered"]
    assert float(summary["from"]) >= float(before["ts"])
    # Each channel was asked from its last ts seen, up to the reconnection.
    calls = {c["params"]["channel"]: c["params"]
             for c in history_calls(fake)}
    assert calls[CH]["oldest"] == before["ts"]
    assert calls[CH]["inclusive"] == "false"
    assert float(calls[CH]["latest"]) > float(gap[-1]["ts"])
    assert set(calls) == {CH, "C0RANDOM"}
    # Live events flow as before, and nothing comes twice.
    live(c, fake, "after")
    assert not [m for m in c.drain(0.3) if m.get("type") == "message"]


def test_backfill_after_stall(daemon_factory, fake):
    d = daemon_factory(ping_interval="0.5", pong_timeout="0.5").start()
    c = d.client()
    live(c, fake, "before")
    fake.stall("ignore")
    fake.add_message(CH, "during the stall", deliver=False)
    c.state("reconnecting", 5)
    c.state("connected", 5)
    got = until_summary(c)
    assert texts(got, backfill=True) == ["during the stall"]
    assert got[-1]["recovered"] == 1
    assert "pong" in got[-1]["why"]


def test_backfill_after_restart(daemon_factory, fake, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    d1 = daemon_factory(state_dir=state).start()
    c = d1.client()
    live(c, fake, "before")
    live(c, fake, "parent")
    assert d1.stop() == 0
    saved = json.loads((state / "backfill.json").read_text())
    assert CH in saved["channels"] and saved["team"] == "T0FAKE"
    gap = [fake.add_message(CH, "while away %d" % i, deliver=False)
           for i in range(2)]
    # The second daemon reaches Slack only once a client is listening.
    hold_connect(fake)
    d2 = daemon_factory(state_dir=state).start(wait="socket")
    c2 = d2.client()
    release(fake)
    c2.state("connected", 10)
    got = until_summary(c2)
    assert texts(got) == ["while away 0", "while away 1"], got
    assert [m["ts"] for m in got if m.get("type") == "message"] == \
        [e["ts"] for e in gap]
    assert got[-1]["why"] == "slackd was not running"
    assert got[-1]["reason"] == "restart"
    assert got[-1]["recovered"] == 2


def test_backfill_cap(daemon_factory, fake):
    d = daemon_factory(backfill_max="5").start()
    c = d.client()
    before = live(c, fake, "before")
    hold_connect(fake)
    fake.drop()
    c.state("reconnecting", 5)
    gap = [fake.add_message(CH, "m%d" % i, deliver=False)
           for i in range(12)]
    release(fake)
    c.state("connected", 10)
    got = until_summary(c)
    # The newest five, oldest first; the gap says which span is missing.
    assert texts(got) == ["m7", "m8", "m9", "m10", "m11"], got
    notes = [m for m in got if is_gap(m, channel=True)]
    assert len(notes) == 1, got
    note = notes[0]
    assert note["channel"] == CH and note["recovered"] == 5
    assert note["from"] == before["ts"] and note["to"] == gap[7]["ts"]
    assert "backfill_max (5)" in note["why"]
    assert note["reason"] == "backfill_max"
    assert got[-1]["incomplete"] == 1 and got[-1]["recovered"] == 5
    # Pages never asked for more than the cap allows.
    assert all(int(c["params"]["limit"]) <= 5 for c in history_calls(fake))


def test_backfill_pages(daemon_factory, fake):
    """More messages than a page (200): the cursor brings the rest."""
    d = daemon_factory().start()
    c = d.client()
    live(c, fake, "before")
    hold_connect(fake)
    fake.drop()
    c.state("reconnecting", 5)
    for i in range(450):
        fake.add_message(CH, "p%d" % i, deliver=False)
    release(fake)
    c.state("connected", 10)
    got = until_summary(c, 30)
    assert texts(got) == ["p%d" % i for i in range(450)]
    calls = history_calls(fake)
    assert len(calls) == 3
    assert "cursor" not in calls[0]["params"]
    assert calls[1]["params"]["cursor"] and calls[2]["params"]["cursor"]


def test_backfill_dedups_live(daemon, fake):
    c = daemon.client()
    live(c, fake, "before")
    hold_connect(fake)
    fake.drop()
    c.state("reconnecting", 5)
    fake.add_message(CH, "gap", deliver=False)
    # A message from the gap that still arrives live after the reconnection
    # (its ts is from before it): history has it too.
    late = {"type": "message", "channel": CH, "user": "U0BOB",
            "text": "late", "ts": fake.next_ts()}
    # Slack makes slackd wait before it answers history.
    fake.queue_api_response(status=429, headers={"Retry-After": "1"},
                            body={"ok": False, "error": "ratelimited"},
                            method="conversations.history")
    release(fake)
    c.state("connected", 10)
    fake.emit(late)
    got = until_summary(c)
    msgs = [m for m in got if m.get("type") == "message"]
    assert texts(msgs) == ["late", "gap"], got
    assert "slackd_backfill" not in msgs[0] and msgs[1]["slackd_backfill"]
    assert got[-1]["recovered"] == 1
    assert any(m["text"] == "late" for m in fake.history(CH))
    assert len(history_calls(fake)) == 2   # the 429, then the answer


def test_backfill_threads(daemon, fake):
    c = daemon.client()
    parent = live(c, fake, "parent")
    live(c, fake, "reply 1", thread_ts=parent["ts"])
    old = live(c, fake, "old parent")
    hold_connect(fake)
    fake.drop()
    c.state("reconnecting", 5)
    fake.add_message(CH, "reply 2", thread_ts=parent["ts"], deliver=False)
    newp = fake.add_message(CH, "new parent", deliver=False)
    fake.add_message(CH, "new reply", thread_ts=newp["ts"], deliver=False)
    # A reply in a thread that was quiet before the gap and whose parent is
    # older than the channel's last message: history's parent shows it.
    fake.add_message(CH, "old reply", thread_ts=old["ts"], deliver=False)
    release(fake)
    c.state("connected", 10)
    got = until_summary(c)
    rec = [m for m in got if m.get("type") == "message"]
    assert sorted(texts(rec)) == sorted(
        ["reply 2", "new parent", "new reply"]), got
    by = {m["text"]: m for m in rec}
    assert by["reply 2"]["thread_ts"] == parent["ts"]
    assert by["new reply"]["thread_ts"] == newp["ts"]
    assert texts(rec).index("new parent") < texts(rec).index("new reply")
    for m in rec:
        assert m["slackd_backfill"] is True and m["channel"] == CH
    replies = history_calls(fake, "conversations.replies")
    assert {r["params"]["ts"] for r in replies} == \
        {parent["ts"], newp["ts"]}
    assert got[-1]["recovered"] == 3


def test_backfill_off(daemon_factory, fake):
    d = daemon_factory(backfill="off").start()
    c = d.client()
    live(c, fake, "before")
    hold_connect(fake)
    fake.drop()
    c.state("reconnecting", 5)
    fake.add_message(CH, "lost", deliver=False)
    release(fake)
    c.state("connected", 10)
    got = until_summary(c)
    assert texts(got) == []
    assert got[-1]["backfill"] == "off" and got[-1]["recovered"] == 0
    assert "backfill is off" in got[-1]["not_recovered"]
    assert history_calls(fake) == []


def test_backfill_refused_channel_says_so(daemon, fake):
    c = daemon.client()
    live(c, fake, "before")
    hold_connect(fake)
    fake.drop()
    c.state("reconnecting", 5)
    fake.set_api_default(body={"ok": False, "error": "missing_scope"},
                         method="conversations.history")
    release(fake)
    c.state("connected", 10)
    got = until_summary(c)
    note = [m for m in got if is_gap(m, channel=True)]
    assert len(note) == 1 and "missing_scope" in note[0]["why"]
    assert note[0]["reason"] == "refused"
    assert got[-1]["incomplete"] == 1


def test_no_backfill_without_a_gap(daemon, fake):
    """A first start (nothing saved) and a planned goodbye recover nothing."""
    c = daemon.client()
    live(c, fake, "before")
    fake.goodbye()
    time.sleep(1.5)
    assert not [m for m in c.drain(0.3) if m.get("type") == "slackd.gap"]
    assert history_calls(fake) == []


def test_config_refuses_unknown_mode(daemon_factory, fake):
    d = daemon_factory(backfill="sometimes")
    d.expected_exit = 78
    d.start(wait=None)
    assert d.wait_exit() == 78
    assert "backfill" in d.log_text() and "off, seen or all" in d.log_text()


@pytest.mark.parametrize("mode", ["off", "seen"])
def test_ten_second_drop_loss(daemon_factory, fake, mode):
    """A stream of 50 messages/s across a 10 s drop: with backfill off
    every message of the gap is lost; with the default none is, and none
    comes twice.  The numbers are printed for the record."""
    d = daemon_factory(backfill=mode).start()
    c = d.client()
    live(c, fake, "start")
    stop = threading.Event()
    sent = []

    def stream():
        i = 0
        while not stop.is_set():
            sent.append(fake.add_message(CH, "s%d" % i)["text"])
            i += 1
            time.sleep(0.02)
    t = threading.Thread(target=stream, daemon=True)
    t.start()
    time.sleep(1)
    hold_connect(fake)
    t0 = time.monotonic()
    fake.drop()
    c.state("reconnecting", 5)
    time.sleep(max(0, 10 - (time.monotonic() - t0)))
    release(fake)
    c.state("connected", 10)
    until_summary(c, 30)
    time.sleep(1)
    stop.set()
    t.join()
    c.drain(1.5)
    got = [m["text"] for m in
           (json.loads(x) for x in c.lines)
           if m.get("type") == "message" and m["text"][1:].isdigit()]
    missed = set(sent) - set(got)
    dups = len(got) - len(set(got))
    print("10 s drop at 50 msg/s, backfill=%s: %d sent, %d received, "
          "%d missed, %d duplicated" % (mode, len(sent), len(got),
                                        len(missed), dups))
    assert dups == 0
    if mode == "off":
        assert len(missed) >= 400, (len(sent), len(missed))
    else:
        assert not missed, sorted(missed, key=lambda s: int(s[1:]))[:20]
