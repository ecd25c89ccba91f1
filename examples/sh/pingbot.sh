#!/bin/sh
# pingbot.sh: answer every message "ping" with "pong" in the same thread,
# through slackd's socket.  POSIX sh, socat and jq; see README.md.
#
#   pingbot.sh [SOCKET]
#
# SOCKET defaults to $SLACKD_SOCKET, else /run/slackd/slackd.sock.  Runs
# until slackd closes the connection.
set -eu

sock=${1:-${SLACKD_SOCKET:-/run/slackd/slackd.sock}}
if [ ! -S "$sock" ]; then
	echo "pingbot.sh: no slackd socket at $sock" >&2
	exit 1
fi

# jq reads slackd's lines and writes requests back (socat connects its
# standard input and output to the socket).  First a subscription to
# message events only; then, for each plain message whose text is "ping",
# a reply in its thread: the thread it is in (thread_ts), else the thread
# it starts (its own ts).  A failed request is reported on stderr, as jq's
# debug line: ["DEBUG:","pingbot.sh: request 7 failed: channel_not_found"].
PINGBOT_JQ='
{id: 1, type: "slackd.subscribe", types: ["message"]},
(inputs
 | if .type == "message" and .subtype == null and .text == "ping" then
     {id: input_line_number, type: "message", channel: .channel,
      text: "pong", thread_ts: (.thread_ts // .ts)}
   elif .reply_to != null and .ok == false then
     ("pingbot.sh: request \(.reply_to) failed: \(.error.msg // .error)"
      | debug | empty)
   else empty end)'
export PINGBOT_JQ

# socat reads quotes in its addresses itself: the \" reach sh as ".
exec socat UNIX-CONNECT:"$sock" \
    SYSTEM:'exec jq --unbuffered -c -n \"$PINGBOT_JQ\"'
