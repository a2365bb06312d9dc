"""The harness's stand-in for the cloud's TCP load balancer in front of the API servers.

Like the network load balancer cfcr renders: it listens on the API port, forwards each TCP
connection to a healthy backend (round robin), and checks every backend with an anonymous
HTTPS ``GET /readyz`` (200 = healthy; 2 successes to enter, 2 failures to leave, every 2 s),
without verifying the server's certificate, as the cloud's health checker does.

``--no-hairpin``: a connection from a backend's own address is dropped unanswered, as an Azure
load balancer does not carry a backend's packets to its own frontend (its members must reach the
API on themselves).

Run it in the load balancer's network namespace:
``python -m tests.support.lb --listen ADDR:PORT --backend ADDR:PORT [...] --status FILE [--no-hairpin]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import urllib.request
from pathlib import Path


class Backends:
    """Backends and their health."""

    def __init__(self, backends: list[str], status: Path) -> None:
        self.backends = backends
        self.healthy: dict[str, bool] = {b: False for b in backends}
        self.streak: dict[str, int] = {b: 0 for b in backends}
        self.status = status
        self.turn = 0

    def pick(self) -> str | None:
        up = [b for b in self.backends if self.healthy[b]]
        if not up:
            return None
        self.turn += 1
        return up[self.turn % len(up)]

    def check_once(self, backend: str) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"https://{backend}/readyz", context=context, timeout=3) as r:
                return bool(r.status == 200)
        except Exception:  # noqa: BLE001 - any failure is "unhealthy"
            return False

    async def health_loop(self) -> None:
        while True:
            for backend in self.backends:
                ok = await asyncio.to_thread(self.check_once, backend)
                if ok != self.healthy[backend]:
                    self.streak[backend] += 1
                    if self.streak[backend] >= 2:
                        self.healthy[backend] = ok
                        self.streak[backend] = 0
                else:
                    self.streak[backend] = 0
            self.status.write_text(json.dumps(self.healthy))
            await asyncio.sleep(2)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def serve(listen: str, backends: Backends, hairpin: bool = True) -> None:
    own = {b.rsplit(":", 1)[0] for b in backends.backends}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not hairpin and writer.get_extra_info("peername")[0] in own:
            # no answer at all, as the packets never come back: the client times out
            await reader.read()
            writer.close()
            return
        backend = backends.pick()
        if backend is None:
            writer.close()
            return
        host, port = backend.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", action="append", required=True)
    parser.add_argument("--backend", action="append", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--no-hairpin", action="store_true")
    args = parser.parse_args()
    backends = Backends(args.backend, Path(args.status))

    async def all_listeners() -> None:
        await asyncio.gather(backends.health_loop(), *(serve(listen, backends, not args.no_hairpin) for listen in args.listen))

    asyncio.run(all_listeners())


if __name__ == "__main__":
    main()
