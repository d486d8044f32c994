"""A peer that tries the main daemon's node channel the wrong way, run inside
a node's namespace by the multihost tests:

    python -m tests.support.netns_probe ENDPOINT plain NODE
    python -m tests.support.netns_probe ENDPOINT wrong-server-key NODE KEYS_DIR

``plain`` speaks without CURVE (no key at all); ``wrong-server-key`` holds
the node's real key pair but expects another server key. Either sends a
hello as NODE and waits two seconds; prints ``{"replies": N}``.
"""

from __future__ import annotations

import contextlib
import json
import sys

import zmq
from zmq.auth.certs import load_certificate

from messages import NodeHello, encode


def main(argv: list[str]) -> int:
    endpoint, mode, node = argv[0], argv[1], argv[2]
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if mode == "wrong-server-key":
        public, secret = load_certificate(f"{argv[3]}/{node}.key_secret")
        s.curve_publickey, s.curve_secretkey = public, secret
        s.curve_serverkey = zmq.curve_keypair()[0]
    s.connect(endpoint)
    with contextlib.suppress(zmq.Again):  # no peer (refused already): nothing to send to
        s.send(encode(NodeHello(node=node, incarnation=1, pid=1), f"node.{node}", 1, 0), zmq.NOBLOCK)
    replies = 0
    while s.poll(2000):
        s.recv()
        replies += 1
    print(json.dumps({"replies": replies}))
    s.close(linger=0)
    ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
