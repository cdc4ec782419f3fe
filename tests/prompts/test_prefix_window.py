"""Where editor prompts' prefix starts (session/window.py). Pure: a character counts as a token."""

from __future__ import annotations

from cgstudio.session.window import GROWTH, PrefixWindows


def count(text: str) -> int:
    return len(text)


LINES = "".join(f"line {i:03d} = value\n" for i in range(100))  # 19 characters a line


def test_a_text_within_the_limit_is_sent_whole_and_remembers_nothing() -> None:
    w = PrefixWindows()
    assert w.cut(LINES[:190], 200, count) == LINES[:190]
    assert w.cut(LINES, 0, count) == LINES  # 0: no window
    assert w.cut(LINES, 10_000, count) == LINES


def test_a_long_text_starts_at_a_line_start_within_the_limit() -> None:
    w = PrefixWindows()
    window = w.cut(LINES + "    ret", 200, count)
    assert len(window) <= 200 and LINES.endswith(window[: -len("    ret")])
    assert window.startswith("line ") and len(window) + 19 > 200  # the earliest line start that fits


def test_typing_keeps_the_start_until_the_window_doubles_then_it_moves_once() -> None:
    w = PrefixWindows()
    first = w.cut(LINES, 200, count)
    before = LINES[: len(LINES) - len(first)]
    assert w.cut(LINES, 200, count) == first  # the same request: the same window
    typed = ""
    moved = 0
    for i in range(40):
        typed += f"new {i:02d}\n"
        window = w.cut(LINES + typed, 200, count)
        if window == (LINES + typed)[len(before) :]:
            continue  # only appended to the last window: the cached prompt stays valid
        moved += 1
        assert len(window) <= 200
        before = (LINES + typed)[: len(LINES + typed) - len(window)]
    assert moved == 1  # 40 lines of 7 characters: one move, past GROWTH * 200
    assert len(first) + 40 * 7 > GROWTH * 200 > len(first) + 20 * 7


def test_starts_are_matched_by_content_so_files_do_not_mix() -> None:
    w = PrefixWindows()
    a = w.cut(LINES, 200, count)
    other = LINES.replace("line", "item")
    b = w.cut(other, 200, count)
    assert b.startswith("item") and w.cut(LINES, 200, count) == a
    edited = "changed\n" + LINES[8:]  # an edit above the start: a new start
    assert w.cut(edited, 200, count) == a  # the text after the start is the same, so is the window


def test_a_line_longer_than_the_limit_is_kept_whole() -> None:
    w = PrefixWindows()
    long_line = "x = '" + "a" * 500 + "'"
    assert w.cut(LINES + long_line, 200, count) == long_line


def test_each_client_keeps_its_own_starts() -> None:
    w = PrefixWindows()
    longer = LINES + "".join(f"more {i:03d} = value\n" for i in range(12))
    a = w.cut(LINES, 200, count, "editor-a")
    assert w.cut(longer, 200, count, "editor-a") == longer[len(LINES) - len(a) :]  # a's start, kept
    b = w.cut(longer, 200, count, "editor-b")  # b has no start yet: its own, about the limit back
    assert len(b) <= 200 < len(longer[len(LINES) - len(a) :])


def test_a_new_window_leaves_room_for_the_text_after_the_middle_token_and_keeps_its_start() -> None:
    w = PrefixWindows()
    window = w.cut(LINES, 200, count, beside="m" * 80)  # 80 of the 200 go to the lines after the middle
    assert len(window) <= 120 < len(window) + 19
    # The text after the middle token grows while the user types: the remembered start stays, so
    # the cached prompt stays valid, until the window passes GROWTH * limit.
    for n in (100, 140, 199, 1000):
        assert w.cut(LINES + "x = 1\n", 200, count, beside="m" * n) == window + "x = 1\n"
    # A text within the limit stays whole however long that text is: the lines after the middle
    # token grow as the user types, and a window that started to move then would cost the cache.
    assert w.cut(LINES[:190], 200, count, beside="m" * 80) == LINES[:190]
    assert w.cut(LINES[:190], 200, count, beside="m" * 190) == LINES[:190]
    # A new start keeps at least a quarter of the limit, however long the text beside it.
    quarter = PrefixWindows().cut(LINES, 200, count, beside="m" * 1000)
    assert len(quarter) <= 50 < len(quarter) + 19
