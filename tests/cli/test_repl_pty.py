"""The chat REPL through a pseudo-terminal, as a person uses it (pexpect).

The scripted engine (repl_harness.py) answers "reply to message N", N being the user messages
the model saw, so each test also proves what reached the model. The conversation itself is
read back from /save. The last test runs `cgstudio chat` itself on a synthetic GGUF.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pexpect

HARNESS = Path(__file__).with_name("repl_harness.py")
UP = "\x1b[A"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"

# A real function: 24 lines, blank lines inside and a docstring; a terminal pastes it with \r.
FUNCTION = '''def merge_intervals(intervals):
    """Merge overlapping [start, end] intervals.

    Returns a new list sorted by start; the input is not changed.
    Touching intervals ([1, 2] and [2, 3]) are merged too.
    """
    if not intervals:
        return []

    ordered = sorted(intervals, key=lambda iv: iv[0])
    merged = [list(ordered[0])]

    for start, end in ordered[1:]:
        last = merged[-1]
        if start <= last[1]:
            # Overlap: extend the last interval.
            last[1] = max(last[1], end)
        else:
            merged.append([start, end])

    return merged


print(merge_intervals([[1, 3], [2, 6], [8, 10]]))
'''


def spawn(home: Path, *argv: str) -> pexpect.spawn:
    env = {
        **os.environ,
        "CGSTUDIO_HOME": str(home),
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # nobody answers cursor-position requests here
        "PYTHONUNBUFFERED": "1",
    }
    args = list(argv) or [str(HARNESS)]
    child = pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=60, dimensions=(40, 120))
    child.expect("chatting with")
    child.expect(">>> ")
    return child


def say(child: pexpect.spawn, text: str) -> None:
    child.send(text + "\r")


def saved(child: pexpect.spawn, path: Path) -> list[dict[str, str]]:
    say(child, f"/save {path}")
    child.expect("saved")
    child.expect(">>> ")
    messages: list[dict[str, str]] = json.loads(path.read_text())["messages"]
    return messages


def quit_(child: pexpect.spawn) -> None:
    child.sendeof()  # Ctrl-D on an empty line
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_pasted_function_with_blank_lines_is_one_message(tmp_path: Path) -> None:
    assert FUNCTION.count("\n") >= 20 and "\n\n" in FUNCTION
    child = spawn(tmp_path)
    child.send(PASTE_START + FUNCTION.replace("\n", "\r") + PASTE_END)
    child.send("\r")  # Enter sends the paste
    child.expect("reply to message 1\r\n")  # the model saw one user message
    child.expect(">>> ")
    messages = saved(child, tmp_path / "chat.json")
    assert messages == [
        {"role": "user", "content": FUNCTION},
        {"role": "assistant", "content": "reply to message 1\n"},
    ]
    quit_(child)


def test_alt_enter_starts_a_new_line_and_enter_sends(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    child.send("first line\x1b\rsecond line")  # Alt-Enter arrives as Esc, Enter
    child.send("\r")
    child.expect("reply to message 1")
    child.expect(">>> ")
    assert saved(child, tmp_path / "c.json")[0]["content"] == "first line\nsecond line"
    quit_(child)


def test_ctrl_c_stops_the_reply_and_keeps_the_session(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    say(child, "forever, please")
    child.expect("w3 ")
    child.sendintr()
    child.expect(r"\[stopped")
    child.expect(">>> ")
    say(child, "and now?")
    child.expect("reply to message 2")  # the first message is still in the conversation
    child.expect(">>> ")
    messages = saved(child, tmp_path / "chat.json")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"].startswith("w0 w1 w2 w3 ")  # what was shown of the stopped reply
    assert child.isalive()
    quit_(child)


def test_up_arrow_recalls_messages_across_sessions(tmp_path: Path) -> None:
    first = spawn(tmp_path)
    say(first, "what is a monad?")
    first.expect("reply to message 1")
    first.expect(">>> ")
    quit_(first)
    second = spawn(tmp_path)  # same data dir: same history file
    second.send(UP)
    second.send("\r")
    second.expect("reply to message 1")
    second.expect(">>> ")
    say(second, "thanks")
    second.expect("reply to message 2")
    second.expect(">>> ")
    second.send(UP + UP)  # back past "thanks" to the first session's message
    second.send("\r")
    second.expect("reply to message 3")
    second.expect(">>> ")
    users = [m["content"] for m in saved(second, tmp_path / "c.json") if m["role"] == "user"]
    assert users == ["what is a monad?", "thanks", "what is a monad?"]
    quit_(second)


def test_slash_commands(tmp_path: Path) -> None:
    child = spawn(tmp_path)
    say(child, "/help")
    for name in ("/clear", "/model", "/system", "/save", "/load", "/help"):
        child.expect_exact(name)
    child.expect(">>> ")
    say(child, "/system Answer in French.")
    child.expect("system message set")
    say(child, "hello")
    child.expect("reply to message 1")
    child.expect(">>> ")
    path = tmp_path / "chat.json"
    assert saved(child, path)[0] == {"role": "system", "content": "Answer in French."}
    say(child, "/clear")
    child.expect("conversation cleared")
    say(child, "again")
    child.expect("reply to message 1")  # the cleared turn is gone
    child.expect(">>> ")
    say(child, f"/load {path}")
    child.expect("loaded 3 messages")
    say(child, "more")
    child.expect("reply to message 2")
    child.expect(">>> ")
    say(child, "/model other")
    child.expect("now chatting with other")
    say(child, "/model")
    child.expect(r"model: other")
    say(child, "/nonsense")
    child.expect("unknown command /nonsense")
    say(child, f"/load {tmp_path / 'missing.json'}")
    child.expect("cannot read chat file")
    child.expect(">>> ")
    quit_(child)


def test_cgstudio_chat_repl_on_a_gguf(codegemma_paths: dict[str, Path], tmp_path: Path) -> None:
    model = str(codegemma_paths["it"])
    child = spawn(tmp_path, "-m", "cgstudio.cli.main", "chat", "-m", model, "-n", "3", "--temp", "0")
    child.send(PASTE_START + FUNCTION.replace("\n", "\r") + PASTE_END + "\r")
    child.expect("tok/s")  # the stats line after the reply
    child.expect(">>> ")
    messages = saved(child, tmp_path / "chat.json")
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == FUNCTION
    quit_(child)


def test_piped_stdin_is_one_message(codegemma_paths: dict[str, Path]) -> None:
    model = str(codegemma_paths["it"])
    r = subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", "chat", "-m", model, "--dry-run"],
        input="one question\n\nwith a blank line\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "one question\n\nwith a blank line" in r.stdout  # one user turn holds all of stdin
    assert r.stdout.count("<start_of_turn>user") == 1
    empty = subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", "chat", "-m", model],
        input="\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert empty.returncode == 2 and "no message on stdin" in empty.stderr
