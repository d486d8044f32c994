"""One HTTP request, run inside a network namespace by tests/support/hosts.py:

    python -m tests.support.netns_http METHOD URL [JSON_BODY]

prints the reply (JSON, or ``{"text": ...}`` for anything else) on stdout.
"""

from __future__ import annotations

import json
import sys
import urllib.request


def main(argv: list[str]) -> int:
    method, url = argv[0], argv[1]
    data = argv[2].encode() if len(argv) > 2 else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read().decode()
    try:
        out = json.loads(body)
    except ValueError:
        out = {"text": body}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
