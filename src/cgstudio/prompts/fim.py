"""Fill-in-the-middle prompts (PSM order) with file paths and multi-file context.

The tokens, their order and the context-file layout come from the family's ``FimTokens``
(``cgstudio.families``): CodeGemma puts a file separator after each context file, Qwen2.5-Coder a
repo-name header and a separator before each file.
No whitespace is added around the user's prefix or suffix and none is stripped.
"""

from __future__ import annotations

from cgstudio.core.errors import ContextOverflowError
from cgstudio.core.prompt import ContextEntry, ContextFile, GuardWarning, Prompt, context_label
from cgstudio.families.base import FimTokens
from cgstudio.prompts.vocab import Vocab

FimSpec = FimTokens  # a family's FIM part (cgstudio.families.base.FimTokens)


def stop_ids(vocab: Vocab, texts: tuple[str, ...]) -> frozenset[int]:
    info = vocab.engine.info
    ids = {vocab.id(t) for t in texts if vocab.has(t)}
    ids.update(x for x in (info.eos_id, info.eot_id) if x is not None)
    return frozenset(ids)


def build_fim(
    vocab: Vocab,
    spec: FimSpec,
    prefix: str,
    suffix: str,
    *,
    path: str | None = None,
    files: tuple[ContextFile, ...] = (),
    n_ctx: int,
    max_tokens: int,
    prefix_share: float = 0.75,
    context_budget: int | None = None,
    suffix_tokens: int = 0,
) -> Prompt:
    """Render a PSM FIM prompt that fits ``n_ctx`` with room for ``max_tokens``.

    Context files get at most ``context_budget`` tokens (None: half the context less the
    completion's tokens) and never the prefix's or suffix's room; files and chunks that do not fit
    are dropped, the least valuable first (``ContextFile.rank``). Then the prefix loses its start and
    the suffix its end, split by ``prefix_share``. ``suffix_tokens`` > 0 keeps at most that many
    suffix tokens, the ones nearest the cursor (an editor's window, before any of that).
    """
    warnings: list[GuardWarning] = []
    reserve = min(max_tokens, max(n_ctx // 2, 1))
    if reserve < max_tokens:
        warnings.append(
            GuardWarning(
                "max_tokens_clamped",
                f"max_tokens {max_tokens} does not fit a {n_ctx}-token context next to the prompt; "
                f"using {reserve}. Raise --ctx-size for longer completions.",
            )
        )
    budget = n_ctx - reserve
    head = [vocab.bos_id] if spec.add_bos and vocab.bos_id is not None else []
    pre_ids, suf_ids = vocab.plain(prefix), vocab.plain(suffix)
    if suffix_tokens:
        suf_ids = suf_ids[:suffix_tokens]
    marker = [vocab.id(spec.prefix)]
    tail_markers = [vocab.id(spec.suffix)], [vocab.id(spec.middle)]
    path_ids = vocab.plain(path + "\n") if path else []
    if spec.repo_style and files:
        path_ids = [vocab.id(spec.file_sep), *vocab.plain((path or "current_file") + "\n")]
    fixed = len(head) + len(path_ids) + len(marker) + 2
    if fixed + 1 > budget:
        raise ContextOverflowError(fixed + 1, n_ctx, "even an empty FIM prompt does not fit")
    room = budget - fixed
    if len(pre_ids) + len(suf_ids) > room:
        keep_pre, keep_suf = _split_room(len(pre_ids), len(suf_ids), room, prefix_share)
        dropped_pre, dropped_suf = len(pre_ids) - keep_pre, len(suf_ids) - keep_suf
        pre_ids = pre_ids[len(pre_ids) - keep_pre :]
        suf_ids = suf_ids[:keep_suf]
        warnings.append(
            GuardWarning(
                "prompt_truncated",
                f"the FIM prompt did not fit {n_ctx} tokens with {reserve} kept for the completion: dropped "
                f"{dropped_pre} prefix tokens from the start and {dropped_suf} suffix tokens from the end. "
                "Raise --ctx-size to keep more of the file.",
            )
        )
        room = 0
    else:
        room -= len(pre_ids) + len(suf_ids)
    default_budget = max(0, n_ctx // 2 - reserve)
    ctx_room = min(room, default_budget if context_budget is None else context_budget)
    ctx_ids, entries = _context_files(vocab, spec, files, ctx_room, warnings)
    tokens = [
        *head,
        *ctx_ids,
        *path_ids,
        *marker,
        *pre_ids,
        *tail_markers[0],
        *suf_ids,
        *tail_markers[1],
    ]
    return Prompt(
        tokens=tokens,
        mode="fim",
        stop_ids=stop_ids(vocab, spec.stop_texts),
        warnings=warnings,
        suffix=suffix,
        prefix_tail=prefix[-2000:],
        max_tokens=reserve,
        context=entries,
        context_span=(len(head), len(head) + len(ctx_ids)),
    )


def _split_room(n_pre: int, n_suf: int, room: int, share: float) -> tuple[int, int]:
    want_pre = int(room * share)
    keep_pre = min(n_pre, max(want_pre, room - n_suf))
    keep_suf = min(n_suf, room - keep_pre)
    keep_pre = min(n_pre, room - keep_suf)
    return keep_pre, keep_suf


def _context_files(
    vocab: Vocab, spec: FimSpec, files: tuple[ContextFile, ...], room: int, warnings: list[GuardWarning]
) -> tuple[list[int], list[ContextEntry]]:
    """The context files' tokens in the family's layout, in the given order, and what each took.

    CodeGemma (arXiv 2406.11409): ``path\n{text}`` then the file separator, per file.
    Qwen2.5-Coder: the repo-name token and ``repo\n``, then the file separator and
    ``path\n{text}\n`` per file (the spellings are in families/). Adjacent chunks of one file
    (``ContextFile.lines``) share one block: its kept chunks joined in the given order, so a file
    whose chunks are all kept reads exactly as the whole file. The most valuable files and chunks
    are kept while they fit ``room`` (lowest ``rank`` first; among equals, the latest in the
    list); the others are dropped and named in a ``context_files_dropped`` warning."""
    if not files:
        return [], []
    sep = vocab.id(spec.file_sep)

    def block(path: str, text: str) -> list[int]:
        if spec.repo_style:
            return [sep, *vocab.plain(f"{path}\n{text}\n")]
        return [*vocab.plain(f"{path}\n{text}"), sep]

    groups = _groups(files)
    header: list[int] = []
    if spec.repo_style and spec.repo_name is not None and vocab.has(spec.repo_name):
        header = [vocab.id(spec.repo_name), *vocab.plain("repo\n")]
    # What each file or chunk costs, and what its group's path line and separator cost once.
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    cost = [len(block(f.path, f.text)) if f.lines is None else len(vocab.plain(f.text)) for f in files]
    frame = [0 if files[m[0]].lines is None else len(block(files[m[0]].path, "")) for m in groups]
    by_value = sorted(range(len(files)), key=lambda i: (files[i].rank, -i))
    kept: set[int] = set()
    used = len(header)
    for i in by_value:
        g = group_of[i]
        extra = cost[i] + (0 if any(j in kept for j in groups[g]) else frame[g])
        if used + extra <= room:
            kept.add(i)
            used += extra
    while True:  # chunks joined can tokenize longer than apart: drop until the exact count fits
        blocks = [
            (g, block(files[m[0]].path, "".join(files[i].text for i in m if i in kept)))
            for g, m in enumerate(groups)
            if any(i in kept for i in m)
        ]
        if not kept or len(header) + sum(len(b) for _, b in blocks) <= room:
            break
        kept.remove(max(kept, key=lambda i: (files[i].rank, -i)))
    if len(kept) < len(files):
        gone: list[str] = []
        for m in groups:
            out = [i for i in m if i not in kept]
            if len(m) > 1 and len(out) == len(m):  # every chunk of the file: name the file
                gone.append(context_label(files[m[0]].path, files[m[0]].reason))
            else:
                gone += [context_label(files[i].path, files[i].reason, files[i].lines) for i in out]
        warnings.append(
            GuardWarning(
                "context_files_dropped",
                f"{len(gone)} context files or chunks did not fit the {room}-token context budget "
                f"and were left out: {', '.join(gone)}. Raise "
                "--context-tokens or --ctx-size to keep them.",
            )
        )
    if not kept:
        return [], []
    entries = [ContextEntry(files[groups[g][0]].path, len(b), files[groups[g][0]].reason) for g, b in blocks]
    return [*header, *(t for _, b in blocks for t in b)], entries


def _groups(files: tuple[ContextFile, ...]) -> list[list[int]]:
    """The files' indexes, adjacent chunks of one file (same path and reason, in line order)
    together."""
    groups: list[list[int]] = []
    for i, f in enumerate(files):
        prev = files[i - 1] if i else None
        if (
            prev is not None
            and f.lines is not None
            and prev.lines is not None
            and (prev.path, prev.reason) == (f.path, f.reason)
            and prev.lines[1] <= f.lines[0]
        ):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
