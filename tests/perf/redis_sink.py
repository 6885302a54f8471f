#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A Redis subscriber that only reads: SUBSCRIBE CHANNEL, then read and discard until SIGTERM or
EOF, and print the bytes received. cluster_bench.sh attaches a few to a channel to stand for the
wsrelay instances that have members in a room, while redis-benchmark PUBLISHes on it: Redis then
does the fan-out work of a real deployment, and the subscribers cost next to nothing. The count
shows that every publication reached every subscriber (Redis drops a subscriber that lags past
its client-output-buffer-limit). Standard library only.

Usage: redis_sink.py PORT CHANNEL
"""

import signal
import socket
import sys


def main():
    port, channel = int(sys.argv[1]), sys.argv[2].encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
    received = 0

    def done(*_):
        print(received, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, done)
    # Into one buffer, allocating nothing per read: a sink slower than Redis's output would be
    # dropped by Redis (client-output-buffer-limit pubsub, 32 MB by default) and show as missing bytes.
    buf = bytearray(4 << 20)
    while True:
        n = s.recv_into(buf)
        if not n:
            break
        received += n
    done()


if __name__ == "__main__":
    main()
