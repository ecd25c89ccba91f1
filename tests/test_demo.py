"""scripts/demo, the first thing a newcomer runs: it says it runs against
the bundled FAKE Slack, shows each event the moment `slackctl listen` gets
it (in between what the demo does, not all at once at the end), sends a
message that the listener then sees come back, and leaves no process or
file behind.  The demo is run on this build (SLACKD_BUILD_DIR) instead of
building one of its own."""

import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import SLACKD

SRCDIR = os.environ.get("TESTS_SRCDIR", os.path.dirname(__file__))
DEMO = os.path.join(SRCDIR, "..", "scripts", "demo")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EVENT = re.compile(r"^ *listen \| \d\d:\d\d:\d\d ")
MESSAGE = re.compile(r"^ *listen \| \d\d:\d\d:\d\d #general @\S+: ")


@pytest.fixture
def short_tmp():
    """The demo's TMPDIR: short, for the socket path's 108 bytes."""
    d = tempfile.mkdtemp(prefix="slackd-demo-test.")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def processes_under(path):
    """Processes with path in their command line."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if path in cmd:
            found.append((int(pid), cmd))
    return found


def run_demo(tmpdir, timeout=60):
    """Run the demo; -> (exit status, [(time read, line)], processes left
    behind).  Each line, without colours, is stamped when it was read."""
    env = dict(os.environ, SLACKD_BUILD_DIR=os.path.dirname(SLACKD),
               TMPDIR=tmpdir)
    env.pop("SLACKD_SOCKET", None)
    p = subprocess.Popen(["bash", DEMO], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=env, start_new_session=True)
    lines, buf = [], b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "the demo still runs after %d s:\n%s" % (
                timeout, "\n".join(l for _, l in lines))
            if not select.select([p.stdout], [], [], left)[0]:
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            now = time.monotonic()
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                lines.append((now, ANSI.sub("", text)))
        rc = p.wait(10)
        return rc, lines, processes_under(tmpdir)
    finally:
        p.stdout.close()
        try:
            os.killpg(p.pid, signal.SIGKILL)   # whatever it left running
        except ProcessLookupError:
            pass
        p.wait()


def index(lines, pattern, start=0):
    for i in range(start, len(lines)):
        if re.search(pattern, lines[i][1]):
            return i
    raise AssertionError("no line matching /%s/ in:\n%s" % (
        pattern, "\n".join(l for _, l in lines)))


def test_demo_shows_events_as_they_arrive(short_tmp):
    rc, lines, left = run_demo(short_tmp)
    out = "\n".join(l for _, l in lines)
    assert rc == 0, out
    assert "LOCAL FAKE Slack workspace" in lines[index(lines, r"^== ")][1]
    listen = index(lines, r"^== slackctl listen")
    assert "FAKE" in lines[listen][1]
    send = index(lines, r"^== slackctl send", listen)
    ts = index(lines, r"^\d+\.\d{6}$", send)
    events = [i for i, (_, l) in enumerate(lines) if EVENT.match(l)]
    messages = [i for i in events if MESSAGE.match(lines[i][1])]
    # The fake's messages are shown before the demo sends its own ...
    before = [i for i in messages if listen < i < send]
    assert len(before) >= 2, out
    # ... each when it came: the fake posts one every 2 s or more.
    assert lines[before[1]][0] - lines[before[0]][0] >= 1.0, out
    # The sent message comes back from Slack once sent (its echo and the
    # ts that slackctl send prints race each other: either comes first).
    echo = [i for i in messages if "Hello from slackd!" in lines[i][1]]
    assert len(echo) == 1 and echo[0] > send, out
    assert index(lines, r"^== Done") > max(echo[0], ts)
    assert left == [], left
    assert os.listdir(short_tmp) == []      # its temporary directory too
    assert "xoxb-" not in out
