"""The Slack token: where slackd takes it from (token_file, SLACK_API_TOKEN,
a systemd credential), the token files it refuses, and where the token never
appears: argv, the environment, logs at any verbosity, status and replies.
It is sent only in the Authorization header.  (Every test also checks, on
teardown, that the token is in nothing slackd or slackctl wrote.)"""

import os

from conftest import SLACKD, TOKEN, run


def test_no_token_exits_78(daemon_factory, fake):
    d = daemon_factory(token=None, token_file=None)
    d.write_config()
    p = run(SLACKD, "-d", "-f", d.conf_path)
    assert p.returncode == 78
    assert "no Slack token" in p.stderr and "SLACK_API_TOKEN" in p.stderr


def test_token_file_readable_by_others_refused(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    os.chmod(d.token_path, 0o644)
    p = run(SLACKD, "-d", "-f", d.conf_path)
    assert p.returncode == 78
    assert "accessible by group or others (mode 0644)" in p.stderr
    assert "chmod 600" in p.stderr
    assert TOKEN not in p.stderr


def test_token_from_environment(daemon_factory, fake):
    d = daemon_factory(token_file=None)
    d.token = TOKEN
    d.start(env={"SLACK_API_TOKEN": TOKEN})
    assert "token from SLACK_API_TOKEN" in d.log_text()
    # Gone from the daemon's environment.
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        assert TOKEN.encode() not in f.read()


def test_token_from_credentials_directory(daemon_factory, fake, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    fd = os.open(str(creds / "slack-token"), os.O_WRONLY | os.O_CREAT, 0o400)
    os.write(fd, TOKEN.encode())
    os.close(fd)
    d = daemon_factory(token_file=None)
    d.start(env={"CREDENTIALS_DIRECTORY": str(creds),
                 "SLACK_API_TOKEN": "xoxb-wrong"})
    assert "token from systemd credential slack-token" in d.log_text()


def test_environment_token_wiped_even_when_unused(daemon_factory, fake):
    d = daemon_factory()
    d.start(env={"SLACK_API_TOKEN": TOKEN})
    assert "token from token_file" in d.log_text()
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        assert TOKEN.encode() not in f.read()


def test_token_only_in_authorization_header(daemon, fake):
    calls = [c for c in fake.api_calls if c["method"] == "rtm.connect"]
    assert calls
    for c in calls:
        assert c["headers"]["authorization"] == "Bearer " + TOKEN
        assert TOKEN not in c["path"] and TOKEN.encode() not in c["body"]
    for s in fake.sessions:
        assert TOKEN not in s.path


def test_token_never_logged_at_full_verbosity(daemon_factory, fake):
    fake.queue_api_response(200, {"ok": False, "error": "internal_error",
                                  "echo": "Bearer " + TOKEN})
    fake.queue_api_response(502, "<html>Bearer %s</html>" % TOKEN)
    d = daemon_factory().start(args=("-vvv",), wait="socket")
    d.wait_state("connected", 10)
    c = d.client()
    c.request({"id": 1, "type": "message", "channel": "C1",
               "text": "x"})
    fake.drop()
    c.state("connected", 5)
    d.stop()
    log = d.log_text()
    assert "debug:" in log         # verbose logging was on
    assert TOKEN not in log        # finish() checks this too
    assert "[token]" in log        # echoed by the fake, and scrubbed


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
