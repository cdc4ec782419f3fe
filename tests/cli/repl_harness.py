"""The chat REPL on a scripted engine, run by the pseudo-terminal tests (test_repl_pty.py).

The engine answers "reply to message N" (N: the user messages in its prompt), or, when the last
message starts with "forever", counts "w0 w1 w2 ..." slowly until it is cancelled.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator

from cgstudio.cli.repl import ChatRepl
from cgstudio.core.settings import load_settings
from cgstudio.engine.fake import FakeEngine
from cgstudio.session.model import CodeModel

TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</>{% endfor %}<assistant>"


def reply(prompt: str) -> Iterator[str]:
    """What the scripted model says to ``prompt`` (the chat template's text)."""
    if not prompt.rsplit("<user>", 1)[-1].startswith("forever"):
        yield f"reply to message {prompt.count('<user>')}\n"
        return
    for i in itertools.count():
        time.sleep(0.02)
        yield f"w{i} "


def scripted_engine() -> FakeEngine:
    engine = FakeEngine([], reply=reply)
    engine.info = dataclasses.replace(engine.info, chat_template=TEMPLATE, name="scripted")
    return engine


def scripted_model(alias: str) -> CodeModel:
    settings = load_settings({"sampling": {"max_tokens": 3000}, "guards": {"repetition": False}})
    return CodeModel(scripted_engine(), settings, alias)


if __name__ == "__main__":
    ChatRepl(scripted_model("scripted"), scripted_model).run()
