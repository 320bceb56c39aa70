"""The load generator's HTTP clients (bench/load_clients.py) send the body as given, keep their
connections alive, and judge answers alike: HTTP 200 without GraphQL `errors` is success."""

from __future__ import annotations

import asyncio

import pytest

from bench.load_clients import CLIENTS, make_client

ANSWERS = {
    b"ok": (200, b'{"data":{"ok":true}}'),
    b"errors": (200, b'{"data":null,"errors":[{"message":"no"}]}'),
    b"fail": (500, b"Internal Server Error"),
}


class Server:
    """A keep-alive HTTP/1.1 server answering by the request body (ANSWERS), with
    Content-Length as uvicorn does; it keeps the bodies and headers it got and counts
    connections."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.heads: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.heads.append(head)
                self.bodies.append(body)
                status, content = ANSWERS[body]
                writer.write(
                    b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (status, len(content), content)
                )
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_clients_send_the_body_and_judge_answers_alike(kind: str) -> None:
    server = Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = make_client(kind, f"http://127.0.0.1:{port}", 2)
    headers = {"authorization": "Bearer t", "content-type": "application/json"}
    try:
        assert await client.post(b"ok", headers) is None
        assert await client.post(b"ok", headers) is None
        errors = await client.post(b"errors", headers)
        assert errors is not None and errors.startswith("HTTP 200") and "no" in errors
        fail = await client.post(b"fail", headers)
        assert fail is not None and fail.startswith("HTTP 500")
        assert await asyncio.gather(*(client.post(b"ok", headers) for _ in range(6))) == [None] * 6
    finally:
        await client.aclose()
        listener.close()
        await listener.wait_closed()
    assert server.bodies[:4] == [b"ok", b"ok", b"errors", b"fail"]
    assert 1 <= server.connections <= 2  # kept alive, at most `concurrency` at once
    for head in server.heads:
        assert head.startswith(b"POST /graphql HTTP/1.1\r\n")
        assert b"authorization: bearer t" in head.lower()
        assert b"content-type: application/json" in head.lower()
