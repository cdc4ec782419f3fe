"""Client-rendered FIM templates: every template, both orders, headers, the clients' exact strings,
and the texts that must stay text.

Client sources (the renderings below are rebuilt from them by hand):
  Continue   core/autocomplete/templating/AutocompleteTemplate.ts @ d0a3c0b626b5bebc3bef4742eec05a0242be0bab
  Twinny     src/extension/fim-templates.ts @ 193d14c0db4645d6483a38926fc997f9d07fe9ff
  llama.vscode src/configuration.ts, src/llama-server.ts @ 3938fb3568b98e3ddfcf2ce3dd52d9570552b579
  Tabby      crates/tabby/src/services/completion/completion_prompt.rs
             @ 21b29048d7bcf6b94f9f482f2d0fd05efadfd19f
  llm-ls     crates/llm-ls/src/main.rs @ 1c52b94f30fa8293741d8b68c7fa48074b7f6589 (+ llm.nvim README
             @ ce69731ba3f8d3ea8bc4c8f58c74c2f9ea0b33de for the CodeLlama token strings)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio import families
from cgstudio.families import (
    FOREIGN_FIM_MARKERS,
    ForeignFim,
    codegemma,
    gemma,
    parse_foreign_fim,
    qwen25_coder,
    template_name,
)
from cgstudio.families.foreign_fim import (
    FILE_MARKERS_AFTER,
    FILE_MARKERS_BEFORE,
    REPO_MARKERS,
    TEMPLATES,
)

SRC = Path(__file__).resolve().parents[2] / "src" / "cgstudio"

PIPES = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
STARCODER = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
DEEPSEEK = ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>")
SEED = ("<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>")

PREFIX = "def area(r):\n    return "
SUFFIX = "\n\nprint(area(2))\n"


def psm(markers: tuple[str, str, str], prefix: str = PREFIX, suffix: str = SUFFIX) -> str:
    p, s, m = markers
    return f"{p}{prefix}{s}{suffix}{m}"


# --- every template, PSM -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "markers"),
    [("fim-pipes", PIPES), ("starcoder", STARCODER), ("deepseek", DEEPSEEK), ("seed-coder", SEED)],
)
def test_psm_templates_give_prefix_and_suffix_verbatim(name: str, markers: tuple[str, str, str]) -> None:
    # Continue's codegemma/qwenCoder/stableCode/deepseek/seedCoder templates are exactly
    # "{P}{{{prefix}}}{S}{{{suffix}}}{M}";
    # llm-ls builds "{fim.prefix}{before}{fim.suffix}{after}{fim.middle}".
    got = parse_foreign_fim(psm(markers))
    assert got == ForeignFim(template=name, order="PSM", prefix=PREFIX, suffix=SUFFIX)


@pytest.mark.parametrize(
    ("name", "markers"),
    [("fim-pipes", PIPES), ("starcoder", STARCODER), ("deepseek", DEEPSEEK), ("seed-coder", SEED)],
)
def test_spm_order_suffix_marker_first(name: str, markers: tuple[str, str, str]) -> None:
    # llama.cpp's spm_infill layout: suffix marker, suffix, prefix marker, prefix, middle marker.
    p, s, m = markers
    got = parse_foreign_fim(f"{s}{SUFFIX}{p}{PREFIX}{m}")
    assert got == ForeignFim(template=name, order="SPM", prefix=PREFIX, suffix=SUFFIX)


def test_empty_prefix_and_suffix_are_allowed() -> None:
    got = parse_foreign_fim("<|fim_prefix|><|fim_suffix|><|fim_middle|>")
    assert got is not None
    assert (got.prefix, got.suffix, got.middle) == ("", "", "")


def test_text_after_the_middle_marker_is_the_start_of_the_middle() -> None:
    got = parse_foreign_fim(psm(PIPES) + "3.14159 * r")
    assert got is not None
    assert got.middle == "3.14159 * r"
    assert got.suffix == SUFFIX


def test_a_mention_of_another_familys_marker_stays_text() -> None:
    prefix = 'TOKENS = ["<fim_suffix>", "<PRE>"]\n'
    got = parse_foreign_fim(psm(PIPES, prefix=prefix))
    assert got is not None
    assert got.template == "fim-pipes"
    assert got.prefix == prefix


# --- CodeLlama's spaces --------------------------------------------------------------------------


def test_codellama_as_continue_and_tabby_render_it() -> None:
    # Continue codeLlamaFimTemplate and Tabby's config example: "<PRE> {prefix} <SUF>{suffix} <MID>".
    got = parse_foreign_fim(f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>")
    assert got == ForeignFim(template="codellama", order="PSM", prefix=PREFIX, suffix=SUFFIX)


@pytest.mark.parametrize(
    ("text", "prefix", "suffix"),
    [
        # Tabby completion_prompt.rs tests, verbatim.
        (
            "<PRE> this is some prefix <SUF>this is some suffix <MID>",
            "this is some prefix",
            "this is some suffix",
        ),
        ("<PRE> this is some prefix <SUF>\n <MID>", "this is some prefix", "\n"),
        ("<PRE>  <SUF>this is some suffix <MID>", "", "this is some suffix"),
        ("<PRE>  <SUF>\n <MID>", "", "\n"),
    ],
)
def test_codellama_tabby_strings(text: str, prefix: str, suffix: str) -> None:
    got = parse_foreign_fim(text)
    assert got is not None
    assert (got.template, got.prefix, got.suffix) == ("codellama", prefix, suffix)


def test_codellama_keeps_the_users_own_spaces() -> None:
    got = parse_foreign_fim("<PRE>   x =  <SUF>  y <MID>")
    assert got is not None
    assert (got.prefix, got.suffix) == ("  x = ", "  y")


def test_codellama_from_llm_ls_tokens() -> None:
    # llm.nvim README: prefix = "<PRE> ", suffix = " <SUF>", middle = " <MID>"; llm-ls concatenates.
    fim_prefix, fim_suffix, fim_middle = "<PRE> ", " <SUF>", " <MID>"
    got = parse_foreign_fim(f"{fim_prefix}{PREFIX}{fim_suffix}{SUFFIX}{fim_middle}")
    assert got is not None
    assert (got.prefix, got.suffix) == (PREFIX, SUFFIX)


def test_codellama_twinny_rendering() -> None:
    # Twinny getFimPromptTemplateLLama: `<PRE>${fileContext} \n${heading}${prefix} <SUF> ${suffix} <MID>`,
    # here with file context off (""), and getPromptHeader's heading for JavaScript.
    heading = "\n// Language: JavaScript (javascript) \n// File uri: file:///w/a.js (javascript) \n"
    file_context, prefix, suffix = "", "const a = ", "1;"
    got = parse_foreign_fim(f"<PRE>{file_context} \n{heading}{prefix} <SUF> {suffix} <MID>")
    assert got is not None
    assert got.prefix == f"\n{heading}{prefix}"
    assert got.suffix == " 1;"  # Twinny's own space after <SUF> stays: it is not CodeLlama markup


# --- Codestral (SPM, no middle marker) -----------------------------------------------------------


def test_codestral_as_continue_renders_it() -> None:
    # Continue codestralFimTemplate: "[SUFFIX]{{{suffix}}}[PREFIX]{{{prefix}}}"
    got = parse_foreign_fim(f"[SUFFIX]{SUFFIX}[PREFIX]{PREFIX}")
    assert got == ForeignFim(template="codestral", order="SPM", prefix=PREFIX, suffix=SUFFIX)


def test_codestral_multifile_headers_from_continue() -> None:
    # Continue codestralMultifileFimTemplate: other files "+++++ {path} \n{content}" joined by "\n\n",
    # then "\n\n+++++ {current}\n{prefix}" inside the [PREFIX] part.
    other = "+++++ src/geo.py \nPI = 3.14\n" + "\n\n" + "+++++ src/util.py \ndef sq(x):\n    return x * x"
    prefix = f"{other}\n\n+++++ src/area.py\n{PREFIX}"
    got = parse_foreign_fim(f"[SUFFIX]{SUFFIX}[PREFIX]{prefix}")
    assert got is not None
    assert got.files == (("src/geo.py", "PI = 3.14\n"), ("src/util.py", "def sq(x):\n    return x * x"))
    assert got.path == "src/area.py"
    assert got.prefix == PREFIX


def test_codestral_empty_file_from_continue() -> None:
    # No snippets and a blank file: "+++++ {path}\n{prefix}", and Continue's suffix is "\n" when empty.
    got = parse_foreign_fim("[SUFFIX]\n[PREFIX]+++++ pkg/new.py\n")
    assert got is not None
    assert (got.files, got.path, got.prefix, got.suffix) == ((), "pkg/new.py", "", "\n")


def test_codestral_twinny_context_is_preamble() -> None:
    # Twinny getFimPromptTemplateCodestral: `${fileContext}\n\n[SUFFIX]${suffix}[PREFIX]${heading}${prefix}`
    got = parse_foreign_fim(f"# from b.py: x = 1\n\n[SUFFIX]{SUFFIX}[PREFIX]{PREFIX}")
    assert got is not None
    assert (got.preamble, got.prefix, got.suffix) == ("# from b.py: x = 1\n\n", PREFIX, SUFFIX)


@pytest.mark.parametrize(
    "text",
    [
        "x = table[SUFFIX] + table[PREFIX]\n",  # ordinary code: [SUFFIX] does not open a line
        "[PREFIX]a[SUFFIX]b",  # wrong order
        "[SUFFIX]a[PREFIX]b[SUFFIX]c",  # a marker twice
    ],
)
def test_codestral_negatives(text: str) -> None:
    assert parse_foreign_fim(text) is None


# --- headers: repo, files, current path ----------------------------------------------------------


def test_qwen_multifile_from_continue() -> None:
    # Continue qwenMultifileFimTemplate: "<|repo_name|>{reponame}\n"
    # + files ("<|file_sep|>{path}\n{content}" joined by "\n") + "\n<|file_sep|>{current}"
    # + "\n<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
    files = "<|file_sep|>src/geo.py\nPI = 3.14\n" + "\n" + "<|file_sep|>src/util.py\ndef sq(x): ..."
    text = f"<|repo_name|>myproject\n{files}\n<|file_sep|>src/area.py\n{psm(PIPES)}"
    got = parse_foreign_fim(text)
    assert got == ForeignFim(
        template="fim-pipes",
        order="PSM",
        prefix=PREFIX,
        suffix=SUFFIX,
        files=(("src/geo.py", "PI = 3.14\n"), ("src/util.py", "def sq(x): ...")),
        path="src/area.py",
        repo="myproject",
    )


def test_qwen_repo_level_model_card_layout() -> None:
    # qwen25_coder docstring: <|repo_name|>{repo}\n<|file_sep|>a.py\n{a}\n<|file_sep|>b.py\n<|fim_prefix|>...
    text = f"<|repo_name|>r\n<|file_sep|>a.py\nA = 1\n<|file_sep|>b.py\n{psm(PIPES)}"
    got = parse_foreign_fim(text)
    assert got is not None
    assert (got.repo, got.files, got.path, got.preamble) == ("r", (("a.py", "A = 1"),), "b.py", "")


def test_codegemma_multifile_separator_after_each_file() -> None:
    # codegemma docstring (paper, Figures 2 and 4): a.py\n{a}<|file_separator|>b.py\n<|fim_prefix|>...
    text = f"a.py\nA = 1\n<|file_separator|>u.py\nU = 2<|file_separator|>b.py\n{psm(PIPES)}"
    got = parse_foreign_fim(text)
    assert got is not None
    assert (got.files, got.path, got.preamble) == ((("a.py", "A = 1\n"), ("u.py", "U = 2")), "b.py", "")
    assert (got.prefix, got.suffix) == (PREFIX, SUFFIX)


def test_a_bare_path_line_without_markers_is_preamble() -> None:
    # CodeGemma's single-file form "b.py\n<|fim_prefix|>..." carries no header marker: kept verbatim.
    got = parse_foreign_fim(f"b.py\n{psm(PIPES)}")
    assert got is not None
    assert (got.preamble, got.path, got.files) == ("b.py\n", None, ())


def test_starcoder_repo_and_filename_headers() -> None:
    text = f"<reponame>geo<filename>src/pi.py\nPI = 3.14\n<filename>src/area.py\n{psm(STARCODER)}"
    got = parse_foreign_fim(text)
    assert got is not None
    assert (got.template, got.repo, got.files, got.path) == (
        "starcoder",
        "geo",
        (("src/pi.py", "PI = 3.14"),),
        "src/area.py",
    )


def test_starcoder2_repo_name_and_file_sep_headers() -> None:
    text = f"<repo_name>geo\n<file_sep>src/pi.py\nPI = 3.14\n<file_sep>src/area.py\n{psm(STARCODER)}"
    got = parse_foreign_fim(text)
    assert got is not None
    assert (got.repo, got.files, got.path) == ("geo", (("src/pi.py", "PI = 3.14"),), "src/area.py")


def test_starcoder2_continue_snippets_without_paths_lose_no_text() -> None:
    # Continue starcoder2FimTemplate:
    # "<file_sep>" + contents joined by "<file_sep>" + "<file_sep>" + template.
    # The snippets carry no path line, so a file's "path" is its first line; nothing is dropped.
    snippets = ["x = 1\ny = 2", "z = 3"]
    text = "<file_sep>" + "<file_sep>".join(snippets) + "<file_sep>" + psm(STARCODER)
    got = parse_foreign_fim(text)
    assert got is not None
    assert [f"{p}\n{c}" if c else p for p, c in got.files] == snippets
    assert got.path is None


def test_mixed_header_styles_stay_in_the_preamble() -> None:
    head = "<|file_sep|>a.py\nA\n<file_sep>b.py\nB\n"
    got = parse_foreign_fim(head + psm(PIPES))
    assert got is not None
    assert (got.preamble, got.files, got.path, got.repo) == (head, (), None, None)


def test_llama_vscode_openai_mode_context_is_preamble() -> None:
    # llama.vscode handleOpenAICompletion: "Context:\n\n" + chunks.join("\n") + the openai_prompt_template
    # "<|fim_prefix|>{inputPrefix}{prompt}<|fim_suffix|>{inputSuffix}<|fim_middle|>".
    context = "Context:\n\n" + "\n".join(["PI = 3.14", "def sq(x): ..."])
    input_prefix, prompt, input_suffix = "def area(r):\n", "    return ", SUFFIX
    text = context + f"<|fim_prefix|>{input_prefix}{prompt}<|fim_suffix|>{input_suffix}<|fim_middle|>"
    got = parse_foreign_fim(text)
    assert got is not None
    assert (got.preamble, got.prefix, got.suffix) == (context, PREFIX, SUFFIX)


def test_twinny_qwen_with_file_context() -> None:
    # Twinny getFimPromptTemplateQwen with file context on:
    # `<|file_sep|>${fileContext}\n\n<|file_sep|>${heading}<|fim_prefix|>${prefix}<|fim_suffix|>...`
    ctx, heading = "/* PI = 3.14 */", "\n// Language: JavaScript (javascript) \n// File uri: file:///a.js \n"
    got = parse_foreign_fim(f"<|file_sep|>{ctx}\n\n<|file_sep|>{heading}{psm(PIPES)}")
    assert got is not None
    # Twinny's blocks have no path line: the text survives as files, nothing is made up or dropped.
    assert got.files == ((ctx, ""), ("", heading[1:]))
    assert (got.path, got.prefix, got.suffix) == (None, PREFIX, SUFFIX)


def test_twinny_repository_level_mode_has_no_fim_template() -> None:
    # Twinny getFimPromptTemplateQwenMulti: headers and the prefix only, then .trim(): a plain completion.
    text = "<|repo_name|>w\n<|file_sep|>a.py\nA = 1\n<|file_sep|>b.py\ndef area(r):"
    assert parse_foreign_fim(text) is None


# --- what must stay text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "def f():\n    return 1\n",
        'if tok == "<fim_suffix>":\n    pass\n',  # one marker mentioned in code
        "<|fim_prefix|>a<|fim_suffix|>b",  # no middle marker
        "<|fim_prefix|>a<|fim_middle|>",  # no suffix marker
        "<|fim_middle|>a<|fim_prefix|>b<|fim_suffix|>c",  # out of order
        "<|fim_prefix|>a<|fim_middle|>b<|fim_suffix|>c",  # out of order
        "<|fim_suffix|>a<|fim_middle|>b<|fim_prefix|>c",  # out of order
        psm(PIPES) + psm(PIPES),  # the same template twice
        psm(PIPES) + "\n" + psm(STARCODER),  # two families' templates
        psm(STARCODER, prefix=psm(DEEPSEEK)),  # one template inside another
        "<|fim▁begin|>a<|fim▁hole|>b<|fim▁end|>",  # ASCII bars: not DeepSeek's tokens
        "<PRE> a <SUF>b",  # CodeLlama without <MID>
    ],
)
def test_texts_that_are_not_one_complete_template(text: str) -> None:
    assert parse_foreign_fim(text) is None


# --- the table and the rest of the package -------------------------------------------------------


def test_family_records_name_their_own_template() -> None:
    assert template_name(codegemma.FAMILY.fim) == "fim-pipes"
    assert template_name(qwen25_coder.FAMILY.fim) == "fim-pipes"
    assert template_name(gemma.FAMILY.fim) is None


def test_table_names_are_unique_and_markers_distinct() -> None:
    names = [t.name for t in TEMPLATES]
    assert len(names) == len(set(names))
    headers = [*REPO_MARKERS, *FILE_MARKERS_BEFORE, *FILE_MARKERS_AFTER]
    markers = [m for t in TEMPLATES for m in t.markers] + headers
    assert len(markers) == len(set(markers))
    # No marker is part of another: a count of one marker never counts a different one.
    assert not [(a, b) for a in markers for b in markers if a != b and a in b]


def test_foreign_suffix_markers_come_from_the_table() -> None:
    for old in ("<|fim_suffix|>", "<fim_suffix>", "<SUF>", "<｜fim▁hole｜>"):
        assert old in FOREIGN_FIM_MARKERS
    assert "[SUFFIX]" not in FOREIGN_FIM_MARKERS  # Codestral's prefix comes after its suffix
    assert families.parse_foreign_fim is parse_foreign_fim


def test_marker_spellings_live_only_in_families() -> None:
    spellings = {m for t in TEMPLATES for m in t.markers} | {*REPO_MARKERS, *FILE_MARKERS_BEFORE}
    spellings |= set(FILE_MARKERS_AFTER)
    offenders = [
        f"{path.relative_to(SRC)}: {m}"
        for path in SRC.rglob("*.py")
        if "families" not in path.relative_to(SRC).parts
        for m in spellings
        if m in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
