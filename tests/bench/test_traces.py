"""The typing traces: deterministic, every editor event present, each step the event it names."""

from __future__ import annotations

import pytest

from cgstudio.bench import traces as tr


@pytest.mark.parametrize("quick", [True, False])
def test_traces_are_deterministic_and_every_kind_appears(quick: bool) -> None:
    traces = tr.typing_traces(0, quick=quick)
    assert traces == tr.typing_traces(0, quick=quick)
    assert [t.name for t in traces] == list(tr.TRACE_NAMES)
    kinds = {s.kind for t in traces for s in t.steps}
    assert kinds == set(tr.KINDS)
    assert tr.typing_traces(1, quick=quick) != traces  # the seed picks other cursor lines
    for t in traces:
        assert t.steps[0].kind == "open" and all(s.kind != "open" for s in t.steps[1:]), t.name
        assert len(t.steps) >= 4, t.name
    for t in traces:
        if t.name in tr.EXACT_REUSE:  # edits at the cursor only, in the trace's own file
            assert {s.kind for s in t.steps} <= {"open", "type", "backspace", "enter", "accept", "ghost"}
            assert {s.file for s in t.steps} == {t.file}
        if t.name in tr.NO_SUFFIX:  # typing at the end of the file
            assert {s.kind for s in t.steps} == {"open", "type"} and {s.suffix for s in t.steps} == {""}


def test_the_documents_are_about_the_size_asked() -> None:
    for quick, lo, hi in ((True, 2500, 3100), (False, 9000, 10_400)):
        for t in tr.typing_traces(0, quick=quick):
            first = t.steps[0]
            assert lo <= len(first.prefix + first.suffix) <= hi, (quick, t.name)


def _check(prev: tr.Step, step: tr.Step) -> None:
    """``step`` is what its kind says it did to ``prev``'s document."""
    if step.kind == "switch":
        assert step.file != prev.file
        return
    assert step.file == prev.file
    if step.kind == "jump":
        assert step.prefix + step.suffix == prev.prefix + prev.suffix  # only the cursor moved
        lines = abs(step.prefix.count("\n") - prev.prefix.count("\n"))
        assert 20 <= lines <= 2 * tr.JUMP_LINES + 2
        return
    if step.kind == "ghost":  # the runner inserts its own answer: nothing scripted
        assert (step.prefix, step.suffix) == (prev.prefix, prev.suffix)
        return
    if step.kind == "backspace":
        assert prev.prefix[:-1] == step.prefix and prev.suffix == step.suffix
        return
    added = step.prefix[len(prev.prefix) :]
    assert step.prefix.startswith(prev.prefix) and step.suffix == prev.suffix, step.kind
    if step.kind == "type":
        assert len(added) == 1
    elif step.kind == "enter":
        assert added.startswith("\n") and not added.strip(" \n")
    elif step.kind == "accept":
        assert len(added) > 1 and "\n" not in added[:1]
    elif step.kind == "paste":
        assert added.count("\n") >= 3 and added.endswith("\n")


@pytest.mark.parametrize("quick", [True, False])
def test_each_step_is_the_event_its_kind_names(quick: bool) -> None:
    for t in tr.typing_traces(3, quick=quick):
        last = {t.file: t.steps[0]}
        prev = t.steps[0]
        for step in t.steps[1:]:
            if step.kind == "switch":
                _check(prev, step)
                if step.file in last:  # back where the user left that file
                    left = last[step.file]
                    assert (step.prefix, step.suffix) == (left.prefix, left.suffix)
            else:
                _check(prev, step)
            last[step.file] = step
            prev = step


def test_typing_a_line_ends_with_the_file_as_it_was() -> None:
    """The traces that take a line's code out and type it back end with the real file."""
    main = tr._window(tr.FILES[0], tr.QUICK.chars)
    text = "".join(main.lines)
    for t in tr.typing_traces(0, quick=True):
        if t.name in ("enter", "accept"):
            last = t.steps[-1]
            assert last.prefix + last.suffix == text, t.name


def test_a_runner_s_accepted_suggestions_go_where_it_accepted_them() -> None:
    ghost = next(t for t in tr.typing_traces(0, quick=True) if t.name == "ghost")
    kinds = [s.kind for s in ghost.steps]
    assert kinds == ["open", "type", "ghost", "enter", "type", "ghost"]
    assert tr.accepted_text("eturn x\n    y = 2") == "eturn x"
    accepted: list[tuple[int, str]] = []
    sent = []
    answers = [""]
    for step, answer in zip(ghost.steps[1:], ["elf.a = 1", "", "", "ff", ""], strict=True):
        if step.kind == "ghost":
            accepted.append((len(step.prefix), tr.accepted_text(answers[-1])))
        sent.append(tr.with_accepted(step, accepted))
        answers.append(answer)
    # Each step's document is the scripted one with the accepted texts where they were accepted.
    assert sent[1].prefix == ghost.steps[2].prefix + "elf.a = 1"
    assert (
        sent[2].prefix
        == ghost.steps[3].prefix[: len(ghost.steps[2].prefix)]
        + "elf.a = 1"
        + (ghost.steps[3].prefix[len(ghost.steps[2].prefix) :])
    )
    assert sent[4].prefix.endswith("ff") and sent[4].prefix.count("elf.a = 1") == 1
    assert all(s.suffix == ghost.steps[1].suffix for s in sent)
