"""``UpstreamClient``: its one retry, timeout and error policy against scripted answers (MockTransport)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from cgstudio.core.errors import InvalidInputError, OverloadedError, UpstreamError
from cgstudio.engine.remote.client import Hints, UpstreamClient

BASE = "http://up.test:8000"
Answer = int | Exception  # a status (200 answers {"ok": true}) or an exception to raise


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr("cgstudio.engine.remote.client.time.sleep", waits.append)
    return waits


def scripted(*answers: Answer) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """A handler answering each request with the next of ``answers`` (the last one repeats)."""
    queue = list(answers)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        if answer == 200:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(answer, json={"error": {"message": f"scripted {answer}"}})

    return handler, seen


def client(*answers: Answer, retries: int = 2, **kw: object) -> tuple[UpstreamClient, list[str], list[int]]:
    handler, seen = scripted(*answers)
    counts = [0, 0]  # retries, failed attempts

    def retried() -> None:
        counts[0] += 1

    def failed() -> None:
        counts[1] += 1

    c = UpstreamClient(
        BASE,
        retries=retries,
        transport=httpx.MockTransport(handler),
        on_retry=retried,
        on_error=failed,
        **kw,  # type: ignore[arg-type]
    )
    return c, seen, counts


@pytest.mark.parametrize("first", [httpx.ConnectError("refused"), 502, 503, 504])
def test_retries_connect_errors_and_gateway_statuses_then_succeeds(
    first: Answer, no_backoff: list[float]
) -> None:
    c, seen, counts = client(first, first, 200)
    assert c.json("POST", "/v1/x", {"a": 1}) == {"ok": True}
    assert len(seen) == 3 and counts == [2, 2]
    assert no_backoff == [0.25, 0.5]  # doubling backoff


def test_no_retry_on_a_rejected_request() -> None:
    c, seen, counts = client(400, 200)
    with pytest.raises(InvalidInputError, match=r"rejected the request \(400\): scripted 400; .*--ctx-size"):
        c.request("POST", "/v1/x", {})
    assert len(seen) == 1 and counts == [0, 1]


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (401, UpstreamError, "refused our credentials (401); set --api-key-upstream"),
        (404, UpstreamError, f"has no {BASE}/v1/x or no such model (404): scripted 404"),
        (429, OverloadedError, "overloaded (429): scripted 429"),
        (500, UpstreamError, "the upstream failed (500): scripted 500"),
    ],
)
def test_other_statuses_are_not_retried_and_map_to_our_errors(
    status: int, error: type[Exception], text: str
) -> None:
    c, seen, _ = client(status, 200)
    with pytest.raises(error) as exc:
        c.request("POST", "/v1/x", {})
    assert text in str(exc.value) and len(seen) == 1


def test_gives_up_after_max_attempts_with_the_mapped_error() -> None:
    c, seen, counts = client(503, retries=3)
    with pytest.raises(UpstreamError, match=r"the upstream failed \(503\): scripted 503"):
        c.request("GET", "/v1/models")
    assert len(seen) == 4 and counts == [3, 4]
    c, seen, _ = client(httpx.ConnectError("[Errno 111] Connection refused"), retries=1)
    with pytest.raises(UpstreamError, match=rf"the upstream at {BASE} is not answering .*Connection refused"):
        c.request("GET", "/v1/models")
    assert len(seen) == 2


def test_read_timeout_is_mapped_and_not_retried() -> None:
    c, seen, counts = client(httpx.ReadTimeout("timed out"), 200, read_timeout_s=7)
    with pytest.raises(UpstreamError, match=r"sent nothing for 7 s; it may be overloaded"):
        c.request("POST", "/v1/completions", {})
    assert len(seen) == 1 and counts == [0, 1]
    c, _, _ = client(httpx.ConnectTimeout("connect timed out"), retries=0)
    with pytest.raises(UpstreamError, match="is not answering"):
        c.request("GET", "/v1/models")


def test_stream_retries_until_the_answer_starts_and_cancel_stops_waiting() -> None:
    c, seen, counts = client(503, 200)
    with c.stream("/v1/completions", {}) as response:
        assert response is not None and response.json() == {"ok": True}
    assert len(seen) == 2 and counts == [1, 1]
    c, _, _ = client(400)
    with pytest.raises(InvalidInputError), c.stream("/v1/completions", {}):
        pass
    cancel = threading.Event()
    cancel.set()
    c, seen, _ = client(503, 200)
    with c.stream("/v1/completions", {}, cancel=cancel) as response:
        assert response is None and len(seen) == 1


def test_hints_and_headers() -> None:
    auth: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth.append(request.headers.get("authorization"))
        return httpx.Response(403, text="no")

    hints = Hints(down="is the server running?", credentials="pass --api-key", rejected="")
    c = UpstreamClient(BASE, api_key="k", hints=hints, transport=httpx.MockTransport(handler))
    with pytest.raises(UpstreamError, match=r"\(403\); pass --api-key$"):
        c.request("GET", "/v1/models")
    assert auth == ["Bearer k"]
    c, _, _ = client(httpx.ConnectError("refused"), retries=0, hints=hints)
    with pytest.raises(
        UpstreamError, match=r"not answering \(cannot reach it: refused\); is the server running\?$"
    ):
        c.request("GET", "/v1/models")
