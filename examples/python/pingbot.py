#!/usr/bin/python3
"""pingbot.py: answer every message "ping" with "pong" in the same thread,
through slackd's socket.  Python 3, standard library only; see README.md.

    pingbot.py [SOCKET]

SOCKET defaults to $SLACKD_SOCKET, else /run/slackd/slackd.sock.  Runs
until slackd closes the connection.
"""
import json
import os
import socket
import sys


def main():
    path = (sys.argv[1] if len(sys.argv) > 1 else
            os.environ.get("SLACKD_SOCKET") or "/run/slackd/slackd.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sys.exit("pingbot.py: cannot connect to %s: %s" % (path, e.strerror))
    lines = sock.makefile("r", encoding="utf-8")
    next_id = 1

    def send(request):
        nonlocal next_id
        request["id"] = next_id
        next_id += 1
        sock.sendall(json.dumps(request).encode() + b"\n")

    hello = json.loads(lines.readline() or "{}")
    if hello.get("type") != "slackd.hello":
        sys.exit("pingbot.py: slackd did not greet us: %s" % hello)
    # Only message events from now on (replies always come).
    send({"type": "slackd.subscribe", "types": ["message"]})
    for line in lines:
        msg = json.loads(line)
        if (msg.get("type") == "message" and "subtype" not in msg
                and msg.get("text") == "ping"):
            # In the thread the ping is in, else the one it starts.
            send({"type": "message", "channel": msg["channel"],
                  "text": "pong",
                  "thread_ts": msg.get("thread_ts") or msg["ts"]})
        elif "reply_to" in msg and msg.get("ok") is False:
            err = msg.get("error") or {}
            print("pingbot.py: request %s failed: %s" % (
                msg["reply_to"], err.get("msg", err)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
