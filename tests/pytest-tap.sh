#!/bin/sh
# Run one pytest file and report each test as a TAP line, so that automake's
# TAP driver counts every test (and `make check` shows them one by one).
#   usage: pytest-tap.sh tests/test_foo.py [more files or node ids...]
set -u
py=${TEST_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
xml=$(mktemp "${TMPDIR:-/tmp}/slackd-pytest.XXXXXX")
trap 'rm -f "$xml"' EXIT INT TERM
PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -q -p no:cacheprovider \
	-o junit_family=xunit1 --junitxml="$xml" --timeout=180 -rfE \
	--rootdir="$here" "$@" >&2
status=$?
"$py" "$here/pytap.py" "$xml" "$status"
