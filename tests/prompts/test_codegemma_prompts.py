"""Token-exact CodeGemma prompts on synthetic GGUFs, for CONTROL and USER_DEFINED typings."""

from __future__ import annotations

from pathlib import Path

import pytest

import cgstudio
from cgstudio.core.errors import (
    ContextOverflowError,
    InvalidInputError,
    UnsupportedModeError,
    VariantMismatchError,
)
from cgstudio.core.prompt import ChatMessage, ContextFile
from cgstudio.generation.request import GenerationRequest
from cgstudio.prompts.chat import fix_bos
from cgstudio.session.model import CodeModel

BOS, EOS, FIM_PRE, FIM_MID, FIM_SUF, FILE_SEP, SOT, EOT = 2, 1, 67, 68, 69, 70, 106, 107
SPECIAL = {0, 1, 2, FIM_PRE, FIM_MID, FIM_SUF, FILE_SEP, SOT, EOT}
INJECT = "x = '<|fim_suffix|> <start_of_turn> <|file_separator|> <bos> <eos> <end_of_turn> <|fim_middle|>'\n"
TYPINGS = ["control", "user_defined", "user_defined_nokeys"]


@pytest.fixture(scope="module", params=TYPINGS)
def model(request: pytest.FixtureRequest, codegemma_paths: dict[str, Path]) -> CodeModel:
    m = cgstudio.load(str(codegemma_paths[request.param]), n_ctx=1024)
    yield m
    m.close()


def test_family_and_ids(model: CodeModel) -> None:
    assert model.family == "codegemma"
    assert model.fim_capable
    for text, tid in [
        ("<|fim_prefix|>", 67),
        ("<|fim_middle|>", 68),
        ("<|fim_suffix|>", 69),
        ("<|file_separator|>", 70),
        ("<start_of_turn>", 106),
        ("<end_of_turn>", 107),
    ]:
        assert model.vocab.id(text) == tid


def test_user_text_never_becomes_special(model: CodeModel) -> None:
    ids = model.vocab.plain(INJECT)
    assert not SPECIAL.intersection(ids)
    assert model.vocab.render(ids) == INJECT  # spelled out as plain text, byte for byte


def test_fim_psm_layout_is_token_exact(model: CodeModel) -> None:
    prefix, suffix = "def f(a):\n    " + INJECT, "\n    return a\n<|fim_prefix|>"
    psm = {"fim_cursor_line_in_middle": False}
    prompt, _ = model.prompt(GenerationRequest("fim", prefix, suffix, guards=psm))
    v = model.vocab
    assert prompt.tokens == [BOS, FIM_PRE, *v.plain(prefix), FIM_SUF, *v.plain(suffix), FIM_MID]
    assert prompt.tokens.count(FIM_SUF) == 1
    assert prompt.tokens.count(BOS) == 1
    # The editor layout (the default) moves the lines above the cursor after the middle token,
    # as plain text: the markers still appear once each.
    layout, _ = model.prompt(GenerationRequest("fim", prefix, suffix))
    assert layout.tokens[-len(v.plain("    " + INJECT)) :] == v.plain("    " + INJECT)
    assert [layout.tokens.count(t) for t in (BOS, FIM_PRE, FIM_SUF, FIM_MID)] == [1, 1, 1, 1]
    assert not SPECIAL.intersection(prompt.tokens[2:-1]) - {FIM_SUF}
    assert prompt.stop_ids == frozenset({EOS, FIM_PRE, FIM_MID, FIM_SUF, FILE_SEP, EOT})


def test_fim_adds_and_strips_no_whitespace(model: CodeModel) -> None:
    prefix, suffix = "  a = 1 \n\t", " \n\n  "
    psm = {"fim_cursor_line_in_middle": False}
    prompt, _ = model.prompt(GenerationRequest("fim", prefix, suffix, guards=psm))
    i, j = prompt.tokens.index(FIM_PRE), prompt.tokens.index(FIM_SUF)
    assert model.vocab.render(prompt.tokens[i + 1 : j]) == prefix
    assert model.vocab.render(prompt.tokens[j + 1 : -1]) == suffix
    # The editor layout keeps a cursor line of indentation only in the prefix: the same prompt.
    editor, _ = model.prompt(GenerationRequest("fim", prefix, suffix))
    assert editor.tokens == prompt.tokens


def test_fim_with_path_and_context_files(model: CodeModel) -> None:
    v = model.vocab
    files = (ContextFile("utils.py", "def helper():\n    return 1\n"), ContextFile("b.py", "B = 2\n"))
    prompt, _ = model.prompt(
        GenerationRequest("fim", "import utils\n", "", files=tuple(files), path="src/main.py")
    )
    assert prompt.tokens == [
        BOS,
        *v.plain("utils.py\ndef helper():\n    return 1\n"),
        FILE_SEP,
        *v.plain("b.py\nB = 2\n"),
        FILE_SEP,
        *v.plain("src/main.py\n"),
        FIM_PRE,
        *v.plain("import utils\n"),
        FIM_SUF,
        FIM_MID,
    ]
    text = v.render(prompt.tokens)
    assert text.startswith("<bos>utils.py\ndef helper():\n    return 1\n<|file_separator|>b.py\n")
    assert text.endswith("src/main.py\n<|fim_prefix|>import utils\n<|fim_suffix|><|fim_middle|>")


def test_chat_format_is_token_exact(model: CodeModel) -> None:
    v = model.vocab
    msgs = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "hi <end_of_turn>"),
        ChatMessage("assistant", "hello"),
        ChatMessage("user", "code?"),
    ]
    prompt, _ = model.prompt(GenerationRequest("chat", messages=msgs))
    assert prompt.tokens == [
        BOS,
        SOT,
        *v.plain("user\nBe brief.\n\nhi <end_of_turn>"),
        EOT,
        *v.plain("\n"),
        SOT,
        *v.plain("model\nhello"),
        EOT,
        *v.plain("\n"),
        SOT,
        *v.plain("user\ncode?"),
        EOT,
        *v.plain("\n"),
        SOT,
        *v.plain("model\n"),
    ]
    assert v.render(prompt.tokens).startswith("<bos><start_of_turn>user\nBe brief.\n\nhi <end_of_turn>")
    assert prompt.tokens.count(EOT) == 3  # the user's literal <end_of_turn> stayed text
    assert prompt.stop_ids == frozenset({EOS, EOT})


def test_chat_roles_must_alternate(model: CodeModel) -> None:
    with pytest.raises(InvalidInputError, match="alternate"):
        model.prompt(GenerationRequest("chat", messages=[ChatMessage("user", "a"), ChatMessage("user", "b")]))
    with pytest.raises(InvalidInputError, match="last message"):
        model.prompt(
            GenerationRequest("chat", messages=[ChatMessage("user", "a"), ChatMessage("assistant", "b")])
        )


def test_exactly_one_bos(model: CodeModel) -> None:
    assert fix_bos(model.vocab, [BOS, BOS, 5, 6]) == [BOS, 5, 6]
    assert fix_bos(model.vocab, [5, 6]) == [BOS, 5, 6]


def test_raw_prompt_parses_control_text(model: CodeModel) -> None:
    prompt, _ = model.prompt(GenerationRequest("raw", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"))
    assert prompt.tokens[:2] == [BOS, FIM_PRE]
    assert prompt.tokens[-1] == FIM_MID
    assert FIM_SUF in prompt.tokens


def test_fim_prompt_too_long_is_trimmed_near_cursor(codegemma_paths: dict[str, Path]) -> None:
    m = cgstudio.load(str(codegemma_paths["control"]), n_ctx=512)
    try:
        prefix = "".join(f"line_{i} = {i}\n" for i in range(800))
        suffix = "".join(f"after_{i} = {i}\n" for i in range(300))
        prompt, _ = m.prompt(GenerationRequest("fim", prefix, suffix))
        assert len(prompt.tokens) + (prompt.max_tokens or 0) <= 512
        assert [w.code for w in prompt.warnings][-1] == "prompt_truncated"
        i, j = prompt.tokens.index(FIM_PRE), prompt.tokens.index(FIM_SUF)
        assert m.vocab.render(prompt.tokens[i + 1 : j]).endswith(
            "line_799 = 799\n"
        )  # nearest the cursor kept
        assert m.vocab.render(prompt.tokens[j + 1 : -1]).startswith("after_0 = 0\n")
    finally:
        m.close()


def test_chat_that_cannot_fit_is_a_clear_error(codegemma_paths: dict[str, Path]) -> None:
    m = cgstudio.load(str(codegemma_paths["control"]), n_ctx=256)
    try:
        with pytest.raises(ContextOverflowError, match=r"prompt needs \d+ tokens, context is 256"):
            m.prompt(GenerationRequest("chat", messages=[ChatMessage("user", "word " * 2000)]))
        long_history = [ChatMessage("user", "first instruction")]
        for i in range(30):
            long_history += [ChatMessage("assistant", f"answer {i} " * 5), ChatMessage("user", f"q {i}")]
        prompt, _ = m.prompt(GenerationRequest("chat", messages=long_history))
        text = m.vocab.render(prompt.tokens)
        assert "first instruction" in text and "q 29" in text and "answer 0 " not in text
        assert prompt.warnings[0].code == "prompt_truncated"
    finally:
        m.close()


def test_no_fim_model(codegemma_paths: dict[str, Path]) -> None:
    m = cgstudio.load(str(codegemma_paths["nofim"]), n_ctx=512)
    try:
        assert m.family == "gemma" and not m.fim_capable
        with pytest.raises(UnsupportedModeError, match="no FIM tokens"):
            m.prompt(GenerationRequest("fim", "a", "b"))
        prompt, _ = m.prompt(GenerationRequest("fim", "def f():\n", ""))
        assert prompt.mode == "completion" and prompt.tokens == [BOS, *m.vocab.plain("def f():\n")]
    finally:
        m.close()


def test_variant_checks(codegemma_paths: dict[str, Path]) -> None:
    it = cgstudio.load(str(codegemma_paths["it"]), n_ctx=512)
    try:
        assert it.variant.variant == "instruction-tuned"
        r = it.complete("def f():\n", "\n", sampling={"max_tokens": 4})
        assert r.warnings[0].code == "variant_mismatch"
        with pytest.raises(VariantMismatchError):
            it.complete("def f():\n", "\n", sampling={"max_tokens": 4}, guards={"strict": True})
    finally:
        it.close()
    pt = cgstudio.load(str(codegemma_paths["control"]), n_ctx=512)
    try:
        r = pt.chat([{"role": "user", "content": "hello"}], sampling={"max_tokens": 4})
        assert r.warnings[0].code == "variant_mismatch"
        assert "for chat use codegemma-7b-it" in r.warnings[0].message
    finally:
        pt.close()


def _long_suffix(model: CodeModel, n_tokens: int) -> str:
    text, i = "", 0
    while len(model.vocab.plain(text)) < n_tokens:
        text += f"\n    value_{i} = compute({i})"
        i += 1
    return text + "\n"


def test_editor_paths_send_a_bounded_suffix_window(model: CodeModel) -> None:
    from cgstudio.evaluation.protocol import EVAL_GUARDS

    v, window = model.vocab, model.settings.guards.fim_suffix_tokens
    prefix, suffix = "def f(a):\n    ", _long_suffix(model, 600)
    assert window == 128 and len(v.plain(suffix)) > 600
    fim, _ = model.prompt(GenerationRequest("fim", prefix, suffix))
    # A cursor after indentation only: PSM, the indentation in the prefix.
    assert fim.tokens == [BOS, FIM_PRE, *v.plain(prefix), FIM_SUF, *v.plain(suffix)[:window], FIM_MID]
    assert fim.suffix == suffix  # the endings still see all the text after the cursor
    # Keystrokes on the line change what follows the middle token only (the line goes there once
    # it has text): the prefix, the suffix window and so their cache stay the same.
    typed, _ = model.prompt(GenerationRequest("fim", prefix + "re", suffix))
    more, _ = model.prompt(GenerationRequest("fim", prefix + "retu", suffix))
    upto_middle = lambda p: p.tokens[: p.tokens.index(FIM_MID) + 1]  # noqa: E731
    head = [BOS, FIM_PRE, *v.plain("def f(a):\n"), FIM_SUF, *v.plain(suffix)[:window], FIM_MID]
    assert upto_middle(typed) == upto_middle(more) == head
    suffix_of = lambda p: p.tokens[p.tokens.index(FIM_SUF) : p.tokens.index(FIM_MID) + 1]  # noqa: E731
    infill, _ = model.prompt(GenerationRequest("infill", prefix, suffix, middle="x = "))
    assert infill.tokens.count(FIM_SUF) == 1
    assert suffix_of(infill)[1 : window + 1] == v.plain(suffix)[:window]
    assert suffix_of(infill)[window + 1] == FIM_MID
    # Per request (0: all of it), and the eval's paper protocol, send the whole suffix.
    for guards in ({"fim_suffix_tokens": 0}, EVAL_GUARDS):
        whole, _ = model.prompt(GenerationRequest("fim", prefix, suffix, guards=dict(guards)))
        assert suffix_of(whole) == [FIM_SUF, *v.plain(suffix), FIM_MID]


def test_editor_paths_send_a_prefix_window_that_stays_put_while_typing(model: CodeModel) -> None:
    from cgstudio.evaluation.protocol import EVAL_GUARDS
    from cgstudio.session.anchors import Anchors
    from cgstudio.session.window import PrefixWindows

    model.anchors, model.windows = Anchors(), PrefixWindows()  # nothing from another test
    v, limit = model.vocab, model.settings.guards.fim_prefix_tokens
    body, i = "", 0
    while len(v.plain(body)) < limit + 150:  # longer than the window, within the 1,024-token context
        body += f"value_{i} = compute({i})\n"
        i += 1
    suffix = "\nprint(value_0)\n"
    first, _ = model.prompt(GenerationRequest("fim", body + "res", suffix))
    pre = first.tokens[first.tokens.index(FIM_PRE) + 1 : first.tokens.index(FIM_SUF)]
    sent = v.engine.detokenize(pre)
    assert (
        limit - 20 < len(pre) <= limit and body.endswith(sent) and sent.startswith("value_")
    )  # a line start
    # Typing lines keeps the window's start: the tokens before the middle token stay the same.
    typed = body + "result = 1\nother = 2\nmo"
    again, _ = model.prompt(GenerationRequest("fim", typed, suffix))
    upto_middle = lambda p: p.tokens[: p.tokens.index(FIM_MID) + 1]  # noqa: E731
    assert upto_middle(again) == upto_middle(first)
    # Per request (0: all of it), and the paper protocol, send the whole prefix.
    for guards in ({"fim_prefix_tokens": 0}, EVAL_GUARDS):
        whole, _ = model.prompt(GenerationRequest("fim", body + "res", suffix, guards=dict(guards)))
        want = [BOS, FIM_PRE, *v.plain(body)]  # then "res" here (PSM) or after the middle token
        assert whole.tokens[: len(want)] == want
    # A cursor at a line start takes the lines above it after the middle token: a new window
    # leaves room for them, so a first visit costs about the limit before the suffix, as with
    # llama-server's /infill, not the limit and the lines on top.
    # (Only a new start leaves that room: a head within the limit stays whole, as above.)
    while len(v.plain(body)) < limit + 300:
        body += f"value_{i} = compute({i})\n"
        i += 1
    model.anchors, model.windows = Anchors(), PrefixWindows()
    at_start, _ = model.prompt(GenerationRequest("fim", body, suffix))
    head = at_start.tokens[at_start.tokens.index(FIM_PRE) + 1 : at_start.tokens.index(FIM_SUF)]
    lines = at_start.tokens[at_start.tokens.index(FIM_MID) + 1 :]
    assert len(lines) > 30  # several lines above the cursor went after the middle token
    assert limit - 20 < len(head) + len(lines) <= limit


def test_typing_a_line_only_changes_what_follows_the_middle_token(model: CodeModel) -> None:
    """fim_cursor_line_in_middle: the cursor line's start goes after the middle token (llama.vim's
    /infill layout), so each keystroke keeps the prefix, the suffix and their cache; in the PSM
    layout every keystroke changes the tokens before the suffix."""
    from cgstudio.session.anchors import Anchors

    model.anchors = Anchors()  # no anchor from another test
    head, line, suffix = "def f(a):\n", "    return a + 1", "\n\nprint(f(1))\n"
    kept, psm_kept = [], []
    psm = {"fim_cursor_line_in_middle": False}
    before = after = None
    model.prompt(GenerationRequest("fim", head + line[:4], suffix))  # the indentation: PSM, anchored
    for n in range(5, len(line) + 1):  # from the first character after the indentation
        p, _ = model.prompt(GenerationRequest("fim", head + line[:n], suffix))
        q, _ = model.prompt(GenerationRequest("fim", head + line[:n], suffix, guards=psm))
        cut, psm_cut = p.tokens.index(FIM_MID) + 1, q.tokens.index(FIM_SUF)
        kept.append(before is None or p.tokens[:cut] == before)
        psm_kept.append(after is None or q.tokens[: psm_cut + 1] == after)
        before, after = p.tokens[:cut], q.tokens[: psm_cut + 1]
        # The line after the marker, whole but for the token healing takes off (the reply's start).
        assert model.vocab.render(p.tokens[cut:]) + p.heal == line[:n]
    assert all(kept)
    # The PSM layout: a keystroke that crosses a token boundary moves the suffix (healing keeps the
    # prompt the same only while the typed text stays inside the token it took off).
    assert psm_kept.count(False) >= 3
    # Enter and the next line keep the head too: the anchor stays while the user types forward.
    for more in ("\n", "\n    ", "\n    print(a)"):
        p, _ = model.prompt(GenerationRequest("fim", head + line + more, suffix))
        assert p.tokens[: p.tokens.index(FIM_MID) + 1] == before, repr(more)
    # /infill without a cursor line of its own (llama.vim sends one in `prompt`) gets the layout too.
    infill, _ = model.prompt(GenerationRequest("infill", head + line, suffix))
    fim, _ = model.prompt(GenerationRequest("fim", head + line, suffix))
    assert infill.tokens == fim.tokens and infill.tokens[-1] != FIM_MID


def test_the_cursor_line_stays_in_the_prefix_where_the_layout_does_not_apply(model: CodeModel) -> None:
    from cgstudio.evaluation.protocol import EVAL_GUARDS
    from cgstudio.session.anchors import MAX_CURSOR_LINE, cursor_line

    assert cursor_line("a = 1\n    b") == ("a = 1\n", "    b")
    assert cursor_line("first line") is None and cursor_line("a = 1\n") is None
    assert cursor_line("a\n" + "x" * (MAX_CURSOR_LINE + 1)) is None
    suffix = "\nprint(1)\n"
    for prefix, guards in (
        ("def f():\n    ret", dict(EVAL_GUARDS)),  # the paper protocol: PSM as trained
        ("def f():\n    ret", {"fim_cursor_line_in_middle": False}),
        ("x = 1\n" * 400 + "    ret", {"fim_prefix_tokens": 0}),  # over the context: trimmed, PSM
        ("    ret", {}),  # the first line
    ):
        p, _ = model.prompt(GenerationRequest("fim", prefix, suffix, guards=guards))
        assert p.tokens[-1] == FIM_MID, prefix[-20:]


def test_plain_remembers_long_texts_and_hands_out_copies(model: CodeModel) -> None:
    from cgstudio.prompts.vocab import MEMO_MIN_CHARS, TokenMemo

    v = model.vocab
    text = "def helper(x):\n    return x * 2\n" * 4
    assert len(text) >= MEMO_MIN_CHARS
    calls = [0]
    tokenize = v.engine.tokenize

    def counted(t: str, *, parse_special: bool = False) -> list[int]:
        calls[0] += 1
        return tokenize(t, parse_special=parse_special)

    v._token_memo = TokenMemo()
    v.engine.tokenize = counted  # type: ignore[method-assign]
    try:
        first = v.plain(text)
        first.append(-1)  # a caller's list: the memo keeps its own copy
        assert v.plain(text) == first[:-1] and calls[0] == 1
        assert v.plain("x = 1") == tokenize("x = 1") and calls[0] == 2  # short: not remembered
    finally:
        v.engine.tokenize = tokenize  # type: ignore[method-assign]
    memo = TokenMemo(max_chars=10)
    memo.put("abcdef", [1]), memo.put("ghijkl", [2])  # 12 characters: the oldest goes
    assert memo.get("abcdef") is None and memo.get("ghijkl") == (2,)


def test_the_moved_text_never_takes_the_replys_room(codegemma_paths: dict[str, Path]) -> None:
    """The head fits the budget but the text moved after the middle token would leave the reply
    fewer tokens than it asked for: the prompt stays PSM, whose prefix trimming keeps that room."""
    m = cgstudio.load(str(codegemma_paths["control"]), n_ctx=256)
    try:
        v = m.vocab
        head = "".join(f"x{i} = {i}\n" for i in range(40))
        while len(v.plain(head)) > 120:
            head = head.split("\n", 1)[1]
        line = "    y = " + " + ".join("a" for _ in range(60))
        while len(v.plain(line)) > 100:
            line = line[:-4]
        assert len(v.plain(head)) + len(v.plain(line)) > 256 - 64  # together over the budget
        prompt, _ = m.prompt(GenerationRequest("fim", head + line, "\n", sampling={"max_tokens": 64}))
        assert prompt.max_tokens == 64 and prompt.tokens[-1] == FIM_MID  # PSM, prefix trimmed
        assert "prompt_truncated" in {w.code for w in prompt.warnings}
    finally:
        m.close()


def test_the_same_request_twice_gets_the_same_prompt(model: CodeModel) -> None:
    """Anchors are remembered between requests; a repeated request must not change its prompt
    (an editor's retry, typed-ahead's probe, the bench's cold run)."""
    from cgstudio.session.anchors import Anchors

    model.anchors = Anchors()
    suffix = "\n\nprint(g())\n"
    for prefix in (
        "def g():\n    ",
        "def g():\n    x = 1",
        "def g():\n    x = 1\n    ",
        "def g():\n    x = 1\n    y",
    ):
        first, _ = model.prompt(GenerationRequest("fim", prefix, suffix))
        again, _ = model.prompt(GenerationRequest("fim", prefix, suffix))
        assert (again.tokens, again.heal) == (first.tokens, first.heal), prefix
