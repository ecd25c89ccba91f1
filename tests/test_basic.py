"""The daemon's everyday job: hello, status, fan-out, sending, replies."""

import json
import threading

from conftest import TOKEN, wait_until


def test_hello_first(daemon, fake):
    c = daemon.client()
    h = c.hello
    assert h["type"] == "slackd.hello"
    assert h["protocol"] == 1
    assert h["version"]
    assert h["state"] == "connected"
    assert h["team"] == {"id": "T0FAKE", "name": "Fake Workspace",
                         "domain": "fake"}
    assert h["self"] == {"id": "U0BOT", "name": "slackd-bot"}


def test_status_request(daemon, fake):
    st = daemon.status()
    assert st["ok"] is True and st["type"] == "slackd.status"
    assert st["state"] == "connected"
    assert st["team"]["id"] == "T0FAKE" and st["self"]["id"] == "U0BOT"
    assert st["reconnects"] == 0 and st["session"] == 1
    assert st["connected_since"] > 0
    for key in ("clients", "queued", "in_flight", "events_received",
                "pid", "last_pong_rtt_ms"):
        assert key in st


def test_status_rtt_after_ping(daemon, fake):
    wait_until(lambda: daemon.status()["last_pong_rtt_ms"] is not None, 5,
               what="a pong round trip")
    pings = fake.session.frames("ping")
    assert pings and all(p["id"] % 2 == 0 for p in pings)


def test_slackctl_status(daemon, fake):
    p = daemon.ctl("status")
    assert p.returncode == 0, p.stderr
    assert "connected to Fake Workspace (T0FAKE) as slackd-bot (U0BOT)" \
        in p.stdout
    assert "reconnects: 0" in p.stdout
    p = daemon.ctl("status", "--json")
    assert p.returncode == 0
    st = json.loads(p.stdout)
    assert st["state"] == "connected"


def test_ping_answered_locally(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 42, "type": "ping", "time": 1234})
    assert r == {"type": "pong", "reply_to": 42, "time": 1234}
    assert not [p for p in fake.session.frames("ping") if p.get("time")]


def test_fanout_three_clients_in_order(daemon, fake):
    clients = [daemon.client() for _ in range(3)]
    n = 3000
    fake.emit_many([{"type": "message", "channel": "C1", "text": "m",
                     "seq": i} for i in range(n)])
    for c in clients:
        got = []
        while len(got) < n:
            m = c.recv(10)
            if m.get("type") == "message":
                got.append(m["seq"])
        assert got == list(range(n))
    st = daemon.status()
    assert st["events_received"] >= n and st["clients_dropped"] == 0


def test_events_forwarded_unchanged(daemon, fake):
    c = daemon.client()
    raw = ('{"type":"message","channel":"C1","text":"a/b \\u00e9 \\"q\\"",'
           '"blocks":[{"type":"section","x":[1,2.5,null,true]}]}')
    fake.emit(raw)
    c.recv_until(lambda m: m.get("type") == "message")
    assert raw in c.lines
    # Whitespace outside strings is removed: one line per event.
    fake.emit('{ "type" : "message",\n "channel":"C2", "text":"x  y" }')
    c.recv_until(lambda m: m.get("channel") == "C2")
    assert '{"type":"message","channel":"C2","text":"x  y"}' in c.lines


def test_send_and_ack(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 7, "type": "message", "channel": "C024BE91L",
                   "text": "Hello"})
    assert r["ok"] is True and r["reply_to"] == 7
    assert r["text"] == "Hello" and r["ts"]
    wire = fake.messages()[-1]
    assert wire["channel"] == "C024BE91L" and wire["text"] == "Hello"
    assert wire["id"] % 2 == 1 and "thread_ts" not in wire
    st = daemon.status()
    assert st["messages_sent"] == 1 and st["in_flight"] == 0


def test_replies_go_to_their_client_only(daemon, fake):
    """Two clients send concurrently with the same ids."""
    a, b = daemon.client(), daemon.client()
    for c in (a, b):
        c.send({"id": 0, "type": "slackd.subscribe", "types": []})
        c.reply(0)
    n = 40

    def blast(c, tag):
        for i in range(1, n + 1):
            c.send({"id": i, "type": "message", "channel": "C%s%d" % (tag, i),
                    "text": "%s-%d" % (tag, i)})
    ta = threading.Thread(target=blast, args=(a, "A"))
    tb = threading.Thread(target=blast, args=(b, "B"))
    ta.start()
    tb.start()
    ta.join()
    tb.join()
    for c, tag in ((a, "A"), (b, "B")):
        got = {}
        while len(got) < n:
            m = c.recv(10)
            assert "reply_to" in m, m
            got[m["reply_to"]] = m
        assert sorted(got) == list(range(1, n + 1))
        for i, m in got.items():
            assert m["ok"] is True and m["text"] == "%s-%d" % (tag, i)
        assert c.drain(0.3) == []
    wire = fake.messages()
    assert len(wire) == 2 * n
    assert len({m["id"] for m in wire}) == 2 * n


def test_thread_and_broadcast_reach_the_wire(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 1, "type": "message", "channel": "C1", "text": "t",
                   "thread_ts": "1700000000.000100", "reply_broadcast": True})
    assert r["ok"] is True
    wire = fake.messages()[-1]
    assert wire["thread_ts"] == "1700000000.000100"
    assert wire["reply_broadcast"] is True
    p = daemon.ctl("send", "-t", "1700000000.000200", "-b", "C2", "in",
                   "thread")
    assert p.returncode == 0, p.stderr
    wire = fake.messages()[-1]
    assert wire["text"] == "in thread" and wire["reply_broadcast"] is True
    assert wire["thread_ts"] == "1700000000.000200"


def test_slackctl_send_prints_ts(daemon, fake):
    p = daemon.ctl("send", "C0GENERAL", "hello", "world")
    assert p.returncode == 0, p.stderr
    ts = p.stdout.strip()
    assert ts and ts == fake.messages()[-1].get("ts", ts)
    sent = fake.session.frames("message")
    assert sent[-1]["text"] == "hello world"


def test_slackctl_send_stdin(daemon, fake):
    p = daemon.ctl("send", "C0GENERAL", input="line one\nline two\n\n")
    assert p.returncode == 0, p.stderr
    assert fake.messages()[-1]["text"] == "line one\nline two"


def test_slackctl_send_stdin_too_long(daemon, fake):
    p = daemon.ctl("send", "C0GENERAL", input="a" * (1024 * 1024 + 1))
    assert p.returncode == 2, p
    assert "standard input is longer than 1048576 bytes" in p.stderr
    assert not fake.messages()


def test_slack_error_reaches_client(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 3, "type": "message", "channel": "CNOTFOUND",
                   "text": "x"})
    assert r["ok"] is False and r["reply_to"] == 3
    assert r["error"] == {"code": -1, "msg": "channel_not_found"}
    p = daemon.ctl("send", "CNOTFOUND", "x")
    assert p.returncode == 1
    assert "channel_not_found" in p.stderr
    assert daemon.status()["messages_failed"] == 2


def test_typing_forwarded(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 5, "type": "typing", "channel": "C1"})
    assert r == {"ok": True, "reply_to": 5}
    t = fake.wait_for(lambda: fake.session.frames("typing"))
    assert t[-1]["channel"] == "C1" and t[-1]["id"] % 2 == 1


def test_subscribe_filters(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 1, "type": "slackd.subscribe",
                   "types": ["reaction_added"], "channels": ["C9"]})
    assert r == {"type": "slackd.subscribe", "reply_to": 1, "ok": True}
    fake.emit({"type": "message", "channel": "C9", "text": "no"})
    fake.emit({"type": "reaction_added", "channel": "C8"})
    fake.emit({"type": "reaction_added", "channel": "C9", "n": 1})
    m = c.recv_until(lambda m: m.get("type") != "slackd.state")
    assert m == {"type": "reaction_added", "channel": "C9", "n": 1}
    assert c.drain(0.3) == []


def test_slackctl_listen(daemon, fake):
    import subprocess
    from conftest import SLACKCTL
    p = subprocess.Popen([SLACKCTL, "-s", daemon.sock, "listen", "-t",
                          "message"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        # The status request's own connection counts as one.
        wait_until(lambda: daemon.status()["clients"] == 2, 5,
                   what="the listener to subscribe")
        # slackctl prints events only once its subscription is in force.
        fake.emit({"type": "message", "channel": "C1", "text": "one"})
        line = p.stdout.readline()
        assert json.loads(line) == {"type": "message", "channel": "C1",
                                    "text": "one"}
        fake.emit({"type": "user_typing", "channel": "C1"})
        fake.emit({"type": "message", "channel": "C1", "text": "two"})
        assert json.loads(p.stdout.readline())["text"] == "two"
    finally:
        p.terminate()
        out, err = p.communicate(5)
    assert TOKEN not in out + err


def test_request_without_id_gets_no_success_reply(daemon, fake):
    c = daemon.client()
    c.send({"type": "message", "channel": "C1", "text": "fire and forget"})
    fake.wait_for(lambda: fake.messages())
    c.send({"type": "message", "channel": "bad"})
    m = c.recv_until(lambda m: m.get("type") == "slackd.error")
    assert m["error"]["name"] == "bad_request"
    assert not [m for m in c.drain(0.3) if "reply_to" in m]


def test_slack_refusal_without_id_reaches_client(daemon, fake):
    c = daemon.client()
    c.send({"type": "message", "channel": "CNOTFOUND", "text": "x"})
    m = c.recv_until(lambda m: m.get("type") == "slackd.error")
    assert m["ok"] is False and m["channel"] == "CNOTFOUND"
    assert m["error"]["msg"] == "channel_not_found"
    assert "reply_to" not in m
