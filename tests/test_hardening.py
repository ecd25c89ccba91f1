"""Hostile input from Slack, many and slow clients, running out of file
descriptors, and where the secret lives."""

import os
import re
import resource
import socket
import subprocess
import threading
import time

import pytest

from conftest import (SLACKCTL, TOKEN, Client, rss_kb, sanitized,
                      wait_until)


def connects(fake):
    return [c for c in fake.api_calls if c["method"] == "rtm.connect"]


def dropped(d, count, words):
    def check():
        st = d.status()
        return st["events_dropped"] == count and \
            words in (st.get("last_dropped") or {}).get("why", "")
    wait_until(check, 5, what="frame dropped: " + words)


def still_fine(d, fake, c, sessions=1):
    """Same session, and the next event gets through."""
    fake.emit({"type": "message", "channel": "C1", "text": "next"})
    m = c.recv_until(lambda m: m.get("type") == "message")
    assert m["text"] == "next"
    assert len(fake.sessions) == sessions
    assert d.status()["state"] == "connected"


# ---- frames Slack should not send ------------------------------------------

def test_non_json_text_frame_dropped(daemon, fake):
    c = daemon.client()
    fake.emit("this is <b>not</b> JSON")
    dropped(daemon, 1, "not a JSON object")
    still_fine(daemon, fake, c)
    p = daemon.ctl("status")
    assert "1 dropped as unusable" in p.stdout
    assert "last dropped" in p.stdout and "not a JSON object" in p.stdout


@pytest.mark.parametrize("frame", [
    '{"type":"message"', '{"type":"message"} {"x":1}', '[1,2]', '"str"',
    '{"text":"\\ud800"}', '{"a":01}', '{"a":NaN}', '{"a":"\x01"}', '',
])
def test_malformed_json_frames_dropped(daemon, fake, frame):
    c = daemon.client()
    fake.emit(frame)
    dropped(daemon, 1, "not a JSON object")
    still_fine(daemon, fake, c)


def test_invalid_utf8_frame_dropped(daemon, fake):
    # A text frame whose payload is not UTF-8: sent as raw bytes in a text
    # frame is not possible with the library, so check jscan's path with
    # a surrogate escape above and an over-deep frame here.
    c = daemon.client()
    fake.emit('{"a":' + "[" * 80 + "]" * 80 + "}")
    dropped(daemon, 1, "nested too deeply")
    still_fine(daemon, fake, c)


def test_binary_frame_dropped(daemon, fake):
    c = daemon.client()
    fake.emit(b"\x00\x01\x02binary")
    dropped(daemon, 1, "binary frame")
    still_fine(daemon, fake, c)


def test_oversized_frame_dropped(daemon_factory, fake):
    d = daemon_factory(max_event="64K").start()
    c = d.client()
    fake.emit({"type": "message", "channel": "C1", "text": "x" * 300000})
    dropped(d, 1, "larger than max_event")
    still_fine(d, fake, c)
    fake.emit({"type": "message", "channel": "C1", "text": "y" * 60000})
    m = c.recv_until(lambda m: m.get("type") == "message")
    assert len(m["text"]) == 60000


def test_unexpected_field_types_forwarded(daemon, fake):
    c = daemon.client()
    odd = [
        '{"type":5,"channel":{"id":"C1"},"reply_to":"x"}',
        '{"type":null,"ok":"yes"}',
        '{"type":"message","channel":["C1"],"text":{"not":"text"}}',
        '{"type":"' + "t" * 200 + '"}',
    ]
    for frame in odd:
        fake.emit(frame)
    got = []
    while len(got) < len(odd):
        m = c.recv(5)
        if m.get("type") != "slackd.state":
            got.append(m)
    assert [c.lines[-len(odd):]] == [odd]
    # Replies nobody asked for go nowhere.
    fake.emit('{"ok":true,"reply_to":12345,"ts":"1.2"}')
    fake.emit('{"ok":true,"reply_to":-7}')
    still_fine(daemon, fake, c)
    assert daemon.status()["events_dropped"] == 0


def test_team_migration_reconnects(daemon, fake):
    c = daemon.client()
    fake.emit({"type": "team_migration_started"})
    m = c.recv_until(lambda m: m.get("type") == "team_migration_started")
    assert m == {"type": "team_migration_started"}
    c.state("connected", 5)
    assert len(connects(fake)) == 2


def test_first_frame_not_hello(daemon_factory, fake):
    fake.set_hello(False)
    d = daemon_factory().start(wait="socket")
    fake.wait_for(lambda: fake.session, 5)
    fake.emit({"type": "message", "channel": "C1", "text": "too early"})
    d.wait_log(r'first frame from Slack was "message", not hello', 5)
    fake.set_hello(True)
    d.wait_state("connected", 10)


# ---- the network -------------------------------------------------------------

def test_tls_certificate_for_another_name(daemon_factory, pki):
    from fakeslack import FakeSlack
    f = FakeSlack(token=TOKEN, certfile=pki["wrongname"],
                  keyfile=pki["key"]).start()
    try:
        d = daemon_factory(fake_=f, ca_file=pki["ca"]).start(wait="socket")
        d.wait_log(r"rtm.connect to localhost failed", 10)
        assert not connects(f)
        st = d.status()
        assert st["state"] in ("reconnecting", "connecting")
        assert "localhost" in (st.get("reason") or "localhost")
    finally:
        f.stop()


def test_connection_refused(daemon_factory, fake):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                          # nothing listens there now
    d = daemon_factory(api_url="http://127.0.0.1:%d/api/" % port).start(
        wait="socket")
    d.wait_state("reconnecting", 10)
    st = d.status()
    assert "rtm.connect to 127.0.0.1 failed" in st["reason"]
    p = d.ctl("status")
    assert "reconnecting in" in p.stdout and "failed" in p.stdout


def test_host_does_not_resolve(daemon_factory, fake):
    d = daemon_factory(api_url="https://no-such-host.invalid/api/").start(
        wait="socket")
    d.wait_state("reconnecting", 20)
    assert "cannot resolve no-such-host.invalid" in d.status()["reason"]
    c = d.client()
    assert c.request({"id": 1, "type": "ping"})["type"] == "pong"


def test_storm_waits_are_visible(daemon_factory, fake):
    fake.set_api_default(500, {"ok": False, "error": "internal_error"})
    d = daemon_factory(reconnect_min="0.05", reconnect_max="0.1",
                       rtm_connect_burst="2",
                       rtm_connect_interval="3").start(wait="socket")
    time.sleep(1)
    st = d.status()
    assert st["state"] == "reconnecting"
    assert "rate limit" in st["reason"]
    assert 1.0 <= st["retry_in"] <= 3.0
    assert len(connects(fake)) == 2
    p = d.ctl("status")
    assert "reconnecting in" in p.stdout and "rate limit" in p.stdout


# ---- many clients, slow clients ---------------------------------------------

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


# ---- where the secret is and is not -----------------------------------------

def test_token_not_in_process_metadata(daemon, fake):
    pid = daemon.proc.pid
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        assert TOKEN.encode() not in f.read()
    with open("/proc/%d/environ" % pid, "rb") as f:
        assert TOKEN.encode() not in f.read()
    # The token's own page is locked and excluded from core dumps.
    with open("/proc/%d/smaps" % pid) as f:
        smaps = f.read()
    flags = [l.split()[1:] for l in smaps.splitlines()
             if l.startswith("VmFlags:")]
    assert any("dd" in fl for fl in flags)


def test_token_not_in_replies_or_status(daemon, fake):
    c = daemon.client()
    fake.queue_api_response(200, {"ok": False, "error": "x-" + TOKEN})
    fake.drop()
    c.state("connected", 10)
    st = daemon.status()
    p = daemon.ctl("status", "--json")
    assert TOKEN not in p.stdout and TOKEN not in str(st)
    assert "[token]" in daemon.log_text()


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
