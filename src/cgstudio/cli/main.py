"""Entry point. Subcommands are imported only when run, so ``cgstudio --help`` is instant.

Exit codes: 0 success (an empty generation too, with a warning), 2 usage errors, 1 other failures.
Domain errors become one line on stderr here, and nowhere else.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

from cgstudio.core.errors import CGStudioError

COMMANDS: dict[str, tuple[str, str]] = {
    "complete": ("cgstudio.cli.generation", "complete"),
    "generate": ("cgstudio.cli.generation", "generate"),
    "chat": ("cgstudio.cli.generation", "chat"),
    "inspect": ("cgstudio.cli.inspect", "inspect"),
    "serve": ("cgstudio.cli.serve", "serve"),
    "eval": ("cgstudio.cli.evaluate", "eval_group"),
    "bench": ("cgstudio.cli.bench", "bench"),
    "models": ("cgstudio.cli.models", "models_group"),
    "pull": ("cgstudio.cli.pull", "pull"),
    "doctor": ("cgstudio.cli.doctor", "doctor"),
    "recommend": ("cgstudio.cli.recommend", "recommend"),
}
HELP = {
    "complete": "Complete code at a cursor (fill-in-the-middle) or continue it.",
    "generate": "Generate code from a natural-language request.",
    "chat": "Chat about code (one-shot with a message, a REPL without).",
    "inspect": "Show a GGUF's family, variant, FIM tokens, context and KV size.",
    "serve": "Serve OpenAI, Ollama and llama.cpp-server APIs on one local port.",
    "eval": "Reproduce the CodeGemma paper's HumanEval and infilling numbers.",
    "bench": "Measure what users feel: TTFT, keystroke FIM, concurrency, speculation.",
    "models": "List, add and remove models in the local store.",
    "pull": "Download a CodeGemma GGUF from the Hugging Face Hub.",
    "doctor": "Check this machine, the llama.cpp build and a GGUF for known problems.",
    "recommend": "Propose a load profile that fits this machine.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (mod, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError:
            return None
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cgstudio")
def cli() -> None:
    """CodeGemma Studio: local CodeGemma with exact prompts, guards and honest metrics.

    Models: --model takes a .gguf path, a store alias (cgstudio models add / pull) or a demo
    alias (qwen2.5-coder-0.5b, gemma3-270m); the default comes from CGSTUDIO_MODEL or the
    profile file (~/.config/cgstudio/profile.toml).
    """


def main(argv: list[str] | None = None) -> int:
    try:
        rc = cli.main(args=argv, prog_name="cgstudio", standalone_mode=False)
    except CGStudioError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug: one line for users, the traceback on request
        if os.environ.get("CGSTUDIO_DEBUG"):
            raise
        click.echo(
            f"error: internal error ({type(exc).__name__}: {exc}); rerun with CGSTUDIO_DEBUG=1 "
            "for the traceback and please report it",
            err=True,
        )
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
