"""nats_ha: several slackd, one leader on Slack, standbys that take over.

A real nats-server (JetStream in a temporary directory) is started here;
the tests are skipped, saying so, only where nats-server is not
installed.  The fake Slack records every time two RTM sessions were open
at once (assert_one_rtm_session): two slackd must never lead together.
"""

import json
import signal
import time

import pytest

from conftest import SCALE, TcpProxy, wait_until
from test_nats import (NATS_SERVER, PREFIX, STREAM, NatsClient,  # noqa: F401
                       message, nats)

pytestmark = pytest.mark.skipif(
    NATS_SERVER is None,
    reason="nats-server is not installed (Debian: apt-get install "
    "nats-server; scripts/deps installs it): the nats_ha tests need a real "
    "server")

LEASE = 2.0  # s: ha_lease in these tests
CH = "C024BE91L"


def ha_daemons(daemon_factory, nats, n, lease=LEASE):
    ds = []
    for _ in range(n):
        d = daemon_factory(nats_url=nats.url, nats_ha="yes",
                           ha_lease="%g" % lease, nats_prefix=PREFIX,
                           nats_stream=STREAM)
        d.start(wait="socket")
        ds.append(d)
    return ds


def state(d):
    try:
        return d.status()["state"]
    except (OSError, AssertionError, ValueError):
        return None


def leaders(ds):
    return [d for d in ds if d.proc.poll() is None and
            state(d) == "connected"]


def one_leader(ds, timeout):
    got = []

    def check():
        got[:] = leaders(ds)
        return len(got) == 1
    wait_until(check, timeout * SCALE, interval=0.05, what="one leader")
    return got[0]


def recv_message(c, text, timeout=10):
    return c.recv_until(lambda m: m.get("type") == "message" and
                        m.get("text") == text, timeout * SCALE,
                        what="message %r" % text)


def test_ha_one_leader_takeover_after_sigkill(daemon_factory, fake, nats):
    ds = ha_daemons(daemon_factory, nats, 3)
    leader = one_leader(ds, 15)
    standbys = [d for d in ds if d is not leader]
    for d in standbys:
        st = d.status()
        assert st["state"] == "standby", st
        # Which slackd leads, as the lease says (read every lease/4).
        wait_until(lambda: "pid %d" % leader.proc.pid in
                   (d.status().get("leader") or ""), 15 * SCALE,
                   what="the standby to name the leader")
    p = standbys[0].ctl("status")
    assert p.returncode == 0, p.stderr
    assert "state:      standby (nats_ha), the leader: " in p.stdout, p.stdout
    assert "pid %d" % leader.proc.pid in p.stdout, p.stdout
    assert len(fake.open_sessions) == 1
    clients = {d: d.client() for d in ds}

    # Events reach every local socket: the standbys' from the stream.
    for i in range(1, 4):
        fake.add_message(CH, "hello %d" % i)
    for d in ds:
        for i in range(1, 4):
            recv_message(clients[d], "hello %d" % i)

    # A standby forwards a message to the leader, which sends it once.
    c = clients[standbys[0]]
    c.send({"id": 7, "type": "message", "channel": "C024BE91L",
            "text": "from a standby"})
    r = c.recv_until(lambda m: m.get("reply_to") == 7, 10 * SCALE)
    assert r.get("ok") is True, r
    assert [f["text"] for f in fake.messages()].count("from a standby") == 1

    # The leader dies: a standby leads within ha_lease + 5 s.
    leader.signal(signal.SIGKILL)
    leader.wait_exit()
    leader.expected_exit = None
    t0 = time.monotonic()
    # Slack gets a message while no slackd leads: the new leader recovers it.
    fake.add_message(CH, "in the gap", deliver=False)
    new = one_leader(standbys, LEASE + 5)
    took = time.monotonic() - t0
    assert took <= LEASE + 5, took
    wait_until(lambda: len(fake.open_sessions) == 1, 10 * SCALE,
               what="the new leader's session")
    for d in standbys:
        m = recv_message(clients[d], "in the gap", 20)
        assert m.get("slackd_backfill"), m
    for i in range(4, 7):
        fake.add_message(CH, "hello %d" % i)
    for d in standbys:
        for i in range(4, 7):
            recv_message(clients[d], "hello %d" % i)
    other = [d for d in standbys if d is not new][0]
    assert other.status()["state"] == "standby"

    # The stream: every event once (Nats-Msg-Id, and the bytes).
    nc = NatsClient(nats.url)
    msgs = [m for m in nc.stream_all(STREAM)
            if m[0].startswith(PREFIX + ".event.message")]
    ids = [h.get("Nats-Msg-Id") for _, h, _ in msgs]
    assert len(ids) == len(set(ids)), ids
    bodies = [b for _, _, b in msgs]
    assert len(bodies) == len(set(bodies))
    for text in ["hello %d" % i for i in range(1, 7)] + ["in the gap"]:
        n = sum(1 for b in bodies if b'"%s"' % text.encode() in b)
        assert n == 1, (text, n)
    fake.assert_one_rtm_session()
    assert fake.rtm_live_max == 1


def test_ha_leader_cut_off_from_nats_drops_slack(daemon_factory, fake, nats):
    ds = ha_daemons(daemon_factory, nats, 2)
    leader = one_leader(ds, 15)
    assert len(fake.open_sessions) == 1
    nats.stop()
    t0 = time.monotonic()
    wait_until(lambda: not fake.open_sessions, LEASE * SCALE, interval=0.02,
               what="the leader to close its Slack session")
    dropped = time.monotonic() - t0
    # Before the lease could run out on the server and be taken over.
    assert dropped < LEASE, dropped
    leader.wait_log("standing by \\(nats_ha\\)")
    nats.start()
    one_leader(ds, 20)
    fake.assert_one_rtm_session()


def test_ha_clean_stop_hands_over_at_once(daemon_factory, fake, nats):
    lease = 6.0
    ds = ha_daemons(daemon_factory, nats, 2, lease=lease)
    leader = one_leader(ds, 20)
    other = [d for d in ds if d is not leader][0]
    c = other.client()
    leader.stop()
    t0 = time.monotonic()
    one_leader([other], lease)
    took = time.monotonic() - t0
    # Without the release it would wait for the lease to run out.
    assert took < lease / 2, took
    c.recv_until(lambda m: m.get("type") == "slackd.state" and
                 m.get("state") == "connected", 10 * SCALE)
    fake.emit(message(9))
    recv_message(c, "hello 9")
    fake.assert_one_rtm_session()


def hpub_request(nc, key, data, inbox):
    """A request with a Slackd-Request-Id header, as a standby sends it."""
    hdr = b"NATS/1.0\r\nSlackd-Request-Id: %s\r\n\r\n" % key.encode()
    body = data.encode()
    nc.sub(inbox)
    nc.sock.sendall(b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        (PREFIX + ".request").encode(), inbox.encode(), len(hdr),
        len(hdr) + len(body), hdr, body))
    subj, _, reply = nc.next_msg(10 * SCALE)
    assert subj == inbox
    return reply


def test_ha_request_id_runs_once(daemon_factory, fake, nats):
    ds = ha_daemons(daemon_factory, nats, 1)
    one_leader(ds, 15)
    nc = NatsClient(nats.url)
    req = ('{"id":5,"type":"message","channel":"C024BE91L",'
           '"text":"only once"}')
    first = hpub_request(nc, "host-b pid 1 7", req, "_INBOX.ha.1")
    assert b'"ok":true' in first, first
    # The same request again (a retry): the same reply, not a second post.
    again = hpub_request(nc, "host-b pid 1 7", req, "_INBOX.ha.2")
    assert again == first
    time.sleep(0.3)
    assert [f["text"] for f in fake.messages()].count("only once") == 1
    # Another id is another request.
    other = hpub_request(nc, "host-b pid 1 8", req, "_INBOX.ha.3")
    assert b'"ok":true' in other
    wait_until(lambda: [f["text"] for f in fake.messages()]
               .count("only once") == 2, 5 * SCALE, what="the second post")


def seq_client(d, since=None):
    """A client of d that asks for slackd_seq (and replays from since)."""
    c = d.client()
    req = {"id": 900, "type": "slackd.subscribe", "seq": True}
    if since is not None:
        req["since"] = since
    r = c.request(req)
    assert r.get("ok") is True, r
    return c


def messages_until(c, text, timeout=20):
    """The lines c gets up to and including the message text."""
    got = []
    c.recv_until(lambda m: got.append(m) or (
        m.get("type") == "message" and m.get("text") == text),
        timeout * SCALE, what="message %r" % text)
    return got


def test_ha_standbys_number_events_as_the_leader(daemon_factory, fake, nats):
    ds = ha_daemons(daemon_factory, nats, 3)
    leader = one_leader(ds, 15)
    standbys = [d for d in ds if d is not leader]
    for d in standbys:
        wait_until(lambda: d.status().get("leader"), 15 * SCALE,
                   what="the standby to name the leader")
    clients = {d: seq_client(d) for d in ds}
    for i in range(1, 4):
        fake.add_message(CH, "hello %d" % i)
    seen = {}
    for d in ds:
        got = [m for m in messages_until(clients[d], "hello 3")
               if m.get("type") == "message"]
        seen[d] = [(m["text"], m["slackd_seq"]) for m in got]
    # Same lines, same numbers, on every host: the leader's run.
    assert seen[standbys[0]] == seen[leader] == seen[standbys[1]], seen
    run = leader.status()["seq"].split(":")[0]
    assert all(s.startswith(run + ":") for _, s in seen[leader])
    for d in standbys:
        assert d.status()["seq"] == leader.status()["seq"]
    # The stream carries the same cursor as Slackd-Seq.
    nc = NatsClient(nats.url)
    heads = {json.loads(b)["text"]: h["Slackd-Seq"]
             for s, h, b in nc.stream_all(STREAM)
             if s.startswith(PREFIX + ".event.message")}
    for text, cur in seen[leader]:
        assert heads[text] == cur, (text, heads, cur)
    # A standby replays from its ring by the leader's cursor.
    first = seen[leader][0][1]
    r = seq_client(standbys[0], since=first)
    got = [m for m in messages_until(r, "hello 3")
           if m.get("type") in ("message", "slackd.gap")]
    assert [(m["text"], m["slackd_seq"]) for m in got] == \
        seen[leader][1:], got

    # The leader dies.  A client of a standby that was away from before
    # the kill resumes on whichever standby leads now: what that host read
    # from the stream, then what it numbers in a run of its own.
    cursor = seen[leader][-1][1]
    leader.signal(signal.SIGKILL)
    leader.wait_exit()
    leader.expected_exit = None
    new = one_leader(standbys, LEASE + 5)
    other = [d for d in standbys if d is not new][0]
    wait_until(lambda: len(fake.open_sessions) == 1, 10 * SCALE,
               what="the new leader's session")
    for i in range(4, 6):
        fake.add_message(CH, "hello %d" % i)
    mine = [m for m in messages_until(clients[new], "hello 5")
            if m.get("type") == "message"]
    theirs = [m for m in messages_until(clients[other], "hello 5")
              if m.get("type") == "message"]
    assert [(m["text"], m["slackd_seq"]) for m in mine] == \
        [(m["text"], m["slackd_seq"]) for m in theirs]
    newrun = mine[-1]["slackd_seq"].split(":")[0]
    assert newrun != run
    r = seq_client(new, since=cursor)
    got = [m for m in messages_until(r, "hello 5")
           if m.get("type") in ("message", "slackd.gap")]
    assert [m.get("text") for m in got] == ["hello 4", "hello 5"], got
    assert [m["slackd_seq"] for m in got] == \
        [m["slackd_seq"] for m in mine[-2:]]
    nc.close()
    fake.assert_one_rtm_session()


def hpub_event(nc, subject, seq, event):
    """Publish an event with a Slackd-Seq header, as a leader does."""
    hdr = b"NATS/1.0\r\nSlackd-Seq: %s\r\n\r\n" % seq.encode()
    body = json.dumps(event, separators=(",", ":")).encode()
    nc.sock.sendall(b"HPUB %s %d %d\r\n%s%s\r\n" % (
        subject.encode(), len(hdr), len(hdr) + len(body), hdr, body))


def test_ha_standby_skipped_and_repeated_numbers(daemon_factory, fake, nats):
    """What a standby reads out of order: a number it has had is dropped,
    numbers it never got are a slackd.gap saying where they are."""
    ds = ha_daemons(daemon_factory, nats, 2)
    leader = one_leader(ds, 15)
    standby = [d for d in ds if d is not leader][0]
    # (it follows the stream once it has read the lease)
    wait_until(lambda: standby.status().get("leader"), 15 * SCALE,
               what="the standby to name the leader")
    c = seq_client(standby)
    fake.add_message(CH, "hello 1")
    m = recv_message(c, "hello 1")
    run, n = m["slackd_seq"].split(":")
    n = int(n)
    nc = NatsClient(nats.url)
    subj = PREFIX + ".event.message." + CH
    # a repeat of the last number: dropped
    hpub_event(nc, subj, "%s:%d" % (run, n),
               {"type": "message", "channel": CH, "text": "repeat"})
    # three numbers skipped: one gap, then the event under its number
    hpub_event(nc, subj, "%s:%d" % (run, n + 4),
               {"type": "message", "channel": CH, "text": "after a hole"})
    got = messages_until(c, "after a hole")
    assert "repeat" not in [x.get("text") for x in got]
    gaps = [x for x in got if x.get("type") == "slackd.gap"]
    assert len(gaps) == 1, got
    g = gaps[0]
    assert g["reason"] == "standby" and g["missed"] == 3, g
    assert g["first"] == "%s:%d" % (run, n + 1)
    assert g["last"] == "%s:%d" % (run, n + 3)
    assert "they are in the stream" in g["why"]
    assert got[-1]["slackd_seq"] == "%s:%d" % (run, n + 4)
    standby.wait_log("this standby did not get the leader's events")
    # a resume from before the hole: a gap (unknown), then what there is
    r = seq_client(standby, since="%s:%d" % (run, n + 2))
    first = r.recv_until(lambda x: x.get("type") in ("slackd.gap",
                                                     "message"),
                         10 * SCALE)
    assert first["type"] == "slackd.gap", first
    # a resume from just before "hello 1" still replays it, then the rest
    r = seq_client(standby, since="%s:%d" % (run, n - 1))
    got = messages_until(r, "after a hole")
    assert [x.get("text") for x in got
            if x.get("type") == "message"] == ["hello 1", "after a hole"]
    assert [x["type"] for x in got].count("slackd.gap") == 1
    nc.close()


def test_ha_queued_requests_go_to_the_next_leader(daemon_factory, fake, nats):
    """Messages waiting in a leader's queue (held back by send_rate) when
    it stands down are sent by whichever slackd leads next: each once, and
    each answered to the client that sent it."""
    ds = []
    for _ in range(2):
        d = daemon_factory(nats_url=nats.url, nats_ha="yes",
                           ha_lease="%g" % LEASE, nats_prefix=PREFIX,
                           nats_stream=STREAM, send_rate="0.2",
                           send_burst="1")
        d.start(wait="socket")
        ds.append(d)
    leader = one_leader(ds, 15)
    c = leader.client()
    for i in range(4):
        c.send({"id": 10 + i, "type": "message", "channel": CH,
                "text": "queued %d" % i})
    r = c.recv_until(lambda m: m.get("reply_to") == 10, 10 * SCALE)
    assert r.get("ok") is True, r
    # the others wait for the channel's next token (5 s each)
    assert leader.status()["queued"] == 3, leader.status()
    nats.stop()
    leader.wait_log("standing by \\(nats_ha\\)")
    leader.wait_log("message 7 to %s: this slackd stands by, forwarded to "
                    "the leader" % CH)
    assert leader.status()["queued"] == 0
    nats.start()
    one_leader(ds, 20)
    answers = {}

    def answer(m):
        if "reply_to" in m:
            answers[m["reply_to"]] = m
        return len(answers) == 3
    c.recv_until(answer, 40 * SCALE, what="the three answers")
    for i in range(11, 14):
        assert answers[i].get("ok") is True, answers
    texts = [f["text"] for f in fake.messages()]
    for i in range(4):
        assert texts.count("queued %d" % i) == 1, texts
    fake.assert_one_rtm_session()


def test_ha_standby_link_drop_misses_nothing(daemon_factory, fake, nats):
    """A standby whose link to NATS drops while the leader publishes gets
    the events it missed from the stream once it is back: no gap."""
    proxy = TcpProxy(nats.port)
    try:
        leader = daemon_factory(nats_url=nats.url, nats_ha="yes",
                                ha_lease="%g" % LEASE, nats_prefix=PREFIX,
                                nats_stream=STREAM)
        leader.start(wait="socket")
        one_leader([leader], 15)
        standby = daemon_factory(
            nats_url="nats://127.0.0.1:%d" % proxy.port, nats_ha="yes",
            ha_lease="%g" % LEASE, nats_prefix=PREFIX, nats_stream=STREAM)
        standby.start(wait="socket")
        wait_until(lambda: standby.status().get("leader"), 15 * SCALE,
                   what="the standby to name the leader")
        c = seq_client(standby)
        fake.add_message(CH, "before")
        recv_message(c, "before")
        proxy.cut()  # the standby's link drops
        wait_until(lambda: standby.status()["nats"]["state"] !=
                   "connected", 10 * SCALE, what="the standby's link down")
        for i in range(1, 6):
            fake.add_message(CH, "while cut %d" % i)
        lc = seq_client(leader)
        fake.add_message(CH, "still cut")
        recv_message(lc, "still cut")
        time.sleep(0.5)
        proxy.set("pass")
        got = messages_until(c, "still cut", 30)
        texts = [m.get("text") for m in got if m.get("type") == "message"]
        assert texts == ["while cut %d" % i for i in range(1, 6)] + \
            ["still cut"], got
        assert not [m for m in got if m.get("type") == "slackd.gap"], got
        seqs = [int(m["slackd_seq"].split(":")[1]) for m in got
                if m.get("type") == "message"]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert leader.status()["state"] == "connected"
        fake.assert_one_rtm_session()
    finally:
        proxy.close()


def test_ha_former_leader_does_not_repeat_its_own_events(daemon_factory,
                                                         fake, nats):
    """A leader cut off from NATS stands down with events it could not
    publish; once NATS is back it publishes them and, standing by, reads
    them back from the stream: its clients, which got them live, do not
    get them twice."""
    ds = ha_daemons(daemon_factory, nats, 2)
    leader = one_leader(ds, 15)
    c = seq_client(leader)
    nats.stop()
    for i in range(1, 3):
        fake.add_message(CH, "during the cut %d" % i)
    got = messages_until(c, "during the cut 2")
    leader.wait_log("standing by \\(nats_ha\\)")
    nats.start()
    one_leader(ds, 20)
    wait_until(lambda: leader.status()["nats"]["backlog"] == 0, 20 * SCALE,
               what="the former leader's backlog published")
    fake.add_message(CH, "after")
    got += messages_until(c, "after")
    texts = [m.get("text") for m in got if m.get("type") == "message"]
    assert texts == ["during the cut 1", "during the cut 2", "after"], got
    nc = NatsClient(nats.url)
    stored = [json.loads(b).get("text") for s, _, b in nc.stream_all(STREAM)
              if s.startswith(PREFIX + ".event.message")]
    assert stored.count("during the cut 1") == 1, stored
    nc.close()
