/* Markdown: the subset models write (fences, headings, lists, quotes, tables), rendered to HTML. */
import { esc } from './dom.js';
import { highlight, langOf } from './highlight.js';

const FENCE_RE = /^\s*(`{3,}|~{3,})\s*([^\s`]*)/;
const LIST_RE = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const HR_RE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const TABLE_SEP_RE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
const indentOf = (line) => line.length - line.trimStart().length;
const isTableAt = (lines, i) => lines[i].includes('|') && i + 1 < lines.length && TABLE_SEP_RE.test(lines[i + 1]);
function startsBlock(lines, i) {
  const l = lines[i];
  return FENCE_RE.test(l) || /^#{1,6}\s/.test(l) || HR_RE.test(l) || /^\s*>/.test(l) || LIST_RE.test(l) || isTableAt(lines, i);
}
function inline(text) {
  const codes = [];
  let s = text.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (_, ticks, c) => { codes.push(c.trim() ? c.replace(/^ (.*) $/, '$1') : c); return `\u0000${codes.length - 1}\u0000`; });
  s = esc(s)
    .replace(/\[([^\]]+)\]\(((?:https?:\/\/|mailto:)[^\s)]+)\)/g, '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>')
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/(^|[^*\w])\*(?=\S)([^*]*?\S)\*(?!\*)/g, '$1<em>$2</em>')
    .replace(/(^|[^_\w])_(?=\S)([^_]*?\S)_(?![_\w])/g, '$1<em>$2</em>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, n) => `<code>${esc(codes[+n])}</code>`);
}
function codeBlock(code, lang) {
  return `<div class="codeblock"><div class="codeblock-head"><span>${esc(lang || 'text')}</span>` +
    `<button type="button" class="btn small quiet copy-code" aria-label="Copy code">Copy</button></div>` +
    `<pre><code>${highlight(code, langOf(lang))}</code></pre></div>`;
}
function listBlock(lines, i) {
  const first = LIST_RE.exec(lines[i]), base = first[1].length, ordered = /\d/.test(first[2]);
  const items = []; let cur = null, contentIndent = 0;
  while (i < lines.length) {
    const line = lines[i], m = LIST_RE.exec(line);
    if (m && m[1].length <= base + 1) {
      if (/\d/.test(m[2]) !== ordered) break;
      cur = [m[3]]; items.push(cur); contentIndent = m[1].length + m[2].length + 1; i++; continue;
    }
    if (!line.trim()) {
      const next = lines[i + 1];
      if (next !== undefined && next.trim() && (indentOf(next) > base || (LIST_RE.test(next) && indentOf(next) <= base + 1))) { cur.push(''); i++; continue; }
      break;
    }
    if (indentOf(line) > base) { cur.push(line.slice(Math.min(indentOf(line), contentIndent))); i++; continue; }
    if (startsBlock(lines, i)) break;
    cur.push(line); i++;   // lazy continuation of the item's paragraph
  }
  const tag = ordered ? 'ol' : 'ul', start = ordered && parseInt(first[2], 10) !== 1 ? ` start="${parseInt(first[2], 10)}"` : '';
  const lis = items.map((it) => `<li>${blocks(it).replace(/^<p>([\s\S]*?)<\/p>/, '$1')}</li>`).join('');
  return [`<${tag}${start}>${lis}</${tag}>`, i];
}
function tableBlock(lines, i) {
  const cells = (row) => row.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => inline(c.trim()));
  const head = cells(lines[i]); i += 2;
  const rows = [];
  while (i < lines.length && lines[i].includes('|') && lines[i].trim()) rows.push(cells(lines[i++]));
  const tr = (cs, tag) => `<tr>${cs.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
  return [`<table><thead>${tr(head, 'th')}</thead><tbody>${rows.map((r) => tr(r, 'td')).join('')}</tbody></table>`, i];
}
function blocks(lines) {
  let out = '', i = 0, m;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    if ((m = FENCE_RE.exec(line))) {
      const fence = m[1], body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence); i++) body.push(lines[i]);
      i++;
      out += codeBlock(body.join('\n'), m[2]);
    } else if ((m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
      const n = Math.min(6, m[1].length + 2); out += `<h${n}>${inline(m[2])}</h${n}>`; i++;
    } else if (HR_RE.test(line)) { out += '<hr>'; i++; }
    else if (/^\s*>/.test(line)) {
      const q = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) q.push(lines[i++].replace(/^\s*> ?/, ''));
      out += `<blockquote>${blocks(q)}</blockquote>`;
    } else if (isTableAt(lines, i)) { let html; [html, i] = tableBlock(lines, i); out += html; }
    else if (LIST_RE.test(line)) { let html; [html, i] = listBlock(lines, i); out += html; }
    else {
      const p = [lines[i++]];
      while (i < lines.length && lines[i].trim() && !startsBlock(lines, i)) p.push(lines[i++]);
      out += `<p>${inline(p.join('\n')).replace(/\n/g, '<br>')}</p>`;
    }
  }
  return out;
}
export const renderMarkdown = (src) => blocks(src.replace(/\r\n?/g, '\n').split('\n'));
