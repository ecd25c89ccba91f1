"""nats_ha: several slackd, one leader on Slack, standbys that take over.

A real nats-server (JetStream in a temporary directory) is started here;
the tests are skipped, saying so, only where nats-server is not
installed.  The fake Slack records every time two RTM sessions were open
at once (assert_one_rtm_session): two slackd must never lead together.
"""

import signal
import time

import pytest

from conftest import SCALE, wait_until
from test_nats import (NATS_SERVER, PREFIX, STREAM, NatsClient, NatsServer,
                       message)

pytestmark = pytest.mark.skipif(
    NATS_SERVER is None,
    reason="nats-server is not installed (Debian: apt-get install "
    "nats-server; scripts/deps installs it): the nats_ha tests need a real "
    "server")

LEASE = 2.0  # s: ha_lease in these tests
CH = "C024BE91L"


@pytest.fixture
def nats(tmp_path):
    d = tmp_path / "nats"
    d.mkdir()
    s = NatsServer(d).start()
    yield s
    s.stop()


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
                   (d.status().get("leader") or ""), 5 * SCALE,
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
