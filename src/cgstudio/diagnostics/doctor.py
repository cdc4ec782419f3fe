"""``cgstudio doctor``: the problems that stop a model before its first token, each with a fix.

Machine checks: the CPU against the llama.cpp build (AMX crash hazard, unused AVX2/AVX-512,
instructions the CPU lacks), the GPU and whether the build can use it, RAM/VRAM against the model
and its KV cache, threads against physical cores. GGUF checks (vocabulary only, fast for any size):
architecture, BOS/EOS ids, add_bos, add_space_prefix, FIM tokens and their types, end-of-turn,
an exact tokenizer round trip, the trained context, and the variant with its confidence.

A check is ``ok``, ``warn`` (works, but slower or degraded) or ``fail`` (crashes, wrong or empty
output); ``doctor`` exits 1 when any check fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cgstudio.core.engine import ModelInfo, TokenKind
from cgstudio.core.errors import CGStudioError
from cgstudio.core.settings import LoadProfile
from cgstudio.diagnostics.hardware import SIMD_FEATURES, Machine
from cgstudio.diagnostics.memory import estimate, gib, trained_context
from cgstudio.engine.llamacpp.gguf_check import validate_model_file

Status = Literal["ok", "warn", "fail"]
REBUILD = "rebuild llama-cpp-python with portable flags: `make llama` (scripts/llama_cmake_args.py)"
# Exact reproduction is the point: tabs, runs of spaces, blank lines, a leading keyword, non-ASCII.
ROUNDTRIP_SAMPLE = (
    'def area(w: float, h: float) -> float:\n\t"""Tabs,  double  spaces and ünïcødé ✓."""\n'
    "    return  w * h   # trailing spaces   \n\n\n"
    "class  Box:\n        pass\n"
)
ROUNDTRIP_INDENTED = "    x = {'a': 1}\n  \ty = [x]  \n"
GEMMA_FAMILIES = ("codegemma", "gemma")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


# -- machine ------------------------------------------------------------------------------------
def check_cpu(machine: Machine) -> Check:
    cpu, build = machine.cpu, machine.build
    if not cpu.is_x86:
        return Check("cpu.instructions", "ok", f"{cpu.machine} CPU: a native build is safe")
    if not build.features:
        return Check(
            "cpu.instructions",
            "warn",
            "could not read llama.cpp's system info (llama_print_system_info)",
            "check that llama-cpp-python imports: python -c 'import llama_cpp'",
        )
    amx_build = [n for n in ("AMX_INT8", "AMX_BF16", "AMX_TILE") if build.features.get(n)]
    amx_args = [o for o in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16") if build.cmake_on(o)]
    native = build.cmake_on("GGML_NATIVE")
    if cpu.has_amx and (amx_build or amx_args or native):
        why = ", ".join(amx_build + amx_args) or "GGML_NATIVE=ON (a native build turns AMX on here)"
        return Check(
            "cpu.instructions",
            "fail",
            f"this CPU has AMX and llama.cpp was built with it ({why}): the AMX matmul path "
            "(ggml_backend_amx_mul_mat) segfaults on these machines",
            f"{REBUILD}; it sets GGML_NATIVE=OFF and GGML_AMX_*=OFF",
        )
    illegal = [n for n, flag in SIMD_FEATURES.items() if build.features.get(n) and flag not in cpu.flags]
    if illegal and cpu.flags:
        return Check(
            "cpu.instructions",
            "fail",
            f"llama.cpp uses {', '.join(illegal)}, which this CPU lacks: "
            "it will crash with an illegal instruction",
            REBUILD,
        )
    unused = [n for n, flag in SIMD_FEATURES.items() if flag in cpu.flags and not build.features.get(n)]
    fast = [n for n in unused if n.startswith(("AVX2", "AVX512", "FMA", "F16C", "AVX_VNNI"))]
    used = [n for n, on in build.features.items() if on and n in SIMD_FEATURES]
    amx_note = "; AMX present and correctly off" if cpu.has_amx else ""
    if fast:
        return Check(
            "cpu.instructions",
            "warn",
            f"the CPU has {', '.join(fast)} but llama.cpp was built without them: prompt processing and "
            f"generation are slower than they could be (built with: {', '.join(used) or 'none'}){amx_note}",
            REBUILD,
        )
    return Check("cpu.instructions", "ok", f"llama.cpp uses {', '.join(used) or 'baseline x86'}{amx_note}")


def check_gpu(machine: Machine, profile: LoadProfile) -> Check:
    gpu, offload = machine.gpu, machine.build.gpu_offload
    backend = {"nvidia": "cuda", "metal": "metal", "amd": "vulkan"}.get(gpu.kind, "cuda")
    if gpu.kind == "none":
        if profile.n_gpu_layers != 0:
            return Check(
                "gpu",
                "warn",
                f"--n-gpu-layers {profile.n_gpu_layers} but no GPU was found",
                "use --n-gpu-layers 0",
            )
        return Check(
            "gpu", "ok", "no GPU found: CPU inference" + (" (the build could offload)" if offload else "")
        )
    vram = f", {gib(gpu.vram_total)} ({gib(gpu.vram_free or 0)} free)" if gpu.vram_total else ""
    if not offload:
        return Check(
            "gpu",
            "warn",
            f"{gpu.name}{vram} found, but this llama.cpp build cannot offload to it (CPU only)",
            f"rebuild with GPU support: CGSTUDIO_GPU={backend} make llama",
        )
    if profile.n_gpu_layers == 0:
        return Check(
            "gpu",
            "warn",
            f"{gpu.name}{vram} is usable but --n-gpu-layers is 0: the GPU sits idle",
            "`cgstudio recommend` picks the layers that fit (or --n-gpu-layers all)",
        )
    return Check("gpu", "ok", f"{gpu.name}{vram}; the build offloads")


def check_threads(machine: Machine, profile: LoadProfile) -> Check:
    phys, logical = machine.cpu.physical_cores, machine.cpu.logical_cpus
    if profile.n_threads is None:
        return Check("threads", "ok", f"{phys} threads = physical cores ({logical} logical CPUs)")
    if profile.n_threads > phys:
        return Check(
            "threads",
            "warn",
            f"{profile.n_threads} threads for {phys} physical cores ({logical} logical): "
            "hyperthreads share one core's SIMD units, so extra threads slow llama.cpp down",
            f"use --threads {phys} (or leave it unset)",
        )
    return Check("threads", "ok", f"{profile.n_threads} threads of {phys} physical cores")


def check_memory(machine: Machine, profile: LoadProfile, info: ModelInfo | None) -> list[Check]:
    mem = machine.memory
    if info is None:
        return [Check("memory", "ok", f"RAM {gib(mem.available)} available of {gib(mem.total)}")]
    need = estimate(info, profile)
    parts = (
        f"weights {gib(need.weights)} + KV {gib(need.kv)} ({profile.n_ctx} tokens, "
        f"{profile.cache_type_k}/{profile.cache_type_v}) + compute {gib(need.compute)}"
    )
    fix = (
        "`cgstudio recommend` fits the profile to this machine; or lower --ctx-size, use "
        "-fa -ctk q8_0 -ctv q8_0 (half the KV), or a smaller quantization"
    )
    checks: list[Check] = []
    if not mem.total:
        checks.append(Check("memory", "warn", f"needs about {gib(need.ram)} RAM ({parts}); RAM size unknown"))
    elif need.ram > mem.total:
        checks.append(
            Check(
                "memory",
                "fail",
                f"needs about {gib(need.ram)} RAM ({parts}), the machine has {gib(mem.total)}",
                fix,
            )
        )
    elif need.ram > mem.available:
        checks.append(
            Check(
                "memory",
                "warn",
                f"needs about {gib(need.ram)} RAM ({parts}), "
                f"{gib(mem.available)} is free of {gib(mem.total)}: expect swapping",
                "close other programs, or " + fix,
            )
        )
    else:
        checks.append(
            Check(
                "memory",
                "ok",
                f"needs about {gib(need.ram)} RAM ({parts}); {gib(mem.available)} free of {gib(mem.total)}",
            )
        )
    if need.vram:
        free = machine.gpu.vram_free
        if free is None:
            checks.append(
                Check("memory.gpu", "warn", f"needs about {gib(need.vram)} VRAM; free VRAM unknown")
            )
        elif need.vram > free:
            checks.append(
                Check(
                    "memory.gpu",
                    "fail",
                    f"{need.gpu_layers} GPU layers need about {gib(need.vram)} VRAM, {gib(free)} is free",
                    "`cgstudio recommend` picks the GPU layers that fit; or fewer --n-gpu-layers",
                )
            )
        else:
            checks.append(
                Check(
                    "memory.gpu",
                    "ok",
                    f"{need.gpu_layers} GPU layers need about {gib(need.vram)} VRAM; {gib(free)} free",
                )
            )
    return checks


def machine_checks(machine: Machine, profile: LoadProfile, info: ModelInfo | None = None) -> list[Check]:
    return [
        check_cpu(machine),
        check_gpu(machine, profile),
        *check_memory(machine, profile, info),
        check_threads(machine, profile),
    ]


# -- the GGUF -----------------------------------------------------------------------------------
@dataclass
class VocabProbe:
    """What the GGUF checks need from the vocabulary; ``ModelHandle`` provides it, tests may fake it."""

    info: ModelInfo
    texts: dict[int, str]  # id -> text for the ids the checks look at
    kinds: dict[str, tuple[int, TokenKind] | None]  # token text -> (id, kind) or None (absent)
    roundtrips: dict[str, str]  # sample -> detokenize(tokenize(sample))


def probe(path: Path, token_texts: tuple[str, ...]) -> VocabProbe:
    from cgstudio.engine.llamacpp.handle import ModelHandle

    handle = ModelHandle(path, LoadProfile(), vocab_only=True)
    try:
        info = handle.model_info()
        import llama_cpp as lc

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


def _fim_texts(family: str) -> tuple[str, ...]:
    if family == "qwen2.5-coder":
        return ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")
    return ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>")


def _named_codegemma(info: ModelInfo) -> bool:
    return any(
        "codegemma" in s.lower()
        for s in (info.name, Path(info.path).name, info.metadata.get("general.basename", ""))
    )


def check_special_ids(p: VocabProbe, family: str, path: str) -> list[Check]:
    info, meta = p.info, p.info.metadata
    out: list[Check] = []
    gemma = family in GEMMA_FAMILIES
    for role, key, want in (
        ("bos", "tokenizer.ggml.bos_token_id", "<bos>"),
        ("eos", "tokenizer.ggml.eos_token_id", "<eos>"),
    ):
        tid = info.bos_id if role == "bos" else info.eos_id
        text = p.texts.get(tid) if tid is not None else None
        fix = (
            (
                "gguf-new-metadata --special-token-by-id bos 2 --special-token-by-id eos 1 "
                f"{path} FIXED.gguf (Gemma ids), or download a current conversion (`cgstudio pull`)"
            )
            if gemma
            else ("download a current conversion of the model")
        )
        if key not in meta:
            out.append(
                Check(
                    f"gguf.{role}",
                    "fail" if gemma else "warn",
                    f"{key} is missing (a converter regression dropped it): llama.cpp falls back to id "
                    f"{tid} ({text!r}), so {'prompts start' if role == 'bos' else 'generation stops'} "
                    "wrong and the model may produce nothing",
                    fix,
                )
            )
        elif gemma and text != want:
            out.append(
                Check(f"gguf.{role}", "fail", f"{role.upper()} id {tid} is {text!r}, Gemma's is {want}", fix)
            )
        else:
            out.append(Check(f"gguf.{role}", "ok", f"{role.upper()} id {tid} ({text!r})"))
    if gemma and not info.add_bos:
        out.append(
            Check(
                "gguf.add_bos",
                "fail",
                "tokenizer.ggml.add_bos_token is false: Gemma models degrade badly without <bos>",
                f"gguf-set-metadata --force {path} tokenizer.ggml.add_bos_token 1",
            )
        )
    else:
        out.append(
            Check(
                "gguf.add_bos",
                "ok",
                f"add_bos {str(info.add_bos).lower()}" + ("" if gemma else " (this family's convention)"),
            )
        )
    return out


def check_space_prefix(p: VocabProbe, family: str, path: str) -> Check:
    asp = p.info.add_space_prefix
    if family not in GEMMA_FAMILIES:
        shown = "not set" if asp is None else str(asp).lower()
        return Check("gguf.add_space_prefix", "ok", f"{shown} (not a SentencePiece Gemma vocabulary)")
    if asp is False:
        return Check("gguf.add_space_prefix", "ok", "false, as Gemma needs")
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
    texts = _fim_texts(family)
    found = {t: p.kinds.get(t) for t in texts}
    missing = [t for t, v in found.items() if v is None]
    normal = [
        t
        for t, v in found.items()
        if v is not None and v[1] not in (TokenKind.CONTROL, TokenKind.USER_DEFINED)
    ]
    listing = ", ".join(f"{t}={v[0]} ({v[1].value})" for t, v in found.items() if v is not None)
    if family == "codegemma" or (family == "gemma" and _named_codegemma(p.info)):
        if missing:
            return Check(
                "gguf.fim_tokens",
                "fail",
                f"this CodeGemma GGUF lacks the FIM tokens {', '.join(missing)}: "
                "the conversion dropped them, so fill-in-the-middle cannot work",
                "download a current conversion: `cgstudio pull codegemma-2b` (or codegemma-7b); "
                "or re-convert with llama.cpp's convert_hf_to_gguf.py",
            )
    elif family == "qwen2.5-coder":
        pass
    else:
        return Check(
            "gguf.fim_tokens",
            "warn",
            f"no FIM tokens ({family} model): fill-in-the-middle is unavailable, completion continues text",
            "for FIM completion use codegemma-2b or codegemma-7b (`cgstudio pull codegemma-2b`)",
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
    turn = {"codegemma": "<end_of_turn>", "gemma": "<end_of_turn>", "qwen2.5-coder": "<|im_end|>"}.get(family)
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


def model_checks(p: VocabProbe, profile: LoadProfile, path: str) -> tuple[list[Check], dict[str, Any]]:
    from cgstudio.families.detect import detect_family, detect_variant
    from cgstudio.prompts.registry import FORMATS

    info = p.info
    family = detect_family(info)
    variant = detect_variant(info)
    fim = FORMATS.get(family, FORMATS["unknown"]).fim is not None
    supported = family != "unknown"
    checks = [
        Check(
            "gguf.architecture",
            "ok" if supported else "warn",
            f"{info.architecture}, family {family} ({info.quantization}, {info.n_layers} layers)",
            ""
            if supported
            else "cgstudio knows codegemma, gemma and qwen2.5-coder; other models get "
            "their own chat template and no FIM",
        )
    ]
    checks += check_special_ids(p, family, path)
    checks.append(check_space_prefix(p, family, path))
    checks.append(check_fim(p, family))
    checks.append(check_end_of_turn(p, family, variant.variant))
    checks.append(check_roundtrip(p))
    checks.append(check_context(info, profile))
    vstatus: Status = "warn" if variant.confidence == "low" else "ok"
    checks.append(
        Check(
            "gguf.variant",
            vstatus,
            f"{variant.variant} ({variant.confidence} confidence: {variant.reason}); FIM "
            f"{'yes' if fim else 'no'}",
            "" if vstatus == "ok" else "say which with --variant pretrained|instruction-tuned",
        )
    )
    summary = {
        "path": path,
        "name": info.name,
        "architecture": info.architecture,
        "family": family,
        "variant": variant.variant,
        "variant_confidence": variant.confidence,
        "variant_reason": variant.reason,
        "fim": fim,
        "quantization": info.quantization,
        "size_bytes": info.size_bytes,
    }
    return checks, summary


def run(machine: Machine, profile: LoadProfile, model_path: Path | None) -> dict[str, Any]:
    """All checks as ``{"checks": [...], "model": {...} | None}``. Never raises for a bad GGUF."""
    model: dict[str, Any] | None = None
    checks: list[Check] = []
    info: ModelInfo | None = None
    if model_path is not None:
        try:
            validate_model_file(model_path)  # what llama.cpp would abort on fails here, as a check
            p = probe(model_path, _probe_texts())
        except CGStudioError as exc:
            checks.append(
                Check(
                    "gguf.architecture",
                    "fail",
                    exc.message,
                    "check the file is a complete GGUF of a supported architecture; re-download it",
                )
            )
        else:
            info = p.info
            gguf_checks, model = model_checks(p, profile, str(model_path))
            checks += gguf_checks
    return {"checks": [c.to_json() for c in machine_checks(machine, profile, info) + checks], "model": model}


def _probe_texts() -> tuple[str, ...]:
    return (*_fim_texts("codegemma"), "<|file_sep|>", "<end_of_turn>", "<start_of_turn>", "<|im_end|>")


def failed(doc: dict[str, Any]) -> list[str]:
    return [c["name"] for c in doc["checks"] if c["status"] == "fail"]
