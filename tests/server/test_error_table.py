"""One source of truth for errors: the server answers each class with its own http_status and code."""

from __future__ import annotations

import pytest

from cgstudio.core import errors
from cgstudio.server import errors as server_errors
from cgstudio.server.errors import classify, error_payload


def _all_error_classes() -> list[type[errors.CGStudioError]]:
    seen: list[type[errors.CGStudioError]] = []
    todo: list[type[errors.CGStudioError]] = [errors.CGStudioError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def _instance(cls: type[errors.CGStudioError]) -> errors.CGStudioError:
    if issubclass(cls, errors.ContextOverflowError):
        return cls(10, 5)
    return cls("boom")


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__name__)
def test_served_status_and_code_are_the_class_attributes(cls: type[errors.CGStudioError]) -> None:
    status, kind, code, _ = classify(_instance(cls))
    assert (status, code) == (cls.http_status, cls.code)
    assert kind == server_errors.openai_error_type(status)


def test_classes_that_used_to_disagree_with_the_table() -> None:
    # The old table served both as 500 while the classes said 502 and 403.
    assert classify(errors.HubError("hub down"))[0] == 502
    assert classify(errors.GatedRepoAccessError("accept the license"))[0] == 403
    assert error_payload(errors.GatedRepoAccessError("x"))["error"]["type"] == "permission_error"


def test_unexpected_exceptions_say_nothing_internal() -> None:
    status, kind, code, message = classify(RuntimeError("secret path /root/x"))
    assert (status, kind, code) == (500, "server_error", "internal_error")
    assert "secret" not in message
