#!/usr/bin/python3
"""Takeover time with nats_ha (make bench-ha).

    bench/ha.py --builddir BUILDDIR [--kills N] [--lease SECONDS] [--quick]

Starts a nats-server (JetStream in a temporary directory), the test
suite's fake Slack (tests/fakeslack.py) and three slackd with nats_ha =
yes, then N times (default 20; --quick: 5) kills the leader with SIGKILL
and measures the time from the kill until a standby's new Slack session
is open at the fake, then starts the killed slackd again as a standby.
Prints one JSON object: ha_lease, the kills, the takeover times (min,
median, 90th percentile, max, all of them, in seconds) and how often two
Slack sessions were open at once (must be 0).  Needs nats-server.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(top, "tests"))
from fakeslack import FakeSlack  # noqa: E402

TOKEN = "xoxb-bench-ha-0000"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit("bench/ha.py: no %s within %.0f s"
                             % (what, timeout))
        time.sleep(0.005)


class Slackd:
    def __init__(self, tmp, i, slackd, fake, url, lease):
        self.dir = os.path.join(tmp, "d%d" % i)
        os.makedirs(self.dir)
        self.slackd = slackd
        self.conf = os.path.join(self.dir, "slackd.conf")
        token = os.path.join(self.dir, "token")
        fd = os.open(token, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, (TOKEN + "\n").encode())
        os.close(fd)
        with open(self.conf, "w") as f:
            for k, v in (("api_url", fake.api_url),
                         ("socket", os.path.join(self.dir, "slackd.sock")),
                         ("token_file", token), ("nats_url", url),
                         ("nats_ha", "yes"), ("ha_lease", "%g" % lease),
                         ("nats_prefix", "bench"), ("nats_stream", "BENCH"),
                         ("reconnect_min", "0.1"), ("reconnect_max", "0.5"),
                         ("rtm_connect_interval", "0")):
                f.write("%s = %s\n" % (k, v))
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "slackd.log"), "ab")
        self.proc = subprocess.Popen(
            [self.slackd, "-d", "-f", self.conf], stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=self.log)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--kills", type=int)
    ap.add_argument("--lease", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    kills = args.kills or (5 if args.quick else 20)
    nats_server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.path.exists(nats_server):
        raise SystemExit("bench/ha.py: needs nats-server")
    tmp = tempfile.mkdtemp(prefix="slackd-bench-ha.")
    port = free_port()
    nlog = open(os.path.join(tmp, "nats-server.log"), "ab")
    nats = subprocess.Popen(
        [nats_server, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
         os.path.join(tmp, "js")], stdout=nlog, stderr=nlog)
    fake = FakeSlack(token=TOKEN).start()
    ds = []
    try:
        wait(lambda: listening(port), 10, "nats-server")
        url = "nats://127.0.0.1:%d" % port
        ds = [Slackd(tmp, i, os.path.join(args.builddir, "slackd"), fake,
                     url, args.lease) for i in range(3)]
        for d in ds:
            d.start()
        wait(lambda: len(fake.open_sessions) == 1, 30, "first leader")
        times = []
        for _ in range(kills):
            time.sleep(args.lease)  # the standbys are settled
            before = len(fake.sessions)
            leaders = [d for d in ds if leader_pid(d) == d.proc.pid]
            if len(leaders) != 1:
                raise SystemExit("bench/ha.py: %d leaders" % len(leaders))
            leader = leaders[0]
            t0 = time.monotonic()
            leader.kill()
            wait(lambda: any(s.open for s in fake.sessions[before:]),
                 args.lease + 30, "takeover")
            times.append(time.monotonic() - t0)
            leader.start()
        times.sort()
        print(json.dumps({
            "ha_lease": args.lease, "kills": kills,
            "takeover_s": {
                "min": round(times[0], 3),
                "median": round(statistics.median(times), 3),
                "p90": round(times[int(0.9 * (len(times) - 1))], 3),
                "max": round(times[-1], 3),
                "all": [round(t, 3) for t in times]},
            "two_sessions_at_once": fake.rtm_live_max > 1}))
    finally:
        for d in ds:
            if d.proc is not None:
                d.stop()
        fake.stop()
        nats.terminate()
        nats.wait(10)
        nlog.close()
        shutil.rmtree(tmp, ignore_errors=True)


def leader_pid(d):
    """The pid in slackd's status if it leads, else None."""
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(2)
        s.connect(os.path.join(d.dir, "slackd.sock"))
        f = s.makefile("rwb")
        f.readline()  # slackd.hello
        f.write(b'{"id":1,"type":"slackd.status"}\n')
        f.flush()
        while True:
            o = json.loads(f.readline())
            if o.get("reply_to") == 1:
                return o.get("pid") if o.get("state") == "connected" \
                    else None
    except (OSError, ValueError):
        return None
    finally:
        s.close()


if __name__ == "__main__":
    main()
