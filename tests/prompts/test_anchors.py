"""Where editor prompts split the text before the cursor (session/anchors.py). Pure: no model."""

from __future__ import annotations

from cgstudio.session.anchors import MAX_MIDDLE_CHARS, MAX_MIDDLE_LINES, Anchors

HEAD = "def mean(values):\n"
SUFFIX = "\n\nprint(mean([1, 2]))\n"


def test_typing_forward_keeps_the_head_across_enter_and_accepted_lines() -> None:
    a = Anchors()
    assert a.split(HEAD + "    to", SUFFIX) == (HEAD, "    to")  # the cursor line's start
    typed = "    total = sum(values)\n    n = len(values)\n    return"
    for end in range(7, len(typed) + 1):
        assert a.split(HEAD + typed[:end], SUFFIX) == (HEAD, typed[:end]), typed[:end]


def test_an_anchor_stops_fitting_when_the_text_before_or_after_it_changes() -> None:
    a = Anchors()
    a.split(HEAD + "    total = 1", SUFFIX)
    edited = "def mean(vals):\n    total = 1"  # an edit above the anchor
    assert a.split(edited, SUFFIX) == ("def mean(vals):\n", "    total = 1")
    assert a.split(HEAD + "    total = 12", "\nother suffix\n") == (HEAD, "    total = 12")  # cursor line
    back = a.split("def mean(v", SUFFIX)  # a backspace past the anchor, onto the first line: PSM
    assert back is None


def test_a_long_middle_moves_the_anchor_to_the_cursor_line() -> None:
    a = Anchors()
    a.split(HEAD + "    x", SUFFIX)
    many = "".join(f"    x{i} = {i}\n" for i in range(MAX_MIDDLE_LINES + 1)) + "    y"
    assert a.split(HEAD + many, SUFFIX) == (HEAD + many[: -len("    y")], "    y")
    wide = "    s = '" + "a" * MAX_MIDDLE_CHARS + "'\n    z"
    head, middle = a.split(HEAD + wide, SUFFIX) or ("", "")
    assert middle == "    z" and len(head) > len(HEAD)


def test_a_cursor_at_a_line_start_sets_an_anchor_for_the_next_keystroke() -> None:
    a = Anchors()
    assert a.split(HEAD, SUFFIX) is None  # nothing to move: the PSM prompt, same tokens
    assert a.split(HEAD + "    r", SUFFIX) == (HEAD, "    r")
    assert a.split("first line", SUFFIX) is None  # no line start at all


def test_the_longest_fitting_anchor_wins_and_files_do_not_mix() -> None:
    a = Anchors()
    a.split(HEAD + "    a = 1", SUFFIX)
    a.split(HEAD + "    a = 1\n    b", "\nelsewhere\n")  # another cursor position: its own anchor
    assert a.split(HEAD + "    a = 1\n    b = 2", SUFFIX) == (HEAD, "    a = 1\n    b = 2")
    other = "class Other:\n"
    assert a.split(other + "    c", SUFFIX) == (other, "    c")


def test_an_indented_empty_line_under_code_starts_at_the_line_above() -> None:
    a = Anchors()
    body = HEAD + "    total = sum(values)\n"
    assert a.spans_lines(body + "    ", SUFFIX)  # predicted before anything is remembered
    assert a.split(body + "    ", SUFFIX) == (HEAD, "    total = sum(values)\n    ")
    # the same request again gets the same split; the first character typed only appends
    assert a.split(body + "    ", SUFFIX) == (HEAD, "    total = sum(values)\n    ")
    assert a.split(body + "    r", SUFFIX) == (HEAD, "    total = sum(values)\n    r")
    # healing took the indentation off: it still counts as the cursor line's text
    b = Anchors()
    assert b.split(body, SUFFIX, "    ") == (HEAD, "    total = sum(values)\n")


def test_blank_lines_between_go_after_the_middle_token_too() -> None:
    a = Anchors()
    body = HEAD + "    x = 1\n"
    assert a.spans_lines(body + "\n  \n    ", SUFFIX)
    assert a.split(body + "\n  \n    ", SUFFIX) == (HEAD, "    x = 1\n\n  \n    ")
    assert a.split(body + "\n  \n    y", SUFFIX) == (HEAD, "    x = 1\n\n  \n    y")


def test_a_cursor_at_column_zero_takes_the_lines_above_up_to_a_limit() -> None:
    from cgstudio.session.anchors import LINES_ABOVE

    assert Anchors().split(HEAD + "    x = 1\n", SUFFIX) == (HEAD, "    x = 1\n")
    body = "".join(f"    x{i} = {i}\n" for i in range(LINES_ABOVE + 5))
    head, middle = Anchors().split(HEAD + body, SUFFIX) or ("", "")
    assert middle.count("\n") == LINES_ABOVE and (head + middle) == HEAD + body
    wide = "".join(f"    s{i} = '{'a' * 300}'\n" for i in range(6))  # the middle's first size cap
    head, middle = Anchors().split(HEAD + wide, SUFFIX) or ("", "")
    assert 0 < middle.count("\n") < 6 and len(middle) <= 1024


def test_the_first_line_or_blank_lines_alone_above_stay_psm() -> None:
    assert Anchors().split("def f():\n    ", SUFFIX) is None  # the line above is the first line
    assert Anchors().split("def f():\n\n\n    ", SUFFIX) is None  # blank lines up to the first line
    assert Anchors().split("first", SUFFIX) is None
