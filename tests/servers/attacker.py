"""A second local user's listener: it binds an address next to a server's, records every
request it gets, and answers each as a drain that went well.

Run as ``python -m tests.servers.attacker ADDRESS PORT RECORD``; it prints ``listening`` once
bound and serves until it is killed. Each request becomes one JSON line in *RECORD*: its
request line and headers, so a test sees whether a token came its way.
"""

from __future__ import annotations

import json
import socket
import sys

# What `asgi-supervisor drain` would print as a success, had it believed it.
FAKE_DRAIN = json.dumps(
    {
        "state": "stopped",
        "drained": True,
        "report": {"summary": "drain endpoint, done"},
        "processes": [{"pid": 1, "state": "stopped", "drained": True}],
    }
).encode()


def serve(address: str, port: int, record: str) -> None:
    """Listen on *address*:*port* and answer every request with `FAKE_DRAIN`."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as listener:
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind((address, port))
        listener.listen()
        print("listening", flush=True)
        while True:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(5.0)
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                line, *headers = head.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                with open(record, "a", encoding="utf-8") as file:
                    file.write(json.dumps({"request": line, "headers": headers}) + "\n")
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(FAKE_DRAIN)}\r\nconnection: close\r\n\r\n".encode()
                    + FAKE_DRAIN
                )


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
