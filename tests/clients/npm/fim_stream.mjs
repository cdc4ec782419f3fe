// Drives @continuedev/openai-adapters' fimStream, as Continue's autocomplete calls it.
// usage: node fim_stream.mjs INSTALL_DIR API_BASE MODEL PREFIX SUFFIX MAX_TOKENS
// prints one JSON line: {"text": ..., "chunks": N}
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [installDir, apiBase, model, prefix, suffix, maxTokens] = process.argv.slice(2);
const entry = join(installDir, "node_modules", "@continuedev", "openai-adapters", "dist", "index.js");
const { constructLlmApi } = await import(pathToFileURL(entry).href);

const api = constructLlmApi({ provider: "openai", apiBase, apiKey: "unused" });
let text = "";
let chunks = 0;
for await (const chunk of api.fimStream(
  { model, prompt: prefix, suffix, max_tokens: Number(maxTokens), temperature: 0, stream: true },
  new AbortController().signal,
)) {
  chunks += 1;
  text += chunk.choices[0]?.delta?.content ?? "";
}
console.log(JSON.stringify({ text, chunks }));
