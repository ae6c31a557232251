"""A TLS terminator in front of the embedded broker, as stunnel or a load balancer would be.

Tansu 0.6.0 cannot serve TLS itself (its ``--cert`` and ``--key`` options exclude each other), so
the secured-connection test puts this in front of it and has Tansu advertise the terminator's
address: every Kafka client then speaks TLS, verified against the test's CA, and the terminator
forwards the decrypted bytes to the broker unchanged. Only the transport is stood in for; every
Kafka request is answered by the real broker.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path


class TlsTerminator:
    """Accepts TLS on ``listen_port`` (loopback) and pipes each connection to ``upstream_port``."""

    def __init__(self, listen_port: int, upstream_port: int, certfile: Path, keyfile: Path) -> None:
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(certfile), str(keyfile))
        self.handshakes = 0  # TLS connections completed: proof the clients went through here
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, name="tls-terminator", daemon=True)

    def __enter__(self) -> TlsTerminator:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS terminator did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.listen_port, ssl=self._context))
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1  # start_server hands a connection over once its handshake is done
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
