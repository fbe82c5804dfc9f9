"""The one thing the throwaway cluster puts on the machine's own network: a loopback port that forwards to the
API server in the cluster's hub network namespace. Run by devcluster/cluster.py as a script; never imported.
Standard library only.

It binds its listening socket on 127.0.0.1 first, then moves itself into the hub namespace (setns): sockets
keep the namespace they were made in, so it accepts on the machine's loopback and connects inside the hub.
Usage: forward.py HUB_NETNS_PATH TARGET_HOST TARGET_PORT PORT_FILE
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def _pipe(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, upstream)
    sel.register(upstream, selectors.EVENT_READ, client)
    try:
        while True:
            for key, _ in sel.select():
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                data = src.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()
        client.close()
        upstream.close()


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    netns, host, port, port_file = argv[0], argv[1], int(argv[2]), Path(argv[3])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    _setns(netns)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    port_file.write_text(f"{listener.getsockname()[1]}\n")
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_pipe, args=(client, (host, port)), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
