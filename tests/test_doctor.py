"""slackd --doctor, the online self-check, against the fake Slack: each
outcome has its line and its exit status, and the token never shows."""

import os
import socket
import subprocess

from conftest import SANITIZER_MARKERS, SLACKD, TOKEN

NEW_APP = "xoxb-newapp-Hq3SECRETnewstyle"
LEGACY_BOT = "xoxb-legacy-Ww5SECRETcustombot"
NO_IM_WRITE = "xoxb-noimwrite-Pp8SECRETscopes"
CLASSIC = "xoxb-classic-Rr2SECRETbotscope"
NO_HEADER = "xoxb-noheader-Tt4SECRETquiet"
USER_TOKEN = "xoxp-user-Uu6SECRETperson"
REFUSED = "xoxb-refused-Zz9SECRETunknown"
ALL_TOKENS = (TOKEN, NEW_APP, LEGACY_BOT, NO_IM_WRITE, CLASSIC, NO_HEADER,
              USER_TOKEN, REFUSED)


def doctor(d, env=None, args=()):
    """Run slackd --doctor on d's configuration; the token in no output."""
    d.write_config()
    e = dict(os.environ)
    for k in ("SLACK_API_TOKEN", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
        e.pop(k, None)
    if env:
        e.update(env)
    p = subprocess.run([SLACKD, "--doctor", "-f", d.conf_path] + list(args),
                       capture_output=True, text=True, timeout=60, env=e)
    for tok in ALL_TOKENS:
        assert tok not in p.stdout + p.stderr, "token in the output"
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, p.stderr
    return p


def line(p, start):
    """The one report line that starts with start."""
    found = [ln for ln in p.stdout.splitlines() if ln.startswith(start)]
    assert len(found) == 1, "no single line %r in:\n%s" % (start, p.stdout)
    return found[0]


def test_all_good(daemon_factory, fake, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    d = daemon_factory(state_dir=str(state), socket_mode="0660")
    p = doctor(d)
    assert p.returncode == 0, p.stdout + p.stderr
    line(p, "ok      token: from token_file %s" % d.token_path)
    line(p, "ok      token kind: a bot token (xoxb-)")
    line(p, 'ok      auth.test: team "Fake Workspace" (T0FAKE), user '
         '"slackd-bot" (U0BOT), a bot token, bot B0FAKEBOT')
    line(p, "ok      rtm.connect: RTM accepts this token")
    line(p, "ok      scopes for names: channels:read, groups:read, "
         "im:read, mpim:read, users:read")
    line(p, "ok      scopes for DMs: im:write")
    line(p, "ok      scopes for posting: chat:write")
    assert "mode 0660" in line(p, "ok      socket: %s" % d.sock)
    line(p, "ok      state directory: %s (writable)" % state)
    assert p.stdout.splitlines()[-1].startswith(
        "everything slackd needs works (0 warnings)")
    assert not [ln for ln in p.stdout.splitlines()
                if ln.startswith(("FAILED", "warning"))]
    # Both calls were made, with the token only in the header, and the
    # WebSocket URL was not opened.
    methods = [c["method"] for c in fake.api_calls]
    assert methods == ["auth.test", "rtm.connect"]
    assert not any(c["token_in_url"] or c["token_in_body"]
                   for c in fake.api_calls)
    assert fake.handshakes == []


def test_refused_token_exits_78(daemon_factory, fake):
    d = daemon_factory(token=REFUSED)
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    assert 'Slack says "invalid_auth": Slack does not know this token' in \
        line(p, "FAILED  auth.test:")
    # Nothing more is asked of Slack with a refused token.
    assert [c["method"] for c in fake.api_calls] == ["auth.test"]
    assert "rtm.connect" not in p.stdout
    assert "(exit 78)" in p.stdout.splitlines()[-1]


def test_new_style_app_token_explained(daemon_factory, fake):
    fake.set_token_profile(NEW_APP, rtm_error="not_allowed_token_type")
    d = daemon_factory(token=NEW_APP)
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    line(p, "ok      auth.test:")
    why = line(p, "FAILED  rtm.connect:")
    assert '"not_allowed_token_type"' in why
    assert "created after classic apps ended on 2024-06-04" in why
    assert "classic app" in why and "Socket Mode" in why
    # The scopes are still reported: they are the token's, not RTM's.
    line(p, "ok      scopes for DMs: im:write")


def test_legacy_custom_bot_explained(daemon_factory, fake):
    fake.set_token_profile(LEGACY_BOT,
                           rtm_error="legacy_custom_bots_deprecated")
    d = daemon_factory(token=LEGACY_BOT)
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    why = line(p, "FAILED  rtm.connect:")
    assert "legacy custom bot" in why and "2025-03-31" in why


def test_missing_scope_named(daemon_factory, fake):
    fake.set_token_profile(NO_IM_WRITE, scopes="channels:read,groups:read,"
                           "im:read,mpim:read,users:read,chat:write")
    d = daemon_factory(token=NO_IM_WRITE)
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    line(p, "ok      rtm.connect: RTM accepts this token")
    line(p, "ok      scopes for names:")
    why = line(p, "FAILED  scopes for DMs: missing im:write,")
    assert "Bot Token Scopes" in why and "reinstall" in why
    line(p, "ok      scopes for posting: chat:write")


def test_several_missing_scopes_named(daemon_factory, fake):
    fake.set_token_profile(NO_IM_WRITE, scopes="channels:read,users:read,"
                           "chat:write:bot")
    d = daemon_factory(token=NO_IM_WRITE)
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    assert "missing groups:read, im:read, mpim:read," in \
        line(p, "FAILED  scopes for names:")
    line(p, "FAILED  scopes for DMs: missing im:write,")
    # The older name of the grant counts.
    line(p, "ok      scopes for posting: chat:write")


def test_classic_bot_scope_covers_all(daemon_factory, fake):
    fake.set_token_profile(CLASSIC, scopes="identify,bot")
    d = daemon_factory(token=CLASSIC)
    p = doctor(d)
    assert p.returncode == 0, p.stdout
    assert "covers names, DMs and posting" in line(p, 'ok      scopes: "bot"')
    assert "scopes for" not in p.stdout


def test_no_scopes_header_is_a_warning(daemon_factory, fake):
    fake.set_token_profile(NO_HEADER, scopes=None)
    d = daemon_factory(token=NO_HEADER)
    p = doctor(d)
    assert p.returncode == 0, p.stdout
    assert "X-OAuth-Scopes" in line(p, "warning scopes:")
    assert "(1 warning)" in p.stdout.splitlines()[-1]


def test_user_token_kind(daemon_factory, fake):
    fake.set_token_profile(USER_TOKEN)
    d = daemon_factory(token=USER_TOKEN)
    p = doctor(d)
    line(p, "ok      token kind: a user token (xoxp-)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_slack_unreachable_exits_69(daemon_factory, fake):
    d = daemon_factory(api_url="http://127.0.0.1:%d/api/" % free_port())
    p = doctor(d)
    assert p.returncode == 69, p.stdout + p.stderr
    assert "cannot reach Slack" in line(p, "FAILED  auth.test:")
    # The local checks still ran.
    line(p, "ok      socket: %s" % d.sock)
    assert "(exit 69)" in p.stdout.splitlines()[-1]


def test_slack_server_error_exits_69(daemon_factory, fake):
    fake.queue_api_response(status=503, body="upstream trouble",
                            method="auth.test")
    d = daemon_factory()
    p = doctor(d)
    assert p.returncode == 69, p.stdout
    assert "HTTP 503" in line(p, "FAILED  auth.test:")


def test_rate_limited_rtm_connect_exits_69(daemon_factory, fake):
    fake.queue_api_response(status=429, headers={"Retry-After": "30"},
                            body={"ok": False, "error": "ratelimited"})
    d = daemon_factory()
    p = doctor(d)
    assert p.returncode == 69, p.stdout
    assert "try again in a minute" in line(p, "FAILED  rtm.connect:")


def test_no_token_exits_78(daemon_factory, fake):
    d = daemon_factory(token=None, token_file=None)
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    assert "no Slack token" in line(p, "FAILED  token:")
    assert fake.api_calls == []
    line(p, "ok      socket:")


def test_token_file_refused_exits_78(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    os.chmod(d.token_path, 0o644)
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    assert "chmod 600" in line(p, "FAILED  token:")
    # A token in the environment does not help once token_file is set.
    p = doctor(d, env={"SLACK_API_TOKEN": TOKEN})
    assert p.returncode == 78, p.stdout
    assert "(SLACK_API_TOKEN also set, not used: the first source that " \
        "exists wins)" in line(p, "FAILED  token:")


def test_which_token_source_wins(daemon_factory, fake, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    fd = os.open(str(creds / "slack-token"), os.O_WRONLY | os.O_CREAT, 0o400)
    os.write(fd, TOKEN.encode())
    os.close(fd)
    d = daemon_factory(token=REFUSED)  # token_file holds a refused token
    p = doctor(d, env={"CREDENTIALS_DIRECTORY": str(creds),
                       "SLACK_API_TOKEN": REFUSED})
    assert p.returncode == 0, p.stdout
    src = line(p, "ok      token: from systemd credential slack-token (%s)"
               % (creds / "slack-token"))
    assert "(token_file %s and SLACK_API_TOKEN also set, not used)" \
        % d.token_path in src
    d2 = daemon_factory(token_file=None)
    p = doctor(d2, env={"SLACK_API_TOKEN": TOKEN})
    assert p.returncode == 0, p.stdout
    line(p, "ok      token: from SLACK_API_TOKEN")


def test_socket_and_state_dir_problems(daemon_factory, fake, tmp_path):
    d = daemon_factory(state_dir=str(tmp_path / "nowhere"),
                       allow_users="root", socket_mode="0600")
    d.write_config()
    with open(d.sock, "w") as f:
        f.write("not a socket\n")
    p = doctor(d)
    assert p.returncode == 78, p.stdout
    assert "is not a socket" in line(p, "FAILED  socket: %s" % d.sock)
    assert "No such file or directory" in line(
        p, "warning state directory: %s" % (tmp_path / "nowhere"))
    os.unlink(d.sock)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(d.sock)
    stale.close()
    p = doctor(d)
    assert p.returncode == 0, p.stdout
    line(p, "ok      socket: %s (a stale socket, replaced at start)" % d.sock)
    os.unlink(d.sock)
    p = doctor(d)
    assert p.returncode == 0, p.stdout
    who = line(p, "ok      socket: %s" % d.sock)
    assert "who may connect: mode 0600 lets in only the user slackd runs " \
        "as" in who
    assert "only root, that user, users root may use it" in who


def test_running_daemon_socket_is_a_warning(daemon_factory, fake):
    d = daemon_factory().start()
    p = doctor(d)
    assert p.returncode == 0, p.stdout
    assert "something already listens on it" in line(p, "warning socket: %s" % d.sock)


def test_help_names_doctor():
    p = subprocess.run([SLACKD, "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--doctor" in p.stdout


def test_tls_settings_as_the_daemon(daemon_factory, fake_tls, pki):
    d = daemon_factory(fake_=fake_tls, ca_file=pki["ca"])
    p = doctor(d)
    assert p.returncode == 0, p.stdout + p.stderr
    line(p, "ok      rtm.connect: RTM accepts this token")
    # Another CA: the certificate is refused, Slack is not reached.
    d2 = daemon_factory(fake_=fake_tls, ca_file=pki["otherca"])
    p = doctor(d2)
    assert p.returncode == 69, p.stdout + p.stderr
    assert "cannot reach Slack" in line(p, "FAILED  auth.test:")
