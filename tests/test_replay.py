"""Nothing missed by a client that comes back: sequence numbers, the replay
ring, slackd.gap, and slackctl listen --since / --resume.

Every event slackd forwards is numbered "<run>:<n>"; a client that asks
for it sees {"slackd_seq":…} spliced in front of Slack's own bytes, and a
client that subscribes "since" a cursor gets what it missed from the ring,
then live events, with no gap and no duplicate.
"""
import json
import os
import signal
import subprocess
import threading
import time

from conftest import SCALE, SLACKCTL, wait_until

PREFIX = '{"slackd_seq":"'


def msg(i, channel="C024BE91L"):
    return {"type": "message", "channel": channel, "user": "U1",
            "text": str(i), "ts": "1700000000.%06d" % i}


def seq_of(m):
    run, n = m["slackd_seq"].split(":")
    return run, int(n)


def subscribe(c, **kw):
    req = {"id": 900, "type": "slackd.subscribe"}
    req.update(kw)
    r = c.request(req)
    assert r.get("ok") is True, r
    return r


def events(c, n, timeout=10):
    """The next n message events, and the other lines apart (Slack's RTM
    hello, which slackd forwards and numbers too, and slackd's own)."""
    got, other = [], []
    deadline = time.monotonic() + timeout * SCALE
    while len(got) < n:
        m = c.recv(max(0.1, deadline - time.monotonic()))
        (got if m.get("type") == "message" else other).append(m)
    return got, other


def emit_numbered(fake, c, first, count, channel="C024BE91L"):
    """Emit messages first..first+count-1 and return their cursors, as a
    client with seq sees them."""
    fake.emit_many([msg(i, channel) for i in range(first, first + count)])
    got, _ = events(c, count)
    assert [m["text"] for m in got] == [str(i) for i in
                                        range(first, first + count)]
    return [m["slackd_seq"] for m in got]


def test_seq_prefix_is_spliced_byte_exact(daemon, fake):
    plain = daemon.client()
    c = daemon.client()
    run, n0 = c.hello["seq"].split(":")
    n0 = int(n0)  # Slack's RTM hello was forwarded: 1
    assert len(run) == 8 and n0 == 1, c.hello
    subscribe(c, seq=True)
    raw = ('{"type":"message","channel":"C1","text":"caf\\u00e9 \\"q\\" '
           '\u00e9\u2603","ts":"1.000001","n":[1,{"a":null}]}')
    fake.emit(raw)
    fake.emit('{"type":"user_typing","channel":"C1","user":"U2"}')
    events(c, 1)
    c.recv_until(lambda m: m.get("type") == "user_typing")
    line = [ln for ln in c.lines if ln.startswith(PREFIX)]
    assert line[0] == PREFIX + run + ':2",' + raw[1:]
    assert line[1] == (PREFIX + run + ':3",'
                       '"type":"user_typing","channel":"C1","user":"U2"}')
    # The client without seq gets Slack's bytes untouched.
    plain.recv_until(lambda m: m.get("type") == "user_typing")
    assert raw in plain.lines
    assert not any("slackd_seq" in ln for ln in plain.lines)
    # A new client's hello says where the stream is; so does the status.
    assert daemon.client().hello["seq"] == run + ":3"
    st = daemon.status()
    assert st["seq"] == run + ":3"
    assert st["replay"]["events"] == 3 and st["replay"]["oldest"] == run + ":1"
    # Daemon messages carry no number.
    subscribe(c, seq=True)
    daemon.signal(signal.SIGHUP)
    for m in c.drain(0.5):
        assert "slackd_seq" not in m or m.get("type") == "message", m


def test_seq_for_many_clients_with_and_without_filters(daemon, fake):
    a, b, p = daemon.client(), daemon.client(), daemon.client()
    subscribe(a, seq=True)
    subscribe(b, seq=True, channels=["C2"])
    # A large batch (shared blocks) and single events (copies).
    fake.emit_many([msg(i, "C1" if i % 2 else "C2") for i in range(200)])
    ga, _ = events(a, 200)
    gb, _ = events(b, 100)
    gp, _ = events(p, 200)
    base = seq_of(ga[0])[1]
    assert [seq_of(m)[1] for m in ga] == list(range(base, base + 200))
    assert [seq_of(m)[1] for m in gb] == list(range(base, base + 200, 2))
    assert all(m["channel"] == "C2" for m in gb)
    assert all("slackd_seq" not in m for m in gp)


def test_since_within_the_ring_no_gap_no_duplicate(daemon, fake):
    c = daemon.client()
    subscribe(c, seq=True)
    cursors = emit_numbered(fake, c, 0, 10)
    r = daemon.client()
    subscribe(r, since=cursors[3])
    got, own = events(r, 6)
    assert [m["text"] for m in got] == ["4", "5", "6", "7", "8", "9"]
    assert [m["slackd_seq"] for m in got] == cursors[4:]
    assert not [m for m in own if m["type"] == "slackd.gap"], own
    # Then live, numbered on.
    fake.emit(msg(10))
    m, _ = events(r, 1)
    assert m[0]["text"] == "10"
    assert seq_of(m[0])[1] == int(cursors[-1].split(":")[1]) + 1
    assert r.drain(0.3) == []
    # At the newest cursor: nothing replayed, live from there.
    n = daemon.client()
    subscribe(n, since=m[0]["slackd_seq"])
    assert n.drain(0.3) == []


def test_since_while_events_flow_loses_nothing(daemon, fake):
    """Subscribing since a cursor while events keep coming: the replay hands
    over to the live stream with nothing missed or doubled."""
    c = daemon.client()
    subscribe(c, seq=True)
    first = emit_numbered(fake, c, 0, 1)[0]
    total = 3000
    stop = threading.Event()

    def stream():
        for i in range(1, total):
            fake.emit_many([msg(i)], wait=False)
            if i % 50 == 0:
                time.sleep(0.005)
        stop.set()
    t = threading.Thread(target=stream, daemon=True)
    t.start()
    time.sleep(0.05)
    r = daemon.client()
    subscribe(r, since=first)
    got, _ = events(r, total - 1, timeout=30)
    t.join(10)
    assert [m["text"] for m in got] == [str(i) for i in range(1, total)]
    base = int(first.split(":")[1])
    assert [seq_of(m)[1] for m in got] == list(range(base + 1, base + total))
    assert [m for m in r.drain(0.3) if m.get("type") == "message"] == []


def test_filters_apply_to_the_replay(daemon, fake):
    c = daemon.client()
    subscribe(c, seq=True)
    fake.emit_many([msg(i, "C1" if i % 3 else "C2") for i in range(30)])
    got, _ = events(c, 30)
    r = daemon.client()
    subscribe(r, since=got[0]["slackd_seq"], channels=["C2"],
              types=["message"])
    replayed, _ = events(r, 9)
    assert [m["text"] for m in replayed] == [str(i) for i in range(3, 30, 3)]
    fake.emit(msg(100, "C1"))
    fake.emit({"type": "user_typing", "channel": "C2", "user": "U1"})
    fake.emit(msg(101, "C2"))
    live, _ = events(r, 1)
    assert live[0]["text"] == "101"
    assert r.drain(0.3) == []


def test_ring_overflow_gives_one_gap_then_what_it_holds(daemon_factory, fake):
    d = daemon_factory(replay_bytes="8K").start()
    c = d.client()
    subscribe(c, seq=True)
    cursors = emit_numbered(fake, c, 0, 200)
    st = d.status()["replay"]
    oldest = int(st["oldest"].split(":")[1])
    base = int(cursors[0].split(":")[1])
    newest = base + 199
    assert base + 2 < oldest < newest and st["bytes"] <= 8192, st
    r = d.client()
    subscribe(r, since=cursors[0])
    gap = r.recv()
    run = cursors[0].split(":")[0]
    assert gap["type"] == "slackd.gap", gap
    assert gap["reason"] == "expired"
    assert gap["since"] == cursors[0]
    assert gap["missed"] == oldest - base - 1
    assert gap["first"] == "%s:%d" % (run, base + 1)
    assert gap["last"] == "%s:%d" % (run, oldest - 1)
    assert isinstance(gap["to"], float) and gap["to"] > 1.7e9
    got, own = events(r, newest - oldest + 1)
    assert [seq_of(m)[1] for m in got] == list(range(oldest, newest + 1))
    assert not own
    fake.emit(msg(500))
    live, _ = events(r, 1)
    assert seq_of(live[0])[1] == newest + 1
    # replay_bytes = 0 keeps nothing: any resume is a gap, then live.
    d.settings["replay_bytes"] = "0"
    d.write_config()
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    fake.emit(msg(501))
    events(c, 2)
    assert d.status()["replay"]["events"] == 0
    z = d.client()
    subscribe(z, since=cursors[-1])
    gap = z.recv()
    assert gap["type"] == "slackd.gap" and gap["missed"] == 2, gap
    assert z.drain(0.3) == []


def test_cursor_from_another_run_is_a_gap(daemon_factory, fake):
    d = daemon_factory().start()
    c = d.client()
    subscribe(c, seq=True)
    old = emit_numbered(fake, c, 0, 3)[-1]
    c.close()
    d.stop()
    d.start()
    c = d.client()
    run = c.hello["seq"].split(":")[0]
    assert run != old.split(":")[0], "a new run id at every start"
    subscribe(c, seq=True)
    new = emit_numbered(fake, c, 10, 2)
    r = d.client()
    subscribe(r, since=old)
    gap = r.recv()
    assert gap["type"] == "slackd.gap" and gap["reason"] == "restart", gap
    assert gap["missed"] is None and gap["since"] == old
    assert "first" not in gap and isinstance(gap["started"], float)
    got, other = events(r, 2)
    assert [m["slackd_seq"] for m in got] == new, \
        "the new run's events follow the gap"
    assert [m["slackd_seq"] for m in other] == [run + ":1"], \
        "Slack's hello, this run's first event, too"


def test_bad_cursors_are_refused(daemon, fake):
    c = daemon.client()
    run = c.hello["seq"].split(":")[0]
    for bad in ["", "nocolon", "abc:", "abc:x", "toolongrunid:1", "a b:1",
                "abc:01"]:
        r = c.request({"id": 5, "type": "slackd.subscribe", "since": bad})
        assert r["ok"] is False and r["error"]["name"] == "bad_request", r
        assert "cursor" in r["error"]["msg"]
    r = c.request({"id": 6, "type": "slackd.subscribe", "since": 5})
    assert r["ok"] is False and "string" in r["error"]["msg"]
    r = c.request({"id": 7, "type": "slackd.subscribe", "seq": "yes"})
    assert r["ok"] is False and "true or false" in r["error"]["msg"]
    r = c.request({"id": 8, "type": "slackd.subscribe",
                   "since": run + ":5"})
    assert r["ok"] is False and "ahead" in r["error"]["msg"], r
    # The old subscription stays after a refused one.
    fake.emit(msg(1))
    m, _ = events(c, 1)
    assert "slackd_seq" not in m[0]


def ctl_listen(d, *args):
    return subprocess.Popen(
        [SLACKCTL, "-s", d.sock, "listen"] + list(args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_lines(p, n, timeout=10):
    out = []
    deadline = time.monotonic() + timeout * SCALE
    while len(out) < n:
        assert time.monotonic() < deadline, "slackctl printed %d of %d" % (
            len(out), n)
        line = p.stdout.readline()
        assert line, "slackctl ended: %s" % p.stderr.read()
        m = json.loads(line)
        if m.get("type") == "message":
            out.append(m)
    return out


def test_slackctl_since_prints_from_the_cursor(daemon, fake):
    c = daemon.client()
    subscribe(c, seq=True)
    cursors = emit_numbered(fake, c, 0, 5)
    p = ctl_listen(daemon, "--since", cursors[1], "-c", "C024BE91L")
    try:
        got = read_lines(p, 3)
        assert [m["text"] for m in got] == ["2", "3", "4"]
        fake.emit(msg(5))
        assert read_lines(p, 1)[0]["text"] == "5"
    finally:
        p.terminate()
        p.wait()
    r = daemon.ctl("listen", "--since", "nonsense")
    assert r.returncode == 2 and "--since takes a cursor" in r.stderr


def test_slackctl_resume_across_kill_9(daemon, fake, tmp_path):
    """A script killed mid-stream and restarted with --resume gets every
    event exactly once over its two runs, including those that came while
    it was dead and while it was starting again."""
    cursor = str(tmp_path / "cursor")
    c = daemon.client()
    subscribe(c, seq=True)
    p = ctl_listen(daemon, "--resume", cursor)
    wait_until(lambda: os.path.exists(cursor) or True, 1)
    time.sleep(0.3)  # subscribed: its first events are numbered
    fake.emit_many([msg(i) for i in range(300)])
    first = read_lines(p, 300)
    wait_until(lambda: open(cursor).read().strip() ==
               first[-1]["slackd_seq"], 5, what="the cursor saved")
    assert not os.path.exists(cursor + ".tmp")
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert open(cursor).read() == first[-1]["slackd_seq"] + "\n"
    fake.emit_many([msg(i) for i in range(300, 600)])   # while it is dead
    events(c, 600)
    done = threading.Event()

    def more():                                         # while it starts
        for i in range(600, 900):
            fake.emit_many([msg(i)], wait=False)
            if i % 20 == 0:
                time.sleep(0.002)
        done.set()
    t = threading.Thread(target=more, daemon=True)
    t.start()
    q = ctl_listen(daemon, "--resume", cursor)
    try:
        second = read_lines(q, 600, timeout=30)
        t.join(10)
        texts = [m["text"] for m in first + second]
        assert texts == [str(i) for i in range(900)], "each event once"
        wait_until(lambda: open(cursor).read().strip() ==
                   second[-1]["slackd_seq"], 5, what="the cursor saved")
    finally:
        q.terminate()
        q.wait()
    assert "missed" not in q.stderr.read()
    # A file that is not a cursor is refused, saying why.
    with open(cursor, "w") as f:
        f.write("garbage\n")
    r = daemon.ctl("listen", "--resume", cursor)
    assert r.returncode == 2 and "does not hold a cursor" in r.stderr


def test_slackctl_resume_after_a_restart_says_so(daemon_factory, fake,
                                                 tmp_path):
    cursor = str(tmp_path / "cursor")
    d = daemon_factory().start()
    c = d.client()
    subscribe(c, seq=True)
    emit_numbered(fake, c, 0, 2)
    with open(cursor, "w") as f:
        f.write(c.lines[-1][len(PREFIX):].split('"')[0] + "\n")
    c.close()
    d.stop()
    d.start()
    c = d.client()
    subscribe(c, seq=True)
    emit_numbered(fake, c, 2, 1)
    p = ctl_listen(d, "--resume", cursor)
    try:
        got = read_lines(p, 1)
        assert got[0]["text"] == "2"
    finally:
        p.terminate()
        p.wait()
    assert "slackd has restarted since" in p.stderr.read()


def test_injected_events_are_numbered_kept_and_filtered(daemon_factory, fake):
    """hub_inject() (the test hook reaches it): an event that did not come
    from Slack's connection is numbered, fanned out, filtered and kept for
    replay like any other."""
    d = daemon_factory()
    d.start(env={"SLACKD_TEST_HOOKS": "1"})
    c = d.client()
    subscribe(c, seq=True)
    f = d.client()
    subscribe(f, channels=["C9"])
    before = emit_numbered(fake, c, 0, 1)[0]
    c.send({"id": 3, "type": "slackd.debug", "inject": msg(1, "C9")})
    m, other = events(c, 1)  # the event goes out before the reply
    r = other[0] if other else c.recv()
    assert r["reply_to"] == 3 and r["ok"] is True, r
    assert m[0]["text"] == "1" and m[0]["slackd_seq"] == r["slackd_seq"]
    assert seq_of(m[0])[1] == int(before.split(":")[1]) + 1
    got, _ = events(f, 1)
    assert got[0]["text"] == "1" and "slackd_seq" not in got[0]
    fake.emit(msg(2, "C1"))
    events(c, 1)
    z = d.client()
    subscribe(z, since=before)
    got, _ = events(z, 2)
    assert [x["text"] for x in got] == ["1", "2"]
    bad = c.request({"id": 4, "type": "slackd.debug",
                     "inject": {"type": "x" * 80}})
    assert bad["ok"] is False and "too long" in bad["error"]["msg"]


def test_a_replay_larger_than_the_client_buffer_is_paced(daemon_factory,
                                                         fake):
    """The replay goes as fast as the client reads: a megabyte replayed to
    a client whose buffer limit is 64K does not get it dropped."""
    d = daemon_factory(client_buffer_limit="64K",
                       client_buffer_soft="16K").start()
    q = d.client()
    subscribe(q, types=[])  # asks for the status, takes no events
    run, n = q.hello["seq"].split(":")
    pad = "x" * 1000
    fake.emit_many([dict(msg(i), pad=pad) for i in range(1000)])
    wait_until(lambda: q.request({"id": 2, "type": "slackd.status"})["seq"]
               == "%s:%d" % (run, int(n) + 1000), 10,
               what="the events numbered")
    r = d.client()
    subscribe(r, since="%s:%d" % (run, int(n) + 1))
    fake.emit(msg(1000))
    replayed, other = events(r, 1000, timeout=30)
    assert [m["text"] for m in replayed] == [str(i) for i in range(1, 1001)]
    assert not [m for m in other if m.get("type") == "slackd.error"], other
    assert q.request({"id": 3, "type": "slackd.status"})[
        "clients_dropped"] == 0
