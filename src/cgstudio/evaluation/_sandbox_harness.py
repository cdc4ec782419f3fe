"""Runs a sandboxed program and proves that it ran to its end; stdlib only.

``sandbox`` passes this file's text as ``python -I -c TEXT RESULT_FD`` inside the sandbox, with the
program in ``program.py`` in the working directory and a per-run random token on stdin.

Why: exit status 0 does not mean "the tests passed". A completion that calls ``exit()``,
``quit()``, ``sys.exit(0)``, ``os._exit(0)`` or ``raise SystemExit`` ends the interpreter with status
0 before (or inside) ``check(entry_point)``. So the token is written to ``RESULT_FD`` only after the
program's last statement, ``check(entry_point)``, has returned, and the sandbox counts a pass only
when the token it generated arrives (``sandbox._outcome``).

Threat model: the program is untrusted code from a model, not code written against this harness.
The token is read from stdin before the program starts and stdin is then replaced by /dev/null; it
is not in the program's source, argv, environment or globals, nor in any file the program can open,
so a program that ends early, kills itself, execs another binary or forks and lets its parent exit
cannot produce it. Code in the same interpreter that inspects this harness's frame
(``sys._getframe(1).f_locals``) could still find it, as it could replace ``check``'s comparisons;
that is cheating the harness on purpose, which the sandbox contains (files, network, processes,
memory) but a score cannot rule out.
"""

import contextlib
import os
import sys
import traceback
import types


def _run() -> None:
    result_fd = int(sys.argv[1])
    token = os.read(0, 256)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    with open("program.py", "rb") as fh:
        source = fh.read()
    main = types.ModuleType("__main__")
    main.__file__ = os.path.abspath("program.py")
    sys.modules["__main__"] = main
    sys.argv = ["program.py"]
    try:
        # dont_inherit: this file's compiler flags must not change how the program compiles.
        exec(compile(source, "program.py", "exec", dont_inherit=True), vars(main))
    except SystemExit:
        raise  # exits with the program's status (0 included) and no token: not a pass
    except BaseException as exc:  # reported as the interpreter would, minus this harness's frame
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
        sys.stderr.flush()
        os._exit(1)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os.write(result_fd, token)
    # At once: atexit handlers and lingering threads of the program cannot change the verdict.
    os._exit(0)


_run()
