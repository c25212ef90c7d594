"""The lean upstream client over TLS (https backends): a loopback TLS server with a throwaway certificate.

The certificate is made at test time with the ``openssl`` command line tool
(skipped with a reason where it is missing). Checks: a trusted server answers
over keep-alive (one TLS connection for several requests), a chunked body
arrives, a URL path prefix is kept, and an untrusted certificate is a connect
error (safe to try another replica), not a hang or a protocol error.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from thinkgate.gateway.http1 import ConnectError, HTTP1Pool

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return crt, key


async def _serve(cert: tuple[Path, Path], seen: list[bytes], conns: list[int]) -> asyncio.Server:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                seen.append(head + await r.readexactly(length))
                if b"/chunked" in head.split(b"\r\n", 1)[0]:
                    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                else:
                    body = b'{"n":%d}' % len(seen)
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            w.close()

    return await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=ctx)


async def test_https_backend_keepalive_chunked_and_prefix(cert):
    seen: list[bytes] = []
    conns: list[int] = []
    server = await _serve(cert, seen, conns)
    port = server.sockets[0].getsockname()[1]
    trust = ssl.create_default_context(cafile=str(cert[0]))
    pool = HTTP1Pool(connect_timeout_s=5, read_timeout_s=5, max_connections=4, ssl_context=trust)
    try:
        for i in (1, 2):
            resp = await pool.request(f"https://127.0.0.1:{port}/api", "POST", "/v1/chat/completions", b'{"a":1}')
            assert resp.status == 200 and await resp.read() == b'{"n":%d}' % i
            resp.release()
        resp = await pool.request(f"https://127.0.0.1:{port}", "POST", "/chunked", b"{}")
        assert await resp.read() == b"hello world"
        resp.release()
        assert len(conns) == 1  # one TLS connection, kept alive across all three requests
        assert seen[0].startswith(b"POST /api/v1/chat/completions HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:%d\r\n" % port in seen[0]
    finally:
        await pool.close()
        server.close()


async def test_untrusted_certificate_is_a_connect_error(cert):
    server = await _serve(cert, [], [])
    port = server.sockets[0].getsockname()[1]
    pool = HTTP1Pool(connect_timeout_s=5, read_timeout_s=5, max_connections=4)  # system CAs only
    try:
        with pytest.raises(ConnectError, match="127.0.0.1"):
            await pool.request(f"https://127.0.0.1:{port}", "POST", "/v1/completions", b"{}")
    finally:
        await pool.close()
        server.close()
