"""Clients that do not keep up, and a main thread that falls behind: a
client that never reads is paused, not buffered without bound; one over
client_buffer_limit, or over client_buffer_soft for too long, is dropped
with a reason while the others get every event in order; and when the main
thread lags, the upstream thread stops reading from Slack instead of
buffering."""

import re
import socket
import threading
import time

from conftest import rss_kb, sanitized, wait_until


def test_client_that_never_reads_replies_is_paused(daemon, fake):
    c = daemon.client()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = b'{"id":1,"type":"ping","pad":"' + b"p" * 30000 + b'"}\n'
    sent = 0
    c.sock.setblocking(False)
    try:
        for _ in range(2000):
            c.sock.send(big)
            sent += 1
    except BlockingIOError:
        pass
    c.sock.setblocking(True)
    # The daemon stopped reading this client; it is alive and well.
    st = daemon.status()
    assert st["state"] == "connected"
    assert sent < 2000
    other = daemon.client()
    assert other.request({"id": 1, "type": "ping"})["type"] == "pong"


def test_slow_reader_is_dropped_others_are_not(daemon_factory, fake):
    d = daemon_factory(client_buffer_limit="1M").start()
    slow = d.client()               # never reads
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    fast = d.client()
    ev = {"type": "message", "channel": "C1", "text": "z" * 1000}
    got = 0
    for batch in range(20):         # 4 MB in all, the fast one keeps up
        fake.emit_many([dict(ev, seq=batch * 200 + i) for i in range(200)])
        while got < (batch + 1) * 200:
            m = fast.recv(10)
            if m.get("type") == "message":
                assert m["seq"] == got
                got += 1
    wait_until(lambda: d.status()["clients_dropped"] == 1, 5,
               what="slow client dropped")
    assert slow.closed_by_peer(5)
    assert "client_buffer_limit" in d.log_text()


def test_one_stuck_client_among_100(daemon_factory, fake):
    d = daemon_factory(client_buffer_limit="256K").start()
    stuck = d.client()
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    readers = [d.client() for _ in range(99)]
    n, batch, size = 3000, 100, 500
    progress = [0] * len(readers)
    results = {}

    def read(i, c):
        got = []
        while len(got) < n:
            m = c.recv(20)
            if m.get("type") == "message":
                got.append(m["seq"])
                progress[i] = len(got)
        results[i] = got
    threads = [threading.Thread(target=read, args=(i, c))
               for i, c in enumerate(readers)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    for start in range(0, n, batch):       # 1.5 MB, paced by the readers
        fake.emit_many([{"type": "message", "channel": "C1", "seq": i,
                         "text": "x" * size}
                        for i in range(start, start + batch)])
        wait_until(lambda: min(progress) >= start + batch, 20,
                   what="readers to keep up")
    for t in threads:
        t.join(60)
    took = time.monotonic() - t0
    assert len(results) == 99
    assert all(r == list(range(n)) for r in results.values())
    wait_until(lambda: d.status()["clients_dropped"] == 1, 5)
    assert took < 60, took
    # The daemon let go of the stuck client's backlog.
    if not sanitized(d.proc.pid):
        assert rss_kb(d.proc.pid) < 50 * 1024


def test_soft_limit_held_too_long(daemon_factory, fake):
    d = daemon_factory(client_buffer_soft="64K", client_buffer_soft_time="1",
                       client_buffer_limit="64M").start()
    slow = d.client()
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    emitted = 0
    for _ in range(30):     # keep it over 64K unread for more than 1 s
        fake.emit_many([{"type": "message", "channel": "C1",
                         "text": "s" * 1000} for _ in range(100)])
        emitted += 100
        time.sleep(0.1)
        if d.status()["clients_dropped"]:
            break
    assert d.status()["clients_dropped"] == 1
    # Reading now: what the socket held, then the reason, then the end;
    # the backlog in the daemon was thrown away, not sent.
    last, received = None, 0
    while True:
        try:
            last = slow.recv(5)
        except AssertionError:
            break
        received += last.get("type") == "message"
    assert received < emitted, (received, emitted)
    # What it did not get was thrown away, and it was over the soft limit.
    m = re.search(r"dropped as too slow: more than client_buffer_soft "
                  r"\(65536 bytes\) unread for 1 s; (\d+) bytes it had not "
                  r"read thrown away", d.log_text())
    assert m, d.log_text()[-2000:]
    assert int(m.group(1)) > 65536
    assert last["type"] == "slackd.error", last
    assert last["error"]["name"] == "slow_consumer"
    assert "client_buffer_soft" in last["error"]["msg"]
    assert slow.eof


def test_backpressure_when_main_thread_is_behind(daemon_factory, fake):
    """Events from Slack are not buffered without bound when the main
    thread lags: the upstream thread stops reading until it catches up,
    and nothing is lost."""
    d = daemon_factory(log_level="debug", client_buffer_limit="256M",
                       client_buffer_soft="256M", ping_interval="30",
                       pong_timeout="30")
    d.start(env={"SLACKD_TEST_HOOKS": "1"})
    reader = d.client()
    base = rss_kb(d.proc.pid)
    hook = d.client()
    hook.send({"id": 1, "type": "slackd.debug", "sleep": 3})
    n = 20000                     # 20 MB while the main thread sleeps
    fake.emit_many([{"type": "message", "channel": "C1", "seq": i,
                     "text": "b" * 1000} for i in range(n)], wait=False)
    time.sleep(2)
    held = rss_kb(d.proc.pid)
    # While it sleeps, at most the 4 MiB backlog between the threads.
    assert held - base < (24 if sanitized(d.proc.pid) else 8) * 1024, \
        (base, held)
    got = 0
    while got < n:
        m = reader.recv(30)
        if m.get("type") == "message":
            assert m["seq"] == got
            got += 1
    assert "not reading from Slack until it catches up" in d.log_text()
    assert len(fake.sessions) == 1
