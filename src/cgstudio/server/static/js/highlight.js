/* Syntax highlighter (python, js/ts, c-family, shell) for chat code blocks and the editor. */
import { esc } from './dom.js';

const words = (s) => new Set(s.split(' '));
const KEYWORDS = {
  python: words('and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case'),
  js: words('async await break case catch class const continue debugger default delete do else export extends finally for from function if import in instanceof let new of return static super switch throw try typeof var void while with yield interface type enum implements'),
  c: words('auto break case char const continue default do double else enum extern float for goto if inline int long return short signed sizeof static struct switch typedef union unsigned void volatile while bool class namespace template typename public private protected virtual override new delete using try catch throw func package import var type interface map chan go defer select range fn let mut impl trait pub use mod match loop where crate as in final extends implements'),
  sh: words('if then else elif fi for while do done case esac function in return export local'),
};
const LITERALS = {
  python: words('True False None self cls'), js: words('true false null undefined NaN Infinity this'),
  c: words('true false NULL nullptr nil this self Self'), sh: words('echo cd test exit'),
};
const DEF_WORDS = words('def class function fn func');
const HL_RE = {
  python: /(#[^\n]*)|((?:\b[rRbBfFuU]{1,2})?(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?))|(\b(?:0[xXoObB][\da-fA-F_]+|\d[\d_]*(?:\.[\d_]*)?(?:[eE][+-]?\d+)?j?)\b)|(@[A-Za-z_][\w.]*)|([A-Za-z_]\w*)/g,
  js: /(\/\*[\s\S]*?(?:\*\/|$)|\/\/[^\n]*)|(`(?:\\[\s\S]|[^`\\])*`?|"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?)|(\b(?:0[xXbBoO][\da-fA-F_]+|\d[\d_]*(?:\.[\d_]*)?(?:[eE][+-]?\d+)?n?)\b)|(@[A-Za-z_][\w.]*)|([A-Za-z_$][\w$]*)/g,
  c: /(\/\*[\s\S]*?(?:\*\/|$)|\/\/[^\n]*)|("(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n]){1,8}')|(\b(?:0[xXbBoO][\da-fA-F_]+|\d[\d_]*(?:\.[\d_]*)?(?:[eE][+-]?\d+)?[uUlLfF]*)\b)|(#\s*[a-z]+\b|@[A-Za-z_][\w.]*)|([A-Za-z_]\w*)/g,
  sh: /(#[^\n]*)|("(?:\\.|[^"\\])*"?|'[^']*'?)|(\b\d+\b)|(\$\{?[\w@#?$!*-]+\}?)|([A-Za-z_][\w-]*)/g,
};
const LANG_ALIASES = { py: 'python', python: 'python', python3: 'python', pyi: 'python', js: 'js', javascript: 'js', mjs: 'js', cjs: 'js',
  jsx: 'js', ts: 'js', tsx: 'js', typescript: 'js', json: 'js', c: 'c', h: 'c', cpp: 'c', 'c++': 'c', cc: 'c', hpp: 'c', java: 'c',
  go: 'c', golang: 'c', rs: 'c', rust: 'c', cs: 'c', csharp: 'c', kt: 'c', kotlin: 'c', swift: 'c', scala: 'c',
  sh: 'sh', bash: 'sh', shell: 'sh', zsh: 'sh', console: 'sh' };
export const langOf = (name) => LANG_ALIASES[String(name || '').toLowerCase()] || null;
export const langOfPath = (path) => langOf((/\.([^./]+)$/.exec(path || '') || [])[1]);

export function tokenize(code, lang) {
  const re = HL_RE[lang];
  if (!re) return [{ t: null, s: code }];
  const kw = KEYWORDS[lang], lit = LITERALS[lang], out = [];
  let last = 0, prevWord = '', m;
  re.lastIndex = 0;
  while ((m = re.exec(code))) {
    if (m.index > last) out.push({ t: null, s: code.slice(last, m.index) });
    let t = null;
    if (m[1]) t = 'com'; else if (m[2]) t = 'str'; else if (m[3]) t = 'num'; else if (m[4]) t = 'dec';
    else {
      const w = m[5];
      if (kw.has(w)) t = 'kw';
      else if (lit.has(w)) t = 'lit';
      else if (DEF_WORDS.has(prevWord)) t = 'fn';
      else if (/^\s*\(/.test(code.slice(re.lastIndex, re.lastIndex + 4))) t = 'call';
      else if (lang !== 'sh' && /^[A-Z][a-z0-9]/.test(w)) t = 'type';
    }
    prevWord = m[5] || '';
    out.push({ t, s: m[0] });
    last = re.lastIndex;
  }
  if (last < code.length) out.push({ t: null, s: code.slice(last) });
  return out;
}
/** HTML for tokens; ``insertHtml`` goes in at character offset ``at`` (the editor's ghost text). */
export function renderTokens(tokens, at = -1, insertHtml = '') {
  const span = (t, s) => (!s ? '' : t ? `<span class="tk-${t}">${esc(s)}</span>` : esc(s));
  let html = '', off = 0, done = at < 0;
  for (const { t, s } of tokens) {
    if (!done && at <= off + s.length) {
      html += span(t, s.slice(0, at - off)) + insertHtml + span(t, s.slice(at - off));
      done = true;
    } else html += span(t, s);
    off += s.length;
  }
  return done ? html : html + insertHtml;
}
export const highlight = (code, lang) => renderTokens(tokenize(code, lang));
