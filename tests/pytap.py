"""Turn a pytest junit XML report into TAP on stdout (see pytest-tap.sh)."""
import sys
import xml.etree.ElementTree as ET


def main(path, status):
    try:
        cases = list(ET.parse(path).getroot().iter("testcase"))
    except (ET.ParseError, FileNotFoundError):
        cases = []
    n = 0
    for case in cases:
        n += 1
        name = "%s::%s" % (case.get("classname", ""), case.get("name", ""))
        failed = case.find("failure") is not None or \
            case.find("error") is not None
        skipped = case.find("skipped")
        if skipped is not None:
            print("ok %d - %s # SKIP %s" % (n, name,
                  (skipped.get("message") or "").replace("\n", " ")))
        elif failed:
            print("not ok %d - %s" % (n, name))
        else:
            print("ok %d - %s" % (n, name))
    if n == 0 or (status != 0 and not any(
            c.find("failure") is not None or c.find("error") is not None
            for c in cases)):
        n += 1
        print("not ok %d - pytest failed outside the tests (exit status %d;"
              " see the log: a token leak, a collection error, ...)"
              % (n, status))
    print("1..%d" % n)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
