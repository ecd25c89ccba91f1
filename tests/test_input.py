"""Bad input on the local socket: clear errors, nobody else disturbed."""

import pytest

from conftest import wait_until

BAD_LINES = [
    # (line, error name, words the message must contain)
    (b"this is not json", "bad_json", "not valid JSON"),
    (b"{'id':1,'type':'ping'}", "bad_json", "not valid JSON"),
    (b'{"id":1,"type":"ping"} trailing', "bad_json", "at byte 23"),
    (b'{"id":1,"type":"ping"', "bad_json", "ends inside"),
    (b"[1,2,3]", "not_object", "JSON object"),
    (b'"just a string"', "not_object", "JSON object"),
    (b"42", "not_object", "JSON object"),
    (b'{"id":1,"a":' + b"[" * 40 + b"]" * 40 + b"}", "bad_json",
     "nested more than 16"),
    (b'{"id":1,"type":"message","channel":"C1","text":"\xff\xfe"}',
     "bad_json", "not valid JSON"),
    (b'{"id":1,"type":"message","channel":"C1","text":"a\\u0000b"}',
     "bad_request", "NUL"),
    (b'{"id":1,"type":"launch_missiles"}', "unknown_type",
     "launch_missiles"),
    (b'{"id":1}', "bad_request", "no \\\"type\\\""),
    (b'{"id":1,"type":7}', "bad_request", "\"type\" must be a string"),
    (b'{"id":"x","type":"ping"}', "bad_request", "\"id\" must be an integer"),
    (b'{"id":1.5,"type":"ping"}', "bad_request", "integer"),
    (b'{"id":1,"type":"message","text":"hi"}', "bad_request",
     "needs a \"channel\""),
    (b'{"id":1,"type":"message","channel":"gen eral","text":"hi"}',
     "bad_request", "a channel name such as general"),
    (b'{"id":1,"type":"message","channel":"C1"}', "bad_request",
     "non-empty \"text\""),
    (b'{"id":1,"type":"message","channel":"C1","text":""}', "bad_request",
     "non-empty"),
    (b'{"id":1,"type":"message","channel":"C1","text":5}', "bad_request",
     "\"text\" must be a string"),
    (b'{"id":1,"type":"message","channel":"C1","text":"x",'
     b'"thread_ts":"yesterday"}', "bad_request", "thread_ts"),
    (b'{"id":1,"type":"message","channel":"C1","text":"x",'
     b'"reply_broadcast":"yes"}', "bad_request", "true or false"),
    (b'{"id":1,"type":"message","channel":"C1","text":"x",'
     b'"reply_broadcast":true}', "bad_request", "needs a \"thread_ts\""),
    (b'{"id":1,"type":"slackd.subscribe","types":"message"}', "bad_request",
     "array of strings"),
    (b'{"id":1,"type":"slackd.subscribe","types":[1]}', "bad_request",
     "strings"),
]


@pytest.mark.parametrize("line,name,words", BAD_LINES,
                         ids=[b[1] + "-" + str(i) for i, b in
                              enumerate(BAD_LINES)])
def test_bad_line_gets_clear_error(daemon, fake, line, name, words):
    c = daemon.client()
    c.send_raw(line + b"\n")
    m = c.recv_until(lambda m: "error" in m)
    assert m["error"]["name"] == name, m
    assert words.replace("\\", "") in m["error"]["msg"], m
    assert m["error"]["code"] > 1000
    if b'"id":1,' in line and name not in ("bad_json", "not_object"):
        assert m["reply_to"] == 1 and m["ok"] is False
    elif name in ("bad_json", "not_object"):
        assert m["type"] == "slackd.error"
    # The same client keeps working.
    assert c.request({"id": 99, "type": "ping"})["type"] == "pong"
    assert not fake.messages()


def test_bad_input_does_not_disturb_others(daemon, fake):
    bad, good = daemon.client(), daemon.client()
    for line, _, _ in BAD_LINES:
        bad.send_raw(line + b"\n")
    bad.send_raw(b"x" * 200000 + b"\n")
    fake.emit_many([{"type": "message", "channel": "C1", "seq": i}
                    for i in range(500)])
    seqs = []
    while len(seqs) < 500:
        m = good.recv(10)
        if m.get("type") == "message":
            seqs.append(m["seq"])
    assert seqs == list(range(500))
    errors = [m for m in bad.drain(0.5) if "error" in m]
    assert len(errors) == len(BAD_LINES) + 1
    assert len(fake.sessions) == 1 and fake.session.open
    assert daemon.status()["reconnects"] == 0


def test_overlong_line_discarded_without_buffering(daemon_factory, fake):
    d = daemon_factory(max_line="4K").start()
    c = d.client()
    # 1 MB without a newline, then a newline and a good request.
    c.send_raw(b'{"id":1,"type":"ping","pad":"' + b"a" * 1000000)
    m = c.recv_until(lambda m: "error" in m)
    assert m["error"]["name"] == "line_too_long"
    assert "4096" in m["error"]["msg"]
    c.send_raw(b'"}\n{"id":2,"type":"ping"}\n')
    r = c.reply(2)
    assert r["type"] == "pong"
    assert c.drain(0.3) == []       # the tail of the long line made no error


def test_long_complete_line_rejected(daemon_factory, fake):
    d = daemon_factory(max_line="4K").start()
    c = d.client()
    c.send_raw(b'{"id":1,"type":"ping","pad":"' + b"a" * 5000 + b'"}\n')
    m = c.recv_until(lambda m: "error" in m)
    assert m["error"]["name"] == "line_too_long"
    assert c.request({"id": 2, "type": "ping"})["type"] == "pong"


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


def test_client_that_never_reads_replies_is_paused(daemon, fake):
    c = daemon.client()
    c.sock.setsockopt(__import__("socket").SOL_SOCKET,
                      __import__("socket").SO_RCVBUF, 4096)
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
    slow.sock.setsockopt(__import__("socket").SOL_SOCKET,
                         __import__("socket").SO_RCVBUF, 4096)
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


def test_half_closed_client_still_gets_its_reply(daemon, fake):
    c = daemon.client()
    c.send_raw(b'{"id":1,"type":"message","channel":"C1","text":"bye"}')
    c.sock.shutdown(__import__("socket").SHUT_WR)
    r = c.reply(1, 5)       # no newline at the end, then EOF: still a request
    assert r["ok"] is True
