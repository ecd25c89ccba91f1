"""The example bots in examples/ (POSIX sh with socat and jq, Python 3, C)
run against slackd and the fake Slack: each answers a message "ping" with
"pong" in the ping's thread, and nothing else.  What counts is what
reached the fake Slack."""

import os
import shutil
import subprocess
import time

import pytest

from conftest import TOKEN, wait_until

SRCDIR = os.environ.get("TESTS_SRCDIR", os.path.dirname(__file__))
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(SRCDIR)),
                        "examples")
PYTHON = os.environ.get("TEST_PYTHON", "/usr/bin/python3")
PINGBOT_C = os.environ.get("PINGBOT_C", "examples/c/pingbot")

BOTS = {
    "sh": lambda: ["/bin/sh", os.path.join(EXAMPLES, "sh", "pingbot.sh")],
    "python": lambda: [PYTHON, os.path.join(EXAMPLES, "python",
                                            "pingbot.py")],
    "c": lambda: [PINGBOT_C],
}


def need(argv, name):
    for tool in {"sh": ("socat", "jq")}.get(name, ()):
        assert shutil.which(tool), \
            "%s is not installed (scripts/deps installs it)" % tool
    assert os.access(argv[0], os.X_OK), "%s is not built" % argv[0]


class Bot:
    def __init__(self, name, daemon, tmp):
        argv = BOTS[name]()
        need(argv, name)
        self.err_path = os.path.join(str(tmp), name + ".err")
        self.err = open(self.err_path, "wb")
        env = dict(os.environ)
        env.pop("SLACKD_SOCKET", None)
        self.proc = subprocess.Popen(argv + [daemon.sock],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err,
                                     env=env)

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)
        self.err.close()


def pongs(fake):
    return [m for m in fake.messages() if m.get("text") == "pong"]


def emit(fake, text, ts, thread_ts=None, **extra):
    ev = {"type": "message", "channel": "C0GENERAL", "user": "U0ALICE",
          "text": text, "ts": ts}
    if thread_ts:
        ev["thread_ts"] = thread_ts
    ev.update(extra)
    fake.emit(ev)


@pytest.mark.parametrize("name", sorted(BOTS))
def test_bot_answers_ping_in_thread(name, daemon, fake, tmp_path):
    bot = Bot(name, daemon, tmp_path)
    try:
        # Connected, with its subscription in place: the daemon counts it
        # (the status request itself is one more client).
        wait_until(lambda: daemon.status().get("clients", 0) >= 2
                   or bot.proc.poll() is not None, 10, what="the bot")
        assert bot.proc.poll() is None, "the bot exited: " + bot.stderr()
        time.sleep(0.3)

        # Not pings: no answer.  A top-level ping: pong in the thread it
        # starts.  A ping in a thread: pong in that thread.
        emit(fake, "hello", "1700000001.000100")
        emit(fake, "ping", "1700000001.000200", subtype="bot_message")
        emit(fake, "pinging", "1700000001.000300")
        emit(fake, "ping", "1700000002.000100")
        emit(fake, "ping", "1700000003.000200",
             thread_ts="1700000002.999999")
        got = wait_until(lambda: len(pongs(fake)) >= 2 and pongs(fake),
                         10, what="two pongs at the fake Slack (bot said: "
                         + bot.stderr() + ")")
        time.sleep(0.5)
        got = pongs(fake)
        assert [(m.get("channel"), m.get("thread_ts")) for m in got] == [
            ("C0GENERAL", "1700000002.000100"),
            ("C0GENERAL", "1700000002.999999")], got
        assert len(fake.messages()) == 2, fake.messages()
        assert bot.proc.poll() is None, bot.stderr()
        assert bot.stderr() == "", bot.stderr()
    finally:
        bot.stop()
    assert TOKEN not in bot.stderr()


@pytest.mark.parametrize("name", sorted(BOTS))
def test_bot_reports_missing_socket(name, tmp_path):
    argv = BOTS[name]()
    need(argv, name)
    missing = str(tmp_path / "nothing.sock")
    p = subprocess.run(argv + [missing], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode != 0
    assert missing in p.stderr, p.stderr


@pytest.mark.parametrize("name", sorted(BOTS))
def test_bot_stops_when_slackd_stops(name, daemon, tmp_path):
    bot = Bot(name, daemon, tmp_path)
    try:
        wait_until(lambda: daemon.status().get("clients", 0) >= 2, 10,
                   what="the bot")
        daemon.stop()
        bot.proc.wait(10)
    finally:
        bot.stop()


@pytest.mark.parametrize("name", sorted(BOTS))
def test_bot_reports_refused_reply(name, daemon, fake, tmp_path):
    """Slack refuses the pong: the bot says so on stderr and goes on."""
    bot = Bot(name, daemon, tmp_path)
    try:
        wait_until(lambda: daemon.status().get("clients", 0) >= 2, 10,
                   what="the bot")
        fake.emit({"type": "message", "channel": "CNOTFOUND",
                   "user": "U0ALICE", "text": "ping",
                   "ts": "1700000005.000100"})
        err = wait_until(lambda: "channel_not_found" in bot.stderr()
                         and bot.stderr(), 10, what="the bot's complaint")
        assert "failed" in err and err.count("\n") == 1, err
        emit(fake, "ping", "1700000006.000100")
        wait_until(lambda: pongs(fake), 10, what="a pong after the refusal")
        assert bot.proc.poll() is None
    finally:
        bot.stop()
