"""Starting, reloading and stopping slackd as a user does: the reload rule
of the configuration table, what a detached start reports, what a stop
leaves behind, and the messages of the command line."""

import os
import signal

from conftest import wait_until


def reload(d, **settings):
    d.settings.update({k: str(v) for k, v in settings.items()})
    d.write_config()
    n = d.log_text().count("configuration reloaded")
    d.signal(signal.SIGHUP)
    wait_until(lambda: d.log_text().count("configuration reloaded") > n,
               what="the reload")


def test_reload_warns_about_restart_only_keys(daemon):
    reload(daemon, queue_max=10, allow_users="root")
    log = daemon.log_text()
    assert "take effect only" not in log and "takes effect only" not in log
    reload(daemon, socket_mode="0600")
    assert ("warning: reload: socket, socket_mode and socket_group take "
            "effect only when slackd restarts") in daemon.log_text()
    reload(daemon, ca_file="/etc/ssl/certs/ca-certificates.crt")
    log = daemon.log_text()
    assert ("warning: reload: ca_file takes effect only when slackd "
            "restarts") in log
    assert log.count("socket_group take effect") == 1
