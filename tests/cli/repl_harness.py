"""The chat REPL on a scripted engine, run by the pseudo-terminal tests (test_repl_pty.py).

The engine answers "reply to message N" (N: the user messages in its prompt), or, when the last
message starts with "forever", counts "w0 w1 w2 ..." slowly until it is cancelled.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

from cgstudio.cli.repl import ChatRepl
from cgstudio.core.engine import DecodeRequest, DecodeStats, TokenStream
from cgstudio.core.settings import load_settings
from cgstudio.engine.fake import FakeEngine
from cgstudio.session.model import CodeModel

TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</>{% endfor %}<assistant>"


class ScriptedChatEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__([])
        self.info = dataclasses.replace(self.info, chat_template=TEMPLATE, name="scripted")

    def stream(self, request: DecodeRequest) -> TokenStream:
        n = len(request.tokens)
        stats = DecodeStats(n_prompt=n, n_prompt_evaluated=n, prompt_eval_s=0.001)
        prompt = bytes(t - 1000 for t in request.tokens if t >= 1000).decode()
        users = prompt.count("<user>")
        forever = prompt.rsplit("<user>", 1)[-1].startswith("forever")

        def text() -> Iterator[str]:
            if not forever:
                yield from f"reply to message {users}\n"
                return
            i = 0
            while True:
                time.sleep(0.02)
                yield from f"w{i} "
                i += 1

        def gen() -> Iterator[int]:
            for ch in text():
                if request.cancel is not None and request.cancel.is_set():
                    stats.finish = "cancelled"
                    return
                if stats.n_generated >= request.max_tokens:
                    stats.finish = "max_tokens"
                    return
                stats.n_generated += 1
                yield 1000 + ord(ch)
            stats.finish = "stop_token"

        return TokenStream(gen(), stats)


def scripted_model(alias: str) -> CodeModel:
    settings = load_settings({"sampling": {"max_tokens": 3000}, "guards": {"repetition": False}})
    return CodeModel(ScriptedChatEngine(), settings, alias)


if __name__ == "__main__":
    ChatRepl(scripted_model("scripted"), scripted_model).run()
