"""slackctl as a user meets it: where options go, --help, how long send
waits, the hint for long texts, and channel names for listen -c."""

import os
import re
import select
import subprocess
import time

import pytest

from conftest import SLACKCTL, TOKEN, wait_until

COMMANDS = ("send", "listen", "channels", "users", "status", "help")


def run(*args, input=None, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("SLACKD_SOCKET", None)
    if env:
        e.update(env)
    return subprocess.run([SLACKCTL] + list(args), input=input,
                          capture_output=True, text=True, timeout=timeout,
                          env=e)


def calls(fake, method):
    return [c for c in fake.api_calls if c["method"] == method]


# ---- options anywhere, "--" ends them ------------------------------------

def test_options_after_the_operands(daemon, fake):
    """`send C0RANDOM hi -w 3` once posted "hi -w 3"."""
    p = daemon.ctl("send", "C0RANDOM", "hi", "-w", "3")
    assert p.returncode == 0, p.stderr
    assert fake.messages()[-1]["text"] == "hi"
    p = daemon.ctl("send", "C0RANDOM", "in", "a", "--thread",
                   "1700000000.000100", "thread", "-b")
    assert p.returncode == 0, p.stderr
    wire = fake.messages()[-1]
    assert wire["text"] == "in a thread"
    assert wire["thread_ts"] == "1700000000.000100"
    assert wire["reply_broadcast"] is True
    # Whatever the environment says about argument order.
    p = daemon.ctl("send", "C0RANDOM", "posix", "-w", "3",
                   env={"POSIXLY_CORRECT": "1"})
    assert p.returncode == 0, p.stderr
    assert fake.messages()[-1]["text"] == "posix"


def test_double_dash_ends_the_options(daemon, fake):
    p = daemon.ctl("send", "C1", "--", "-w", "is", "text")
    assert p.returncode == 0, p.stderr
    assert fake.messages()[-1]["text"] == "-w is text"
    p = daemon.ctl("send", "-w", "5", "C1", "--", "--help")
    assert p.returncode == 0, p.stderr
    assert fake.messages()[-1]["text"] == "--help"


def test_unknown_option_in_the_text_is_an_error(daemon, fake):
    p = daemon.ctl("send", "C1", "down", "by", "-5", "percent")
    assert p.returncode == 2
    assert p.stderr.startswith("slackctl: send: unknown option -5"), p.stderr
    assert "--" in p.stderr.splitlines()[0]          # says how to send it
    assert "usage: slackctl [-s socket] send " in p.stderr
    p = daemon.ctl("send", "C1", "x", "--bogus")
    assert p.returncode == 2
    assert "slackctl: send: unknown option --bogus" in p.stderr
    p = daemon.ctl("send", "C1", "x", "--wait")
    assert p.returncode == 2
    assert "slackctl: send: --wait needs a value" in p.stderr
    assert not fake.messages()


def test_socket_option_after_the_command(daemon, fake):
    p = run("status", "--json", "--socket", daemon.sock)
    daemon.outputs += [p.stdout, p.stderr]
    assert p.returncode == 0, p.stderr
    p = run("send", "C1", "from", "-s", daemon.sock, "afar")
    daemon.outputs += [p.stdout, p.stderr]
    assert p.returncode == 0, p.stderr
    assert fake.messages()[-1]["text"] == "from afar"


# ---- --help for every command --------------------------------------------

@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_takes_help(tmp_path, cmd):
    """`send --help` was "unrecognized option" and the full usage, exit 2.
    --help needs no daemon: the socket here does not exist."""
    nowhere = str(tmp_path / "none.sock")
    for flag in ("--help", "-h"):
        p = run("-s", nowhere, cmd, flag)
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""
        assert p.stdout.startswith("usage: slackctl [-s socket] %s " % cmd)
        assert "-h, --help" in p.stdout
    # Anywhere on the line, and as `slackctl help CMD`.
    p = run("-s", nowhere, cmd, "x", "--help")
    assert p.returncode == 0 and p.stdout.startswith("usage:")
    assert run("help", cmd).stdout == run(cmd, "--help").stdout


def test_help_command():
    p = run("help")
    assert p.returncode == 0
    assert p.stdout == run("--help").stdout
    for cmd in COMMANDS:
        assert "\n  %s " % cmd in p.stdout
    p = run("help", "frobnicate")
    assert p.returncode == 2
    assert 'no command "frobnicate"' in p.stderr


def test_command_help_shows_its_options():
    p = run("send", "--help")
    for opt in ("-t, --thread", "-b, --broadcast", "-w, --wait",
                "-p, --post", "--blocks", "--attachments", "--unfurl",
                "--no-unfurl", "-s, --socket"):
        assert opt in p.stdout, opt
    assert "default 30" in p.stdout and "75" in p.stdout
    assert '"--" ends them' in p.stdout
    p = run("listen", "--help")
    for opt in ("-t, --type", "-c, --channel", "-a, --all", "-n, --names",
                "-f, --format"):
        assert opt in p.stdout, opt
    assert "@user" in p.stdout


# ---- send's wait, and 75 --------------------------------------------------

def slack_down(d, fake):
    """Slack unreachable: the connection drops and rtm.connect fails."""
    fake.set_api_default(503, "unavailable")
    fake.drop()
    d.wait_state("reconnecting", 10)


def test_send_gives_up_with_75_and_slackd_sends_later(daemon_factory, fake):
    d = daemon_factory().start()
    slack_down(d, fake)
    t0 = time.monotonic()
    p = d.ctl("send", "-w", "1", "C0GENERAL", "sent", "later")
    took = time.monotonic() - t0
    assert p.returncode == 75, (p.returncode, p.stderr)
    assert took < 5, took
    err = p.stderr.strip()
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert err.startswith("slackctl: send: Slack is not reachable "
                          "(slackd is reconnecting"), err
    assert "within 1 s" in err
    m = re.search(r"the message to C0GENERAL is queued in slackd as "
                  r"message (\d+) and will be sent when Slack is back", err)
    assert m, err
    assert p.stdout == ""
    # slackctl is gone; slackd still has the message.
    assert d.status()["queued"] == 1
    assert not fake.messages()
    fake.clear_api_default()
    wait_until(lambda: fake.messages(), 15, what="the queued message")
    time.sleep(1)
    assert [m["text"] for m in fake.messages()] == ["sent later"]
    # The number slackctl gave is the one slackd's log names it by.
    d.wait_log(r"message %s to C0GENERAL posted" % m.group(1), 5)
    st = d.status()
    assert st["queued"] == 0 and st["in_flight"] == 0
    assert st["messages_sent"] == 1


def test_send_wait_0_waits_for_slackd(daemon_factory, fake):
    d = daemon_factory().start()
    slack_down(d, fake)
    p = subprocess.Popen([SLACKCTL, "-s", d.sock, "send", "-w", "0",
                          "C0GENERAL", "patient"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: d.status()["queued"] == 1, 10,
                   what="the message queued")
        time.sleep(1.5)
        assert p.poll() is None            # still waiting, no 75
        fake.clear_api_default()
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    d.outputs += [out, err]
    assert p.returncode == 0, err
    assert re.fullmatch(r"\d+\.\d+", out.strip()), out
    assert [m["text"] for m in fake.messages()] == ["patient"]


def test_send_bad_wait(daemon, fake):
    for bad in ("-1", "soon", "nan", ""):
        p = daemon.ctl("send", "-w", bad, "C1", "x")
        assert p.returncode == 2 and "-w wants seconds" in p.stderr, bad
    assert not fake.messages()


# ---- too long: name our own option ---------------------------------------

def test_too_long_names_the_post_option(daemon, fake):
    text = "a" * 17000
    p = daemon.ctl("send", "C0GENERAL", input=text)
    assert p.returncode == 1
    err = p.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("slackctl: send: message too long"), err
    assert "slackd.post" not in err
    assert "slackctl send --post sends longer texts" in err
    assert err.rstrip().endswith("[slackd: too_long]")
    assert not fake.messages()
    p = daemon.ctl("send", "--post", "C0GENERAL", input=text)
    assert p.returncode == 0, p.stderr
    assert fake.posts[-1]["text"] == text
    assert p.stdout.strip() == fake.posts[-1]["ts"]
    p = daemon.ctl("send", "welcome-test", "short", "-p")
    assert p.returncode == 0, p.stderr
    assert fake.posts[-1]["text"] == "short"
    assert fake.posts[-1]["channel_id"] == "C0WELCOME"
    assert not fake.messages()


# ---- listen -c takes what send takes -------------------------------------

class Listener:
    def __init__(self, d, *args):
        self.d = d
        self.p = subprocess.Popen([SLACKCTL, "-s", d.sock, "listen"] +
                                  list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.buf = ""

    def lines(self, timeout):
        """What it printed within timeout seconds."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            data = os.read(fd, 65536).decode()
            if not data:
                break
            self.buf += data
        out, self.buf = self.buf.split("\n"), ""
        self.buf = out.pop()
        return out

    def wait_for(self, fake, channel, text, timeout=10):
        """Emit an event elsewhere and one in channel until the listener
        prints; return what it printed."""
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            n += 1
            fake.emit({"type": "message", "channel": "C0RANDOM",
                       "text": "elsewhere %d" % n})
            fake.emit({"type": "message", "channel": channel,
                       "text": "%s %d" % (text, n)})
            got = self.lines(0.3)
            if got:
                return got
            assert self.p.poll() is None, self.p.communicate()
        raise AssertionError("listen printed nothing for %s" % channel)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        out, err = self.p.communicate(5)
        self.d.outputs += [out, err]
        assert TOKEN not in out + err
        return err


@pytest.mark.parametrize("target", ["general", "#General", "C0GENERAL"])
def test_listen_channel_by_name(daemon, fake, target):
    """`listen -c general` printed nothing: -c took only IDs."""
    lst = Listener(daemon, "-c", target, "-t", "message")
    try:
        got = lst.wait_for(fake, "C0GENERAL", "hello")
        assert got and all('"channel":"C0GENERAL"' in g for g in got), got
        assert all("elsewhere" not in g for g in got)
    finally:
        lst.stop()
    if target == "C0GENERAL":           # an ID needs no names
        assert not calls(fake, "conversations.list")


def test_listen_channel_by_name_as_text(daemon, fake):
    lst = Listener(daemon, "--format", "text", "-c", "#general")
    try:
        got = lst.wait_for(fake, "C0GENERAL", "hello")
        assert all(" #general: hello " in g for g in got), got
    finally:
        lst.stop()
    assert len(calls(fake, "conversations.list")) == 1   # asked once


def test_listen_user_dm(daemon, fake):
    lst = Listener(daemon, "-c", "@alice")
    try:
        wait_until(lambda: calls(fake, "conversations.open"), 10,
                   what="the DM opened")
        dm = calls(fake, "conversations.open")[-1]
        dms = [c for c in fake.conversation_ids(types=("im",))
               if fake.get_conversation(c)["user"] == "U0ALICE"]
        assert len(dms) == 1, dm
        got = lst.wait_for(fake, dms[0], "psst")
        assert all(dms[0] in g and "psst" in g for g in got), got
    finally:
        lst.stop()


def test_listen_unknown_name_fails_clearly(daemon, fake):
    p = daemon.ctl("listen", "-c", "general", "-c", "#no-such-channel",
                   timeout=20)
    assert p.returncode == 1
    assert p.stderr.startswith("slackctl: listen: no channel named "
                               "#no-such-channel among the "), p.stderr
    assert len(p.stderr.splitlines()) == 1
    assert p.stdout == ""
    p = daemon.ctl("listen", "-c", "@nobody", timeout=20)
    assert p.returncode == 1
    assert "listen: no user named @nobody among the " in p.stderr


# ---- messages stay greppable ----------------------------------------------

def test_messages_are_one_string_in_the_source():
    """No user-facing format string is split into adjacent literals (only
    the help texts are, a line each)."""
    src = os.path.join(os.environ.get("TESTS_SRCDIR", "tests"), "..",
                       "client", "slackctl.c")
    with open(src) as f:
        text = f.read()
    split = [m.group(0) for m in
             re.finditer(r'"((?:[^"\\\n]|\\.)*)"\s*\n\s*"', text)
             if not m.group(1).endswith("\\n")]
    assert split == []
