"""Token-to-text conversion is shared by every stream of a model; it must be thread-safe."""

from __future__ import annotations

import threading
from pathlib import Path

from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp.handle import ModelHandle


def test_pieces_are_right_when_streams_convert_at_once(codegemma_paths: dict[str, Path]) -> None:
    handle = ModelHandle(codegemma_paths["control"], LoadProfile(), vocab_only=True)
    try:
        ids = list(range(handle.n_vocab))
        want = {t: handle.piece(t, special=True) for t in ids}
        assert len(set(want.values())) > len(ids) // 2  # distinct pieces, or a mix-up could hide
        wrong: list[int] = []

        def convert(k: int) -> None:
            for _ in range(300):
                wrong.extend(t for t in ids[k::4] if handle.piece(t, special=True) != want[t])

        threads = [threading.Thread(target=convert, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # A buffer shared between threads gave thousands of wrong pieces here.
        assert wrong == []
    finally:
        handle.close()
