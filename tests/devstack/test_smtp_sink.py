"""The local SMTP sink, run as its real process: send mail over SMTP, read and clear it over HTTP."""
import os
import sys
import time
from datetime import datetime
from email.message import EmailMessage
from types import SimpleNamespace

import aiosmtplib
import httpx
import pytest

from devstack.procs import Supervisor, free_port


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    smtp_port, http_port = free_port(), free_port()
    sup = Supervisor(log_dir=tmp_path_factory.mktemp("smtp-sink"))
    env = {**os.environ, "SMTP_PORT": str(smtp_port), "SMTP_HTTP_PORT": str(http_port)}
    sup.start("smtp", [sys.executable, "-m", "devstack.smtp"], env)
    http = f"http://127.0.0.1:{http_port}"
    try:
        sup.wait_ready("smtp", f"{http}/healthz", timeout=30)
        yield SimpleNamespace(smtp_port=smtp_port, http=http, proc=sup.children["smtp"].proc)
    finally:
        sup.stop_all()


def _mail(to: str, subject: str, text: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alerts@hotline111.local"
    msg["To"] = to
    msg["Subject"] = subject
    msg["X-Case-Id"] = "case-123"
    msg.set_content(text)
    msg.add_alternative(f"<p>{text}</p>", subtype="html")
    return msg


async def test_sent_mail_is_listed_with_decoded_body(sink):
    async with httpx.AsyncClient(base_url=sink.http) as http:
        await http.delete("/messages")
        before = time.time()
        subject = "Cảnh báo: tiếp nhận vụ việc mới"
        await aiosmtplib.send(_mail("police@an-giang.local", subject, "Nạn nhân cần hỗ trợ khẩn cấp."),
                              hostname="127.0.0.1", port=sink.smtp_port)
        await aiosmtplib.send(_mail("border@lao-cai.local", "other", "x"), hostname="127.0.0.1", port=sink.smtp_port)

        everything = (await http.get("/messages")).json()
        assert len(everything) == 2
        listed = (await http.get("/messages", params={"to": "POLICE@an-giang.local"})).json()

    assert len(listed) == 1
    msg = listed[0]
    assert msg["mail_from"] == "alerts@hotline111.local"
    assert msg["rcpt_tos"] == ["police@an-giang.local"]
    assert msg["subject"] == subject
    assert msg["headers"]["X-Case-Id"] == "case-123"
    assert msg["body"] == "Nạn nhân cần hỗ trợ khẩn cấp.\n"
    assert msg["html"].strip() == "<p>Nạn nhân cần hỗ trợ khẩn cấp.</p>"
    assert before <= msg["received_ts"] <= time.time()
    assert datetime.fromisoformat(msg["received_at"]).timestamp() == pytest.approx(msg["received_ts"], abs=1e-3)


async def test_delete_clears_and_since_filters(sink):
    async with httpx.AsyncClient(base_url=sink.http) as http:
        await aiosmtplib.send(_mail("a@x.local", "first", "1"), hostname="127.0.0.1", port=sink.smtp_port)
        first = (await http.get("/messages")).json()[-1]
        await aiosmtplib.send(_mail("a@x.local", "second", "2"), hostname="127.0.0.1", port=sink.smtp_port)

        newer = (await http.get("/messages", params={"since": first["received_ts"]})).json()
        assert [m["subject"] for m in newer] == ["second"]

        assert (await http.delete("/messages")).status_code == 204
        assert (await http.get("/messages")).json() == []
    assert sink.proc.poll() is None
