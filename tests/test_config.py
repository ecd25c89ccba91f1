"""The configuration file and `slackd -n`: a good file is reported with the
token's source, each mistake is named with its file and line, values are
checked (plain http only to loopback), and the shipped example is valid."""

import os

from conftest import SLACKD, TOKEN, run


def test_check_config_ok(daemon_factory, fake):
    d = daemon_factory()
    d.write_config()
    p = run(SLACKD, "-n", "-f", d.conf_path)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout and "token from token_file" \
        in p.stdout
    assert TOKEN not in p.stdout + p.stderr


def test_check_config_errors_with_line_numbers(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# comment\n"
                    "ping_interval = often\n"
                    "frobs = 3\n"
                    "queue_max = 5\n"
                    "queue_max = 6\n"
                    "socket\n"
                    "api_url = http://example.com/api/\n")
    p = run(SLACKD, "-n", "-f", str(conf))
    assert p.returncode == 78
    err = p.stderr
    assert "%s:2: bad value for ping_interval: \"often\"" % conf in err
    assert "%s:3: unknown key \"frobs\"" % conf in err
    assert "%s:5: \"queue_max\" is already set on line 4" % conf in err
    assert "%s:6: expected \"key = value\"" % conf in err
    p = run(SLACKD, "-n", "-f", str(tmp_path / "missing.conf"))
    assert p.returncode == 78 and "No such file" in p.stderr


def test_plain_http_refused_for_remote_host(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("api_url = http://slack.example.com/api/\n")
    p = run(SLACKD, "-n", "-f", str(conf))
    assert p.returncode == 78
    assert "only allowed to a loopback host" in p.stderr


def test_example_config_is_valid(tmp_path):
    here = os.environ.get("TESTS_SRCDIR", os.path.dirname(__file__))
    example = os.path.join(here, "..", "conf", "slackd.conf")
    p = run(SLACKD, "-n", "-f", example, "-s", str(tmp_path / "s"),
            env={"SLACK_API_TOKEN": TOKEN})
    assert p.returncode == 0, p.stderr
    assert "token from SLACK_API_TOKEN" in p.stdout
