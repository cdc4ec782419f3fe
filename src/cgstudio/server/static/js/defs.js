/* Parameter definitions (ranges follow cgstudio.settings) and what each guard warning means. */

const CACHE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1'];
export const LOAD_FIELDS = [
  { key: 'n_ctx', label: 'Context length', type: 'int', min: 16, max: 1048576, help: 'Tokens the model keeps in view (prompt + reply). More needs more memory; CodeGemma was trained on 8192.', flag: '--ctx-size' },
  { key: 'n_gpu_layers', label: 'GPU offload (layers)', type: 'int', min: -1, max: 1000, help: 'Layers on the GPU: 0 = CPU only, -1 = all. Needs a GPU build of llama.cpp.', flag: '--n-gpu-layers' },
  { key: 'n_threads', label: 'CPU threads', type: 'int', min: 1, max: 1024, optional: true, placeholder: 'auto', help: 'Threads for evaluation; empty = the physical cores.', flag: '--threads' },
  { key: 'n_batch', label: 'Evaluation batch size', type: 'int', min: 1, max: 65536, help: 'Prompt tokens evaluated per step: larger is faster and uses more memory.', flag: '--batch-size' },
  { key: 'rope_freq_base', label: 'RoPE base', type: 'float', min: 0.001, max: 1e9, optional: true, placeholder: 'auto', help: 'RoPE frequency base; empty = from the model file. Change it only to stretch the context.', flag: '--rope-freq-base' },
  { key: 'rope_freq_scale', label: 'RoPE scale', type: 'float', min: 0.001, max: 100, optional: true, placeholder: 'auto', help: 'RoPE frequency scale; below 1 stretches the context (0.5 = twice as long); empty = from the model file.', flag: '--rope-freq-scale' },
  { key: 'offload_kqv', label: 'Offload KV cache to GPU', type: 'bool', help: 'Keep the attention cache in GPU memory: faster, uses VRAM. Off:', flag: '--no-kv-offload' },
  { key: 'use_mlock', label: 'Keep model in memory', type: 'bool', help: 'Lock the weights in RAM (mlock) so the OS never swaps them out.', flag: '--mlock' },
  { key: 'use_mmap', label: 'Try mmap()', type: 'bool', help: 'Map the file instead of reading it: faster loads, shared page cache. Off:', flag: '--no-mmap' },
  { key: 'seed', label: 'Seed', type: 'int', min: 0, max: 4294967295, optional: true, placeholder: 'random', help: 'Default seed for requests that send none; empty = random.', flag: '--seed' },
  { key: 'flash_attn', label: 'Flash attention', type: 'bool', help: 'Faster attention with less memory; a quantized V cache needs it.', flag: '--flash-attn' },
  { key: 'cache_type_k', label: 'K cache type', type: 'select', options: CACHE_TYPES, help: 'Precision of the K cache; q8_0 / q4_0 save memory at a small cost in quality.', flag: '--cache-type-k' },
  { key: 'cache_type_v', label: 'V cache type', type: 'select', options: CACHE_TYPES, help: 'Precision of the V cache; quantized types need flash attention.', flag: '--cache-type-v' },
];
export const SAMPLING_FIELDS = [
  { key: 'temperature', label: 'Temperature', type: 'float', min: 0, max: 5, step: 0.05, slider: [0, 2], help: 'Randomness: 0 = greedy (always the likeliest token); 0.2 suits code.' },
  { key: 'top_k', label: 'Top-k', type: 'int', min: 0, max: 1000000, slider: [0, 100], help: 'Sample among the k likeliest tokens; 0 = off.' },
  { key: 'top_p', label: 'Top-p', type: 'float', min: 0.01, max: 1, step: 0.01, slider: [0.01, 1], help: 'Nucleus sampling: the fewest tokens whose probabilities add up to p.' },
  { key: 'min_p', label: 'Min-p', type: 'float', min: 0, max: 1, step: 0.01, slider: [0, 1], help: 'Drop tokens less likely than min-p times the likeliest one.' },
  { key: 'repeat_penalty', label: 'Repeat penalty', type: 'float', min: 0.01, max: 10, step: 0.01, slider: [0.8, 1.5], help: '1.0 = off. Above 1 discourages repeats, which often harms code.' },
  { key: 'max_tokens', label: 'Max tokens', type: 'int', min: 1, max: 1048576, help: 'Most tokens per reply or completion.' },
  { key: 'stop', label: 'Stop strings', type: 'lines', help: 'One per line; generation stops before any of them. Write \\n for a new line.' },
  { key: 'seed', label: 'Seed', type: 'int', min: 0, max: 4294967295, optional: true, placeholder: 'random', help: 'Same seed and settings give the same output; empty = random.' },
];
export const SAMPLING_DEFAULTS = { temperature: 0.2, top_k: 40, top_p: 0.95, min_p: 0.05, repeat_penalty: 1.0, max_tokens: 256, stop: [], seed: null };
export const GUARD_FIELDS = [
  { key: 'repetition', label: 'Repetition guard', type: 'bool', help: 'Stop loops and garbage (stop reason "repetition").' },
  { key: 'repetition_min_lines', label: 'Identical lines in a row', type: 'int', min: 2, max: 10000, help: 'Identical code lines in a row that count as a loop.' },
  { key: 'repetition_block_repeats', label: 'Block repeats', type: 'int', min: 2, max: 10000, help: 'Copies of a multi-line block (digits normalised) that count as a loop.' },
  { key: 'repetition_shape_lines', label: 'Same-shape lines', type: 'int', min: 2, max: 10000, help: 'Lines of one shape (digits normalised) in a row that count as a loop.' },
  { key: 'fim_stop_at_suffix', label: 'Stop FIM at the suffix', type: 'bool', help: 'Stop when a completion starts repeating the text after the cursor.' },
  { key: 'fim_single_line', label: 'Single-line FIM', type: 'bool', help: 'A completion returns at most one line.' },
  { key: 'fim_block_end', label: 'Stop FIM at block end', type: 'bool', help: 'Stop at the end of the block the cursor is in (a dedent; in brace languages the closing brace).' },
  { key: 'fim_line_end', label: 'Mid-line: this line only', type: 'bool', help: 'With text on both sides of the cursor, complete that line only.' },
  { key: 'fim_bracket_overlap', label: 'No duplicated closers', type: 'bool', help: 'End before a closing bracket or quote the text after the cursor already has.' },
  { key: 'fim_token_healing', label: 'Token healing', type: 'bool', help: 'Back the prompt up to the last token boundary, so a completion after "return " starts without a doubled space.' },
  { key: 'fim_cursor_line_in_middle', label: 'Cursor line after middle token', type: 'bool', help: 'Send the cursor line after the FIM middle token (llama.vim layout): typing on a line only appends to the prompt, so keystrokes reuse the cached suffix.' },
  { key: 'fim_prefix_share', label: 'FIM prefix share', type: 'float', min: 0.05, max: 0.95, step: 0.05, slider: [0.05, 0.95], help: 'Share of the prompt budget kept for the text before the cursor when the prompt is trimmed.' },
  { key: 'strict', label: 'Strict variant check', type: 'bool', help: 'Refuse (HTTP 400) instead of warning when the model variant does not fit the task.' },
];
export const GUARD_DEFAULTS = { repetition: true, repetition_min_lines: 8, repetition_block_repeats: 12, repetition_shape_lines: 40,
  fim_stop_at_suffix: true, fim_single_line: false, fim_block_end: true, fim_line_end: true, fim_bracket_overlap: true,
  fim_token_healing: true, fim_cursor_line_in_middle: true, fim_prefix_share: 0.75, strict: false };
export const GUARDS_OFF = { repetition: false, fim_stop_at_suffix: false, fim_single_line: false, fim_block_end: false,
  fim_line_end: false, fim_bracket_overlap: false, fim_token_healing: false, strict: false };
export const WARNING_INFO = {
  empty_output: { label: 'Empty output', fix: 'Check the stop strings and max tokens; for chat pick an instruction-tuned model, for completion a FIM model.' },
  repetition: { label: 'Repetition stopped', fix: 'The reply looped and was cut. Lower the temperature a little, shorten max tokens, or rephrase the request.' },
  variant_mismatch: { label: 'Variant mismatch', fix: 'Use an instruction-tuned (-it) model for chat and a pretrained FIM model for code completion.' },
  prompt_truncated: { label: 'Prompt truncated', fix: 'The prompt did not fit: raise Context length (Load tab), lower max tokens, or send fewer context files.' },
};
