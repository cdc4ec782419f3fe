/* What a request is doing before its first token: queued, loading the model, evaluating the prompt.

The server answers GET /cgstudio/progress with this client's running requests (by X-Client-Id):
{ jobs: [{ model, phase: queued|loading|evaluating|generating, prompt_tokens, phase_s, ahead }] }.
Until its first answer the page says what it knows: a model that is not in memory loads first. */
import { api } from './api.js';
import { fmt } from './dom.js';

const POLL_MS = 250;
const count = (n) => Number(n).toLocaleString('en-US');

/** One line for a job's phase, e.g. "Loading qwen… 3.2 s" or "Evaluating prompt (1,948 tokens)…". */
export function phaseText(job, seconds) {
  const t = seconds == null ? '' : ` ${fmt(seconds, 1)} s`;
  switch (job.phase) {
    case 'queued': return `Waiting for a free slot${job.ahead ? ` (${job.ahead} ahead)` : ''}…${t}`;
    case 'loading': return `Loading ${job.model}…${t}`;
    case 'evaluating': return job.prompt_tokens != null
      ? `Evaluating prompt (${count(job.prompt_tokens)} tokens)…${t}` : `Evaluating prompt…${t}`;
    default: return null;  // generating: the first token is on its way
  }
}

/**
 * Show the phases of the request for ``model`` until ``stop()`` is called (at the first token).
 * ``show(text, phase)`` gets each line; ``loaded`` is what the page knew when it sent the request.
 */
export function watchProgress(model, loaded, show) {
  const t0 = performance.now();
  let job = { model, phase: loaded ? 'evaluating' : 'loading', prompt_tokens: null }, since = t0, stopped = false, timer = null;
  const paint = () => { if (!stopped) show(phaseText(job, (performance.now() - since) / 1000), job.phase); };
  const poll = async () => {
    try {
      const j = await (await api('/cgstudio/progress')).json();
      const mine = (j.jobs || []).find((x) => x.model === model);
      if (mine && !stopped) {
        if (mine.phase !== job.phase) since = performance.now() - (mine.phase_s || 0) * 1000;
        job = mine;
      }
    } catch { /* an older server has no progress route: the first guess stays, with its timer */ }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
    paint();
  };
  paint();
  const ticker = setInterval(paint, 100);
  timer = setTimeout(poll, 50);
  return () => { stopped = true; clearTimeout(timer); clearInterval(ticker); show(null, null); };
}
