"""The server's own API key and admin token never reach a log line, the journal or a recording: a `mockllm serve`
run that records, refuses and answers is grepped, every file it wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fake_upstream import FakeUpstream
from serve_process import ServeProcess

# Shapes no built-in secret pattern knows, so that only the configured values can scrub them.
KEY = "mock-key-Zq81xvTTq7"
TOKEN = "admin-token-Pw44rrKm"
HELLO: Any = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.echo_key = True  # the upstream echoes the caller's key in a header the recording keeps
        yield fake


def test_keys_and_tokens_appear_in_no_file_the_run_wrote(upstream: FakeUpstream, tmp_path: Path) -> None:
    out = tmp_path / "recordings"
    args = ["--upstream", f"chat={upstream.url}", "--record", "missing", "--out", str(out), "--time-scale", "0"]
    args += ["--admin-token", TOKEN, "--log-level", "debug", "--log-format", "json"]
    with ServeProcess(*args, env={"MOCKLLM_API_KEY": KEY}, cwd=tmp_path) as process:
        base = process.url
        # Answered and recorded: the key travels as x-api-key (echoed back raw by the upstream) and as a bearer.
        recorded = httpx.post(base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO},
                              headers={"x-api-key": KEY})  # fmt: skip
        assert recorded.status_code == 200, recorded.text
        with openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0) as client:
            assert client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=False).choices
            with pytest.raises(openai.AuthenticationError):
                client.with_options(api_key=KEY + "-not").chat.completions.create(model="gpt-4o", messages=HELLO)
        # The admin API, with and without the token.
        assert httpx.get(base + "/_mockllm/requests", headers={"authorization": f"Bearer {TOKEN}-x"}).status_code == 401
        journal = httpx.get(base + "/_mockllm/requests", headers={"x-mockllm-admin-token": TOKEN})
        assert journal.status_code == 200
        assert [entry["status"] for entry in journal.json()] == [200, 200, 401]
        (tmp_path / "journal.json").write_text(journal.text, encoding="utf-8")
        process.signal()
        assert process.wait() == 0
    (tmp_path / "serve.log").write_text("\n".join(process.lines), encoding="utf-8")
    assert any(json.loads(line).get("event") == "request" for line in process.lines)
    assert list(out.glob("*.yaml")), "nothing was recorded: the test would prove nothing"
    assert upstream.requests, "the upstream was never asked"

    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) >= 3
    for path in written:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in (KEY, TOKEN):
            assert secret not in text, f"{secret} found in {path}"
            assert secret[4:] not in text, f"part of {secret} found in {path}"


def test_log_lines_never_show_the_configured_secrets() -> None:
    import io
    import logging

    from mockllm.logs import configure_logging, redact_logs, reset_logging

    stream = io.StringIO()
    configure_logging("plain", "debug", stream)
    try:
        redact_logs([], [KEY, TOKEN])
        logging.getLogger("mockllm").warning("a client sent %s and %s (x-api-key: %s)", KEY, TOKEN, KEY)
        logging.getLogger("uvicorn.error").error("upstream said: invalid key %s", KEY)
    finally:
        redact_logs([])
        reset_logging()
    text = stream.getvalue()
    assert text.count("[REDACTED]") == 4
    assert KEY not in text
    assert TOKEN not in text


def test_the_serve_command_redacts_its_secrets_from_logs(tmp_path: Path) -> None:
    # A scenario's text quoting the key is logged (at debug, as a miss explanation would quote a prompt).
    with ServeProcess("--log-level", "debug", "--admin-token", TOKEN, env={"MOCKLLM_API_KEY": KEY}) as process:
        response = httpx.post(process.url + "/v1/chat/completions",
                              json={"model": "m", "messages": [{"role": "user", "content": f"my key is {KEY}"}]},
                              headers={"authorization": f"Bearer {KEY}"})  # fmt: skip
        assert response.status_code == 404  # no scenario: the miss is explained at debug level, quoting the prompt
        process.wait_for(lambda line: "matched no scenario" in line)
        process.signal()
        assert process.wait() == 0
    assert any("my key is [REDACTED]" in line for line in process.lines)
    assert not any(KEY in line for line in process.lines)
