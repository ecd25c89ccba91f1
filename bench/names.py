#!/usr/bin/python3
"""The names benchmark (make bench-names): time and memory to load a
30,000-user / 5,000-channel workspace from the fake Slack, and what a name
lookup costs the daemon.

Prints one JSON object.  Uses tests/fakeslack.py (Debian's python3 with
python3-websockets) and the slackd of the build directory.

  load:    slackd.names for the users, then the channels; wall time from
           request to answer (slackd paces users.list and conversations.list
           at Slack's tier 2: 20 pages at once, then one every 3 s), the
           daemon's CPU for it, its RSS before and after
  lookup:  N message requests to channel names (#channel-K) and N to the
           same channels' IDs, pipelined; the daemon CPU per request of
           each, and the difference: the cost of resolving a name
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from fakeslack import FakeSlack  # noqa: E402

TOKEN = "xoxb-bench-not-a-token"


def cpu_us(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total / 1000.0


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Client:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.line()                         # slackd.hello
        self.send({"type": "slackd.subscribe", "types": []})

    def send(self, obj):
        self.s.sendall((json.dumps(obj) + "\n").encode())

    def line(self):
        while b"\n" not in self.buf:
            data = self.s.recv(1 << 20)
            if not data:
                raise RuntimeError("slackd closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self, n):
        while True:
            m = self.line()
            if m.get("reply_to") == n:
                return m


def pipelined(c, targets, first_id, window=500):
    """Messages to targets, at most window unanswered at a time (slackd
    stops reading from a client that does not read its replies)."""
    pending = set()
    failed = 0
    i = 0
    while i < len(targets) or pending:
        while i < len(targets) and len(pending) < window:
            c.send({"id": first_id + i, "type": "message",
                    "channel": targets[i], "text": "bench"})
            pending.add(first_id + i)
            i += 1
        m = c.line()
        if m.get("reply_to") in pending:
            pending.discard(m["reply_to"])
            if not m.get("ok"):
                failed += 1
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builddir", required=True)
    ap.add_argument("--users", type=int, default=30000)
    ap.add_argument("--channels", type=int, default=5000)
    ap.add_argument("--lookups", type=int, default=5000)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="slackd-bench-names-")
    fake = FakeSlack(token=TOKEN).start()
    t0 = time.monotonic()
    fake.set_workspace(users=args.users, channels=args.channels)
    gen_s = time.monotonic() - t0
    token = os.path.join(tmp, "token")
    fd = os.open(token, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (TOKEN + "\n").encode())
    os.close(fd)
    sock = os.path.join(tmp, "s.sock")
    conf = os.path.join(tmp, "slackd.conf")
    with open(conf, "w") as f:
        f.write("api_url = %s\ntoken_file = %s\nsocket = %s\n"
                "log_level = warning\nsend_rate = 1000\nsend_burst = 1000\n"
                "queue_max = 100000\nconnect_timeout = 30\n"
                "rtm_connect_interval = 0\n" % (fake.api_url, token, sock))
    d = subprocess.Popen([os.path.join(args.builddir, "slackd"), "-d", "-f",
                          conf], stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        c = Client(sock)
        rss0 = status_kb(d.pid, "VmRSS")
        res = {"workspace": {"users": args.users + 1,
                             "channels": len(fake.conversation_ids(
                                 types=("public_channel", "private_channel",
                                        "mpim", "im"))),
                             "fake_generated_s": round(gen_s, 3)}}
        for kind, n in (("users", 1), ("channels", 2)):
            cpu0, t0 = cpu_us(d.pid), time.monotonic()
            c.send({"id": n, "type": "slackd.names", "kind": kind})
            r = c.reply(n)
            res["load_" + kind] = {
                "wall_s": round(time.monotonic() - t0, 2),
                "daemon_cpu_ms": round((cpu_us(d.pid) - cpu0) / 1000, 1),
                "entries": len(r[kind]),
                "pages": len([x for x in fake.api_calls if x["method"] ==
                              ("users.list" if kind == "users" else
                               "conversations.list")]),
            }
        res["memory_kib"] = {"rss_before": rss0,
                             "rss_loaded": status_kb(d.pid, "VmRSS"),
                             "growth": status_kb(d.pid, "VmRSS") - rss0,
                             "vmhwm": status_kb(d.pid, "VmHWM")}
        n = min(args.lookups, args.channels)
        names = ["#channel-%d" % (i + 1) for i in range(n)]
        ids = [fake.conversation_ids()[3 + i] for i in range(n)]
        runs = {}
        for label, targets, first in (("ids", ids, 1000), ("names", names,
                                                             100000)):
            cpu0, t0 = cpu_us(d.pid), time.monotonic()
            failed = pipelined(c, targets, first)
            runs[label] = {"requests": n, "failed": failed,
                           "wall_s": round(time.monotonic() - t0, 2),
                           "daemon_cpu_us_per_request":
                               round((cpu_us(d.pid) - cpu0) / n, 2)}
        runs["resolution_cost_us"] = round(
            runs["names"]["daemon_cpu_us_per_request"] -
            runs["ids"]["daemon_cpu_us_per_request"], 2)
        res["lookup"] = runs
        print(json.dumps(res, indent=1))
    finally:
        d.terminate()
        d.wait(20)
        fake.stop()


if __name__ == "__main__":
    main()
