"""GGUF checks (vocabulary only, fast for any size): BOS/EOS ids, add_bos, add_space_prefix, FIM
tokens and their types, end-of-turn, an exact tokenizer round trip, the trained context."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import llama_cpp as lc

from cgstudio.core.engine import ModelInfo, TokenKind
from cgstudio.core.settings import LoadProfile
from cgstudio.diagnostics.check import Check
from cgstudio.diagnostics.memory import trained_context
from cgstudio.engine.llamacpp.handle import ModelHandle
from cgstudio.families import FAMILIES, Family, family_from_name
from cgstudio.families import get as get_family

# Exact reproduction is the point: tabs, runs of spaces, blank lines, a leading keyword, non-ASCII.
ROUNDTRIP_SAMPLE = (
    'def area(w: float, h: float) -> float:\n\t"""Tabs,  double  spaces and ünïcødé ✓."""\n'
    "    return  w * h   # trailing spaces   \n\n\n"
    "class  Box:\n        pass\n"
)
ROUNDTRIP_INDENTED = "    x = {'a': 1}\n  \ty = [x]  \n"


@dataclass
class VocabProbe:
    """What the GGUF checks need from the vocabulary; ``ModelHandle`` provides it, tests may fake it."""

    info: ModelInfo
    texts: dict[int, str]  # id -> text for the ids the checks look at
    kinds: dict[str, tuple[int, TokenKind] | None]  # token text -> (id, kind) or None (absent)
    roundtrips: dict[str, str]  # sample -> detokenize(tokenize(sample))


def probe(path: Path, token_texts: tuple[str, ...]) -> VocabProbe:
    handle = ModelHandle(path, LoadProfile(), vocab_only=True)
    try:
        info = handle.model_info()

        texts = {}
        for tid in (info.bos_id, info.eos_id, info.eot_id):
            if tid is not None and 0 <= tid < handle.n_vocab:
                texts[tid] = lc.llama_vocab_get_text(handle.vocab, tid).decode("utf-8", "replace")
        kinds: dict[str, tuple[int, TokenKind] | None] = {}
        for text in token_texts:
            if text in info.special_tokens:
                tid = info.special_tokens[text]
                kinds[text] = (tid, info.special_kinds.get(tid, handle.token_kind(tid)))
                continue
            ids = handle.tokenize(text.encode(), parse_special=False)  # typed NORMAL, it is one plain piece
            if len(ids) == 1 and handle.piece(ids[0], special=True).decode("utf-8", "replace") == text:
                kinds[text] = (ids[0], handle.token_kind(ids[0]))
            else:
                kinds[text] = None
        roundtrips = {}
        for sample in (ROUNDTRIP_SAMPLE, ROUNDTRIP_INDENTED):
            ids = handle.tokenize(sample.encode(), parse_special=False)
            roundtrips[sample] = b"".join(handle.piece(t, special=False) for t in ids).decode(
                "utf-8", "replace"
            )
        return VocabProbe(info, texts, kinds, roundtrips)
    finally:
        handle.close()


def fim_family(info: ModelInfo, family: str) -> Family | None:
    """The family whose FIM tokens this GGUF should have: its own when it has FIM, else a FIM family
    its names claim (a 'codegemma' file whose conversion dropped the FIM tokens detects as gemma)."""
    own = get_family(family)
    if own.fim is not None:
        return own
    for name in (info.name, Path(info.path).name, info.metadata.get("general.basename", "")):
        named = get_family(family_from_name(str(name or "")))
        if named.fim is not None:
            return named
    return None


def check_special_ids(p: VocabProbe, family: str, path: str) -> list[Check]:
    info, meta = p.info, p.info.metadata
    out: list[Check] = []
    rules = get_family(family).rules
    for role, key in (("bos", "tokenizer.ggml.bos_token_id"), ("eos", "tokenizer.ggml.eos_token_id")):
        tid = info.bos_id if role == "bos" else info.eos_id
        text = p.texts.get(tid) if tid is not None else None
        want = (rules.bos if role == "bos" else rules.eos) if rules else None
        fix = (
            (
                f"gguf-new-metadata --special-token-by-id bos {rules.bos_id} --special-token-by-id eos "
                f"{rules.eos_id} {path} FIXED.gguf ({rules.label} ids), or download a current conversion "
                "(`cgstudio pull`)"
            )
            if rules
            else ("download a current conversion of the model")
        )
        if key not in meta:
            out.append(
                Check(
                    f"gguf.{role}",
                    "fail" if rules else "warn",
                    f"{key} is missing (a converter regression dropped it): llama.cpp falls back to id "
                    f"{tid} ({text!r}), so {'prompts start' if role == 'bos' else 'generation stops'} "
                    "wrong and the model may produce nothing",
                    fix,
                )
            )
        elif rules and text != want:
            out.append(
                Check(
                    f"gguf.{role}",
                    "fail",
                    f"{role.upper()} id {tid} is {text!r}, {rules.label}'s is {want}",
                    fix,
                )
            )
        else:
            out.append(Check(f"gguf.{role}", "ok", f"{role.upper()} id {tid} ({text!r})"))
    if rules and rules.add_bos and not info.add_bos:
        out.append(
            Check(
                "gguf.add_bos",
                "fail",
                f"tokenizer.ggml.add_bos_token is false: {rules.label} models degrade badly "
                f"without {rules.bos}",
                f"gguf-set-metadata --force {path} tokenizer.ggml.add_bos_token 1",
            )
        )
    else:
        out.append(
            Check(
                "gguf.add_bos",
                "ok",
                f"add_bos {str(info.add_bos).lower()}" + ("" if rules else " (this family's convention)"),
            )
        )
    return out


def check_space_prefix(p: VocabProbe, family: str, path: str) -> Check:
    asp = p.info.add_space_prefix
    rules = get_family(family).rules
    if rules is None or rules.add_space_prefix:
        shown = "not set" if asp is None else str(asp).lower()
        return Check("gguf.add_space_prefix", "ok", f"{shown} (not a SentencePiece Gemma vocabulary)")
    if asp is False:
        return Check("gguf.add_space_prefix", "ok", f"false, as {rules.label} needs")
    if asp is None:
        return Check(
            "gguf.add_space_prefix",
            "fail",
            "tokenizer.ggml.add_space_prefix is missing, so llama.cpp defaults to true and puts a space "
            "before every prompt (early Gemma conversions): completions shift and FIM breaks",
            "download a current conversion (`cgstudio pull codegemma-2b` etc.); "
            "the key cannot be added in place",
        )
    return Check(
        "gguf.add_space_prefix",
        "fail",
        "tokenizer.ggml.add_space_prefix is true: llama.cpp puts a space before every prompt, "
        "so completions shift and FIM breaks",
        f"gguf-set-metadata --force {path} tokenizer.ggml.add_space_prefix '' "
        "(the empty string writes false), or download a current conversion",
    )


def check_fim(p: VocabProbe, family: str) -> Check:
    fam = fim_family(p.info, family)
    if fam is None or fam.fim is None:
        return Check(
            "gguf.fim_tokens",
            "warn",
            f"no FIM tokens ({family} model): fill-in-the-middle is unavailable, completion continues text",
            "for FIM completion use codegemma-2b or codegemma-7b (`cgstudio pull codegemma-2b`)",
        )
    found = {t: p.kinds.get(t) for t in fam.fim.tokens}
    missing = [t for t, v in found.items() if v is None]
    normal = [
        t
        for t, v in found.items()
        if v is not None and v[1] not in (TokenKind.CONTROL, TokenKind.USER_DEFINED)
    ]
    listing = ", ".join(f"{t}={v[0]} ({v[1].value})" for t, v in found.items() if v is not None)
    if missing:
        hints = fam.variants
        smallest = hints.suggest_fim_by_size[0][1] if hints.suggest_fim_by_size else hints.suggest_fim
        return Check(
            "gguf.fim_tokens",
            "fail",
            f"this {fam.name} GGUF lacks the FIM tokens {', '.join(missing)}: "
            "the conversion dropped them, so fill-in-the-middle cannot work",
            f"download a current conversion: `cgstudio pull {smallest}` (or {hints.suggest_fim}); "
            "or re-convert with llama.cpp's convert_hf_to_gguf.py",
        )
    if normal:
        return Check(
            "gguf.fim_tokens",
            "fail",
            f"{', '.join(normal)} typed NORMAL: llama.cpp will not treat them as special, "
            "and user text can forge them",
            "download a current conversion (they must be CONTROL or USER_DEFINED)",
        )
    return Check("gguf.fim_tokens", "ok", listing)


def check_end_of_turn(p: VocabProbe, family: str, variant: str) -> Check:
    info = p.info
    vocab = get_family(family).vocab
    turn = vocab.eot if vocab is not None else None
    chatty = variant == "instruction-tuned" or bool(info.chat_template)
    if turn is None:
        eot = info.eot_id if info.eot_id is not None else info.eos_id
        return Check(
            "gguf.end_of_turn",
            "ok" if eot is not None or not chatty else "warn",
            f"end of turn id {eot} ({p.texts.get(eot) if eot is not None else 'none'})",
        )
    present = p.kinds.get(turn)
    if present is None:
        return Check(
            "gguf.end_of_turn",
            "fail" if chatty else "warn",
            f"{turn} is not in the vocabulary: chat replies will not stop",
            "download a current conversion of the model",
        )
    tid = present[0]
    if info.eot_id not in (None, tid) and p.texts.get(info.eot_id) != turn:
        return Check(
            "gguf.end_of_turn",
            "warn",
            f"{turn} is id {tid} but the GGUF's end-of-turn id is {info.eot_id} "
            f"({p.texts.get(info.eot_id)!r}); cgstudio stops on {turn} anyway",
            f"gguf-new-metadata --special-token-by-id eot {tid} IN.gguf OUT.gguf",
        )
    use = "chat replies stop on it" if chatty else "unused for completion, present for chat"
    return Check("gguf.end_of_turn", "ok", f"{turn}={tid} ({present[1].value}); {use}")


def check_roundtrip(p: VocabProbe) -> Check:
    for sample, back in p.roundtrips.items():
        if back == sample:
            continue
        i = next(
            (k for k, (a, b) in enumerate(zip(sample, back, strict=False)) if a != b),
            min(len(sample), len(back)),
        )
        lead = back.startswith(" ") and not sample.startswith(" ")
        return Check(
            "gguf.tokenizer_roundtrip",
            "fail",
            f"tokenize+detokenize changes code at character {i}: "
            f"{sample[max(0, i - 8) : i + 12]!r} came back as {back[max(0, i - 8) : i + 12]!r}"
            + (" (a space is added in front: add_space_prefix)" if lead else ""),
            "fix add_space_prefix (see above)"
            if lead
            else "download a current conversion; the tokenizer is broken",
        )
    return Check(
        "gguf.tokenizer_roundtrip",
        "ok",
        f"{sum(len(s) for s in p.roundtrips)} characters of code with tabs, runs of spaces, blank lines "
        "and non-ASCII come back exactly",
    )


def check_context(info: ModelInfo, profile: LoadProfile) -> Check:
    trained = trained_context(info)
    if trained and profile.n_ctx > trained:
        return Check(
            "gguf.context",
            "warn",
            f"--ctx-size {profile.n_ctx} is beyond the {trained} tokens the model was trained on: "
            "output degrades past that point",
            f"use --ctx-size {trained} or less",
        )
    return Check("gguf.context", "ok", f"--ctx-size {profile.n_ctx} within the trained {trained}")


def probe_texts() -> tuple[str, ...]:
    """The token texts ``probe`` looks up: every family's FIM, turn and file-separator tokens."""
    texts: list[str | None] = []
    for fam in FAMILIES.values():
        texts += [*(fam.fim.tokens if fam.fim else ()), fam.chat.turn_end, fam.chat.turn_start]
        texts.append(fam.vocab.eot if fam.vocab else None)
    return tuple(dict.fromkeys(t for t in texts if t))
