"""The chat REPL: ``cgstudio chat`` without MESSAGE, on a terminal. Built on prompt_toolkit.

Keys (also shown in the empty prompt and by ``/help``):

* Enter sends the message; Alt-Enter (or Esc, then Enter) starts a new line.
* A paste is inserted whole, blank lines included, and sent by the next Enter: terminals wrap
  every paste in bracketed-paste markers, so its newlines are never taken for Enter.
* Up and Down walk the history, kept across sessions in ``<data dir>/chat-history``.
* Ctrl-C stops a reply (the conversation stays, with the part that was shown) or clears the
  line being typed; Ctrl-D on an empty line quits.

Commands: see ``COMMANDS``. A line starting with "/" is a command; to send text that starts
with "/", begin it with a space or paste it over several lines.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from pydantic import BaseModel, ConfigDict, ValidationError

from cgstudio.cli.options import read_text_file, require_utf8
from cgstudio.cli.reply import stream_reply
from cgstudio.core.errors import CGStudioError, UsageError
from cgstudio.core.settings import format_validation_error
from cgstudio.generation.request import GenerationRequest

KEYS_HINT = "Enter sends · Alt-Enter new line · /help · Ctrl-D quits"
COMMANDS = {
    "/clear": "forget the conversation (the system message stays)",
    "/model [NAME]": "show the model, or switch to NAME (a path or alias); the conversation stays",
    "/system [TEXT|-]": "show the system message, set it to TEXT, or remove it with -",
    "/save FILE": "write the conversation to FILE (JSON)",
    "/load FILE": "replace the conversation with FILE's (saved by /save)",
    "/help": "this help",
    "/quit": "quit (or Ctrl-D)",
}
_COMMAND = re.compile(r"/([a-z]+)(?:\s+(.*))?")


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class SavedChat(BaseModel):
    """What ``/save`` writes and ``/load`` reads."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[Message]


def history_path() -> Path:
    """The input history file, shared by every chat session of this user."""
    # Imported here: the store's module loads llama_cpp, which `cgstudio --help` must not pay for.
    from cgstudio.store.store import data_dir

    return data_dir() / "chat-history"


class ChatRepl:
    """One conversation with a model. ``open_model(name)`` loads another for ``/model``."""

    def __init__(
        self,
        model: Any,
        open_model: Callable[[str], Any],
        system: str | None = None,
        *,
        history: History | None = None,
    ) -> None:
        self.model = model
        self.open_model = open_model
        self.system = system
        self.messages: list[dict[str, str]] = []
        self.session: PromptSession[str] = PromptSession(
            history=history if history is not None else _file_history(),
            multiline=True,
            key_bindings=_key_bindings(),
            prompt_continuation=lambda width, line, soft: "." * (width - 1) + " ",
            placeholder=FormattedText([("fg:ansibrightblack", KEYS_HINT)]),
        )

    def run(self) -> None:
        m = self.model
        click.echo(f"chatting with {m.alias} ({m.family}, {m.variant.variant}); {KEYS_HINT}", err=True)
        while True:
            try:
                text = self.session.prompt(">>> ")
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                return
            try:
                text = require_utf8("that message", text)
                if not text.strip():
                    continue
                line = text.rstrip()
                command = _COMMAND.fullmatch(line) if "\n" not in line else None
                if command is None:
                    self.send(text)
                elif not self.command(command.group(1), (command.group(2) or "").strip()):
                    return
            except CGStudioError as exc:
                click.echo(f"error: {exc.message}", err=True)

    def conversation(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self.messages]

    def send(self, text: str) -> None:
        """Send one user message; Ctrl-C stops the reply and keeps what was shown of it."""
        self.messages.append({"role": "user", "content": text})
        printed: list[str] = []
        cancel = threading.Event()
        req = GenerationRequest("chat", messages=self.conversation())
        try:
            result = stream_reply(self.model, req, False, cancel=cancel, printed=printed)
        except KeyboardInterrupt:
            cancel.set()
            shown = "".join(printed)
            click.echo("" if not shown or shown.endswith("\n") else "\n", nl=False)
            if shown.strip():
                self.messages.append({"role": "assistant", "content": shown})
                click.echo("[stopped: the reply so far stays in the conversation]", err=True)
            else:
                self.messages.pop()
                click.echo("[stopped before the reply began: Up brings the message back]", err=True)
            return
        except BaseException:
            self.messages.pop()  # the turn did not happen
            raise
        self.messages.append({"role": "assistant", "content": result.text})

    def command(self, name: str, arg: str) -> bool:
        """Run a slash command; False means quit."""
        if name in ("quit", "exit"):
            return False
        if name == "help":
            click.echo(f"keys: {KEYS_HINT}; Ctrl-C stops a reply", err=True)
            for usage, what in COMMANDS.items():
                click.echo(f"  {usage:<18} {what}", err=True)
        elif name == "clear":
            self.messages.clear()
            click.echo("conversation cleared", err=True)
        elif name == "model":
            self._model(arg)
        elif name == "system":
            self._system(arg)
        elif name == "save":
            self._save(arg)
        elif name == "load":
            self._load(arg)
        else:
            raise UsageError(
                f"unknown command /{name}; /help lists them "
                "(to send text starting with '/', begin it with a space)"
            )
        return True

    def _model(self, name: str) -> None:
        if not name:
            m = self.model
            click.echo(f"model: {m.alias} ({m.family}, {m.variant.variant})", err=True)
            return
        try:
            new = self.open_model(name)
        except KeyboardInterrupt:
            click.echo("loading stopped; the model stays", err=True)
            return
        old, self.model = self.model, new
        old.close()
        click.echo(f"now chatting with {new.alias} ({new.family}, {new.variant.variant})", err=True)

    def _system(self, arg: str) -> None:
        if not arg:
            click.echo(f"system: {self.system!r}" if self.system else "no system message", err=True)
        elif arg == "-":
            self.system = None
            click.echo("system message removed", err=True)
        else:
            self.system = arg
            click.echo("system message set", err=True)

    def _save(self, arg: str) -> None:
        if not arg:
            raise UsageError("/save needs a file name: /save chat.json")
        doc = SavedChat(model=self.model.alias, messages=[Message(**m) for m in self.conversation()])
        path = Path(arg).expanduser()
        try:
            path.write_text(json.dumps(doc.model_dump(), indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}; pick another file") from exc
        click.echo(f"saved {len(doc.messages)} messages to {path}", err=True)

    def _load(self, arg: str) -> None:
        if not arg:
            raise UsageError("/load needs a file name: /load chat.json")
        text = read_text_file(str(Path(arg).expanduser()), "chat file")
        try:
            doc = SavedChat.model_validate_json(text)
        except ValidationError as exc:
            raise UsageError(
                f"{arg} is not a saved chat ({format_validation_error(exc)}); use a file written by /save"
            ) from None
        messages = [m.model_dump() for m in doc.messages]
        systems = [m["content"] for m in messages if m["role"] == "system"]
        self.system = systems[0] if systems else None
        self.messages = [m for m in messages if m["role"] != "system"]
        click.echo(f"loaded {len(doc.messages)} messages from {arg}", err=True)


def _file_history() -> History:
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileHistory(str(path))


def _key_bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("enter")
    def _send(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @kb.add("escape", "enter")  # Alt-Enter sends Esc Enter
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return kb
