"""Frames Slack should not send: text that is not JSON or not an object,
invalid UTF-8, nesting too deep, binary frames, frames over max_event.  Each
is dropped, counted and shown by `slackctl status`, and the session carries
on; odd field types in a valid object are forwarded as they are."""

import pytest

from conftest import wait_until
from fakeslack import RawText


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


BAD_UTF8 = [
    # (id, the bytes in "text" or a key; the rest is a valid event)
    ("latin1", b'"text":"caf\xe9"'),
    ("overlong", b'"text":"\xc0\xaf"'),
    ("surrogate", b'"text":"\xed\xa0\x80"'),
    ("truncated", b'"text":"\xe2\x9c"'),
    ("above-max", b'"text":"\xf4\x90\x80\x80"'),
    ("in-a-key", b'"\xff":1'),
]


@pytest.mark.parametrize("frame", [b[1] for b in BAD_UTF8],
                         ids=[b[0] for b in BAD_UTF8])
def test_invalid_utf8_frame_dropped(daemon, fake, frame):
    c = daemon.client()
    # A text frame that is not UTF-8 (the library sends only valid text).
    fake.emit(RawText(b'{"type":"message","channel":"C1",' + frame + b"}"))
    dropped(daemon, 1, "invalid UTF-8")
    still_fine(daemon, fake, c)     # the next message is the first one


def test_deeply_nested_frame_dropped(daemon, fake):
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
