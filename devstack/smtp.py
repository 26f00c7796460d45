"""A local SMTP sink: accepts every mail, keeps it in memory, lists it over HTTP.

    python -m devstack.smtp          # SMTP on 127.0.0.1:$SMTP_PORT (1025), HTTP on $SMTP_HTTP_PORT (8025)

HTTP:
    GET    /messages[?to=addr][&since=epoch]  -> [{"id", "received_at", "received_ts", "mail_from",
                                                  "rcpt_tos", "subject", "headers", "body", "html"}]
    DELETE /messages                          -> clears the store
    GET    /healthz

`received_ts` is time.time() at the end of DATA (the benchmark measures report->email latency
with it); `received_at` is the same instant in ISO 8601 UTC. `body` is the decoded text/plain
part, `html` the text/html part (or null). `headers` keeps the first value of each header name.
Everything runs on one event loop: aiosmtpd's protocol plus uvicorn.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from functools import partial

from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Response

log = logging.getLogger("devstack.smtp")


def parse_message(raw: bytes, mail_from: str, rcpt_tos: list[str], received_ts: float) -> dict:
    # SMTP lines end in CRLF; normalise so `body` reads like the text the sender composed.
    msg = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
    headers: dict[str, str] = {}
    for name, value in msg.items():
        headers.setdefault(name, str(value))
    return {
        "id": uuid.uuid4().hex,
        "received_at": datetime.fromtimestamp(received_ts, UTC).isoformat(),
        "received_ts": received_ts,
        "mail_from": mail_from,
        "rcpt_tos": list(rcpt_tos),
        "subject": str(msg.get("Subject", "")),
        "headers": headers,
        "body": _part(msg, "plain") or "",
        "html": _part(msg, "html"),
    }


def _part(msg: email.message.EmailMessage, subtype: str) -> str | None:
    part = msg.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    try:
        return part.get_content()
    except (LookupError, ValueError):  # unknown charset: still show something
        return part.get_payload(decode=True).decode("utf-8", errors="replace")


class MailStore:
    """In-memory, bounded (oldest dropped first) so a long benchmark cannot eat all RAM."""

    def __init__(self, max_messages: int = 200_000):
        self.messages: deque[dict] = deque(maxlen=max_messages)

    def list(self, to: str | None = None, since: float | None = None) -> list[dict]:
        out = list(self.messages)
        if since is not None:
            out = [m for m in out if m["received_ts"] > since]
        if to:
            to = to.lower()
            out = [m for m in out if to in (r.lower() for r in m["rcpt_tos"])]
        return out

    def clear(self) -> None:
        self.messages.clear()

    # aiosmtpd handler hook
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        received_ts = time.time()
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        message = parse_message(raw, envelope.mail_from, envelope.rcpt_tos, received_ts)
        self.messages.append(message)
        log.info("mail %s -> %s: %s", message["mail_from"], ",".join(message["rcpt_tos"]), message["subject"])
        return "250 Message accepted for delivery"


def create_app(store: MailStore) -> FastAPI:
    app = FastAPI(title="SMTP sink", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/messages")
    async def messages(to: str | None = None, since: float | None = None) -> list[dict]:
        return store.list(to=to, since=since)

    @app.delete("/messages", status_code=204)
    async def clear() -> Response:
        store.clear()
        return Response(status_code=204)

    return app


async def start_smtp(store: MailStore, host: str, port: int) -> asyncio.Server:
    """Serve SMTP on the running loop. hostname is fixed: getfqdn() can stall on DNS in containers."""
    loop = asyncio.get_running_loop()
    factory = partial(SMTP, store, hostname="localhost", enable_SMTPUTF8=True, loop=loop)
    return await loop.create_server(factory, host=host, port=port)


async def serve(smtp_port: int = 1025, http_port: int = 8025, host: str = "127.0.0.1") -> None:
    import uvicorn

    store = MailStore(int(os.environ.get("SMTP_SINK_MAX_MESSAGES", "200000")))
    smtp_server = await start_smtp(store, host, smtp_port)
    log.info("SMTP sink on %s:%d, messages at http://%s:%d/messages", host, smtp_port, host, http_port)
    config = uvicorn.Config(create_app(store), host=host, port=http_port, access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    try:
        await server.serve()  # returns on SIGINT/SIGTERM
        if not server.started:
            raise SystemExit(f"SMTP sink: could not serve HTTP on {host}:{http_port}")
    finally:
        smtp_server.close()
        await smtp_server.wait_closed()


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    asyncio.run(serve(int(os.environ.get("SMTP_PORT", "1025")), int(os.environ.get("SMTP_HTTP_PORT", "8025")),
                      os.environ.get("SMTP_BIND_HOST", "127.0.0.1")))


if __name__ == "__main__":
    main()
