"""Limits slackd keeps and says it keeps: the RTM frame size, queue_max, the
per-channel send rate, a thousand clients at once, and running out of file
descriptors (no busy loop; clients are accepted again once fds free up)."""

import os
import resource
import socket
import time

import pytest

from conftest import Client


def test_message_over_rtm_frame_limit_refused(daemon, fake):
    c = daemon.client()
    r = c.request({"id": 1, "type": "message", "channel": "C1",
                   "text": "x" * 16400})
    assert r["error"]["name"] == "too_long"
    assert "16384" in r["error"]["msg"]
    # Quotes double in JSON: the limit is on the encoded frame.
    r = c.request({"id": 2, "type": "message", "channel": "C1",
                   "text": '"' * 8200})
    assert r["error"]["name"] == "too_long"
    r = c.request({"id": 3, "type": "message", "channel": "C1",
                   "text": "y" * 16000})
    assert r["ok"] is True
    assert len(fake.messages()) == 1


def test_queue_full(daemon_factory, fake):
    d = daemon_factory(queue_max="3").start()
    c = d.client()
    fake.hold_acks(True)
    for i in range(1, 4):
        c.send({"id": i, "type": "message", "channel": "C%d" % i,
                "text": "x"})
    fake.wait_for(lambda: len(fake.messages()) == 3, 5)
    r = c.request({"id": 4, "type": "message", "channel": "C9",
                   "text": "x"})
    assert r["error"]["name"] == "queue_full"
    assert "queue_max 3" in r["error"]["msg"]


def test_per_channel_rate_limit(daemon_factory, fake):
    d = daemon_factory(send_rate="2", send_burst="2").start()
    c = d.client()
    for i in range(1, 7):
        c.send({"id": i, "type": "message", "channel": "C1", "text": str(i)})
    c.send({"id": 100, "type": "message", "channel": "C2", "text": "other"})
    replies = {}
    while len(replies) < 7:
        m = c.recv(10)
        if "reply_to" in m:
            replies[m["reply_to"]] = m
    assert all(r["ok"] for r in replies.values())
    times = {m["text"]: t for t, m in fake.session.received_timed
             if m.get("type") == "message"}
    # Burst of 2, then 2 per second, in order; the other channel waits not.
    assert times["other"] - times["1"] < 0.5
    assert times["6"] - times["1"] >= 1.8
    order = [m["text"] for m in fake.messages() if m["channel"] == "C1"]
    assert order == ["1", "2", "3", "4", "5", "6"]


def test_thousand_clients(daemon_factory, fake):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2200:
        pytest.skip("needs 2200 file descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2200), hard))
    try:
        d = daemon_factory().start()
        clients = [Client(d.sock) for _ in range(1000)]
        d.clients.extend(clients)
        assert all(c.hello["state"] == "connected" for c in clients)
        fake.emit_many([{"type": "message", "channel": "C1", "seq": i}
                        for i in range(20)])
        for c in clients:
            seqs = []
            while len(seqs) < 20:
                m = c.recv(20)
                if m.get("type") == "message":
                    seqs.append(m["seq"])
            assert seqs == list(range(20))
        assert d.status()["clients"] == 1001   # with the status client
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_file_descriptors(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()

    limit = 48
    orig = resource.getrlimit(resource.RLIMIT_NOFILE)

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    import subprocess as sp
    real_popen = sp.Popen

    def popen(*a, **kw):
        kw["preexec_fn"] = low_limit
        return real_popen(*a, **kw)
    sp.Popen = popen
    try:
        d.start()
    finally:
        sp.Popen = real_popen
    socks = []
    for _ in range(80):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(d.sock)          # the backlog takes them all
        socks.append(s)
    d.wait_log("cannot accept clients: Too many open files", 10)
    cpu0 = cpu_seconds(d.proc.pid)
    time.sleep(2)
    assert cpu_seconds(d.proc.pid) - cpu0 < 0.5, "busy loop"
    for s in socks[:40]:
        s.close()
    # The ones still waiting are accepted and greeted once fds free up.
    for s in socks[40:]:
        s.settimeout(10)
        assert b"slackd.hello" in s.recv(4096)
        s.close()
    assert "accepting clients again" in d.log_text()
    assert orig == resource.getrlimit(resource.RLIMIT_NOFILE)
