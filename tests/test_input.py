"""Bad requests on the local socket: every malformed or invalid line gets a
clear error naming what is wrong, over-long lines are refused without being
buffered, a half-closed client still gets its reply, and nobody else is
disturbed.  Slow readers are in test_slow_readers.py, the limits on sending
in test_limits.py."""

import socket

import pytest

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


def test_half_closed_client_still_gets_its_reply(daemon, fake):
    c = daemon.client()
    c.send_raw(b'{"id":1,"type":"message","channel":"C1","text":"bye"}')
    c.sock.shutdown(socket.SHUT_WR)
    r = c.reply(1, 5)       # no newline at the end, then EOF: still a request
    assert r["ok"] is True
