"""bash completion for slackctl (completion/slackctl), driven the way bash
drives it: COMP_WORDS and COMP_CWORD set, _slackctl called, COMPREPLY read
back.  Names come from a slackd connected to the fake Slack, through the
slackctl being built (first on PATH, behind a wrapper that counts its
runs)."""

import os
import socket
import subprocess
import time

import pytest

from conftest import SLACKCTL, wait_until

SRCDIR = os.environ.get("TESTS_SRCDIR", os.path.dirname(__file__))
COMPLETION = os.path.join(os.path.dirname(os.path.abspath(SRCDIR)),
                          "completion", "slackctl")


@pytest.fixture
def bindir(tmp_path):
    """A directory with a `slackctl` that logs each run and runs the real
    one."""
    d = tmp_path / "bin"
    d.mkdir()
    w = d / "slackctl"
    w.write_text('#!/bin/sh\necho "$*" >> "%s"\nexec "%s" "$@"\n'
                 % (tmp_path / "runs.log", SLACKCTL))
    w.chmod(0o755)
    return d


def runs(tmp_path):
    try:
        return (tmp_path / "runs.log").read_text().splitlines()
    except FileNotFoundError:
        return []


def complete(bindir, *lines, env=None, timeout=20):
    """Complete each of lines (lists of words, the last being the word
    under the cursor) in one bash, one after the other; the candidates of
    each, and what bash wrote to stderr."""
    script = ['source "$COMPLETION"']
    for words in lines:
        q = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
        script.append('COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE="${COMP_WORDS[*]}"; '
                      'COMP_POINT=${#COMP_LINE}; COMPREPLY=(); _slackctl; '
                      'printf "%%s\\n" "${COMPREPLY[@]}" | sort; echo ---'
                      % (q, len(words) - 1))
    e = {"PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin")),
         "HOME": os.environ.get("HOME", "/"),
         "COMPLETION": COMPLETION, "XDG_RUNTIME_DIR": str(bindir)}
    e.update(env or {})
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                        "\n".join(script)], capture_output=True, text=True,
                       env=e, timeout=timeout)
    assert p.returncode == 0, p.stderr
    out = p.stdout.split("---\n")[:-1]
    return [[w for w in o.splitlines() if w] for o in out], p.stderr


def one(bindir, words, **kw):
    got, err = complete(bindir, words, **kw)
    assert err == "", err
    return got[0]


def names(daemon, kind):
    p = daemon.ctl(kind)
    assert p.returncode == 0, p.stderr
    return [line.split()[1] for line in p.stdout.splitlines()]


def test_commands_and_global_options(bindir, tmp_path):
    assert one(bindir, ["slackctl", ""]) == [
        "channels", "listen", "send", "status", "users"]
    assert one(bindir, ["slackctl", "s"]) == ["send", "status"]
    assert one(bindir, ["slackctl", "-s", "/x", "l"]) == ["listen"]
    assert set(one(bindir, ["slackctl", "--"])) >= {
        "--socket", "--help", "--version"}
    # Nothing asked a daemon.
    assert runs(tmp_path) == []


def test_command_options_anywhere(bindir):
    send = one(bindir, ["slackctl", "send", "--"])
    assert {"--thread", "--broadcast", "--wait", "--blocks",
            "--attachments", "--unfurl", "--no-unfurl"} <= set(send)
    assert "--format" not in send
    assert one(bindir, ["slackctl", "status", "--j"]) == ["--json"]
    assert one(bindir, ["slackctl", "users", "--j"]) == ["--json"]
    assert one(bindir, ["slackctl", "listen", "-f", ""]) == ["json", "text"]
    assert one(bindir, ["slackctl", "listen", "--format", "t"]) == ["text"]
    assert "message" in one(bindir, ["slackctl", "listen", "-t", "m"])
    # send -t takes a thread's ts: nothing to offer.
    assert one(bindir, ["slackctl", "send", "-t", ""]) == []
    # An option after the target, and the socket option after the command.
    assert "--broadcast" in one(bindir, ["slackctl", "send", "general",
                                         "--b"])
    assert "--socket" in one(bindir, ["slackctl", "listen", "--so"])
    assert one(bindir, ["slackctl", "listen", "--s"]) == ["--since",
                                                          "--socket"]
    assert one(bindir, ["slackctl", "listen", "--r"]) == ["--resume"]
    assert one(bindir, ["slackctl", "listen", "--since", ""]) == []


def test_files_for_file_arguments(bindir, tmp_path):
    (tmp_path / "blocks.json").write_text("[]")
    got = one(bindir, ["slackctl", "send", "--blocks",
                       str(tmp_path / "blo")])
    assert got == [str(tmp_path / "blocks.json")]
    (tmp_path / "deploys.cursor").write_text("")
    got = one(bindir, ["slackctl", "listen", "--resume",
                       str(tmp_path / "dep")])
    assert got == [str(tmp_path / "deploys.cursor")]


def test_channel_names_from_the_daemon(bindir, daemon, tmp_path):
    chans = [n[1:] for n in names(daemon, "channels") if n.startswith("#")]
    assert "general" in chans
    got = one(bindir, ["slackctl", "-s", daemon.sock, "send", ""])
    assert got == sorted(chans)
    assert one(bindir, ["slackctl", "-s", daemon.sock, "send", "gen"]) == [
        "general"]
    # After a "#": quoted, since a bare # would start a comment.
    assert one(bindir, ["slackctl", "-s", daemon.sock, "send", "#gen"]) == [
        "\\#general"]
    # Options anywhere: the socket after the command, --socket=.
    assert one(bindir, ["slackctl", "send", "-b", "-s", daemon.sock,
                        "ran"]) == ["random"]
    assert one(bindir, ["slackctl", "--socket=" + daemon.sock, "send",
                        "ran"]) == ["random"]
    # Only the target is completed; the rest is text.
    assert one(bindir, ["slackctl", "-s", daemon.sock, "send", "general",
                        "gen"]) == []


def test_users_from_the_daemon(bindir, daemon, fake):
    fake.add_user("U0CAROL", "carol", emit=False)
    fake.add_user("U0GONE", "gone", emit=False, deleted=True)
    got = one(bindir, ["slackctl", "-s", daemon.sock, "send", "@"])
    assert "@alice" in got and "@bob" in got and "@carol" in got, got
    assert "@gone" not in got, "a deactivated user offered"
    assert got == sorted(n for n in names(daemon, "users")
                         if n != "@gone")
    assert one(bindir, ["slackctl", "-s", daemon.sock, "send", "@ca"]) == [
        "@carol"]


def test_conversation_ids_for_listen_c(bindir, daemon):
    got = one(bindir, ["slackctl", "-s", daemon.sock, "listen", "-c", "C0G"])
    assert got == ["C0GENERAL"]


def test_default_socket_from_environment(bindir, daemon):
    got = one(bindir, ["slackctl", "send", "gen"],
              env={"SLACKD_SOCKET": daemon.sock})
    assert got == ["general"]


def test_names_are_cached_briefly(bindir, daemon, fake, tmp_path):
    base = len(runs(tmp_path))
    line = ["slackctl", "-s", daemon.sock, "send", "new"]
    got, err = complete(bindir, line, line, line)
    assert err == ""
    assert got == [[], [], []]
    assert len(runs(tmp_path)) == base + 1, runs(tmp_path)
    # A channel created meanwhile shows up once the cache has expired.
    fake.add_channel("C0NEWS", "news", emit=True)
    wait_until(lambda: "#news" in names(daemon, "channels"), 10,
               what="slackd to learn of #news")
    got, err = complete(bindir, line, line,
                        env={"SLACKCTL_COMPLETION_TTL": "0"})
    assert got == [["news"], ["news"]], got
    assert len(runs(tmp_path)) == base + 3


def test_silent_and_fast_without_daemon(bindir, tmp_path):
    missing = str(tmp_path / "none.sock")
    t0 = time.monotonic()
    got, err = complete(bindir, ["slackctl", "-s", missing, "send", ""],
                        ["slackctl", "send", "@"],
                        env={"SLACKD_SOCKET": missing})
    assert time.monotonic() - t0 < 2
    assert got == [[], []] and err == ""
    assert runs(tmp_path) == [], "slackctl ran without a socket"


def test_silent_with_a_daemon_that_does_not_answer(bindir, tmp_path):
    path = str(tmp_path / "mute.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    try:
        t0 = time.monotonic()
        got, err = complete(bindir, ["slackctl", "-s", path, "send", ""],
                            ["slackctl", "-s", path, "send", "@"])
        took = time.monotonic() - t0
    finally:
        s.close()
    assert got == [[], []] and err == ""
    # At most 2 s per kind, and the failure is cached too.
    assert took < 5.5, took
    assert len(runs(tmp_path)) == 2
