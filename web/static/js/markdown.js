// A safe subset of Markdown, rendered to DOM nodes: headings, paragraphs, bullet and
// numbered lists, block quotes, rules, fenced code, and inline **bold**, *italic* /
// _italic_, `code` and [links](https://...). Every piece of text becomes a text node,
// so nothing in the input is ever interpreted as HTML; links keep only http(s) targets.

import { h } from './dom.js';

const INLINE = [
  { kind: 'code', re: /`([^`]+)`/ },
  { kind: 'strong', re: /\*\*(.+?)\*\*|__(.+?)__/ },
  { kind: 'em', re: /\*([^*\s](?:[^*]*[^*\s])?)\*|(?<![\w])_([^_\s](?:[^_]*[^_\s])?)_(?![\w])/ },
  { kind: 'link', re: /\[([^\]]+)\]\(([^)\s]+)\)/ },
];

export function inline(text) {
  const out = [];
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const match = rule.re.exec(rest);
      if (match && (best === null || match.index < best.match.index)) best = { rule, match };
    }
    if (!best) {
      out.push(rest);
      break;
    }
    const { rule, match } = best;
    if (match.index) out.push(rest.slice(0, match.index));
    const inner = match[1] ?? match[2] ?? '';
    if (rule.kind === 'code') out.push(h('code', {}, inner));
    else if (rule.kind === 'strong') out.push(h('strong', {}, inline(inner)));
    else if (rule.kind === 'em') out.push(h('em', {}, inline(inner)));
    else if (/^https?:\/\//i.test(match[2])) {
      out.push(h('a', { href: match[2], rel: 'noopener noreferrer', target: '_blank' }, inline(inner)));
    } else {
      out.push(inline(inner));
    }
    rest = rest.slice(match.index + match[0].length);
  }
  return out;
}

const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;
const RULE = /^\s*([-*_])(\s*\1){2,}\s*$/;
const FENCE = /^\s*(```|~~~)/;

// `headingOffset` shifts heading levels so the text fits under the page's own headings.
export function renderMarkdown(text, { headingOffset = 2 } = {}) {
  const blocks = [];
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let paragraph = [];
  let list = null;
  let quote = null;

  const endParagraph = () => {
    if (paragraph.length) blocks.push(h('p', {}, inline(paragraph.join(' '))));
    paragraph = [];
  };
  const endList = () => {
    list = null;
  };
  const endQuote = () => {
    quote = null;
  };
  const endAll = () => {
    endParagraph();
    endList();
    endQuote();
  };

  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    if (FENCE.test(line)) {
      endAll();
      const fence = line.trim().slice(0, 3);
      const code = [];
      for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence); i += 1) code.push(lines[i]);
      blocks.push(h('pre', {}, h('code', {}, code.join('\n'))));
      continue;
    }
    if (!line.trim()) {
      endAll();
      continue;
    }
    let match = HEADING.exec(line);
    if (match) {
      endAll();
      const level = Math.min(6, match[1].length + headingOffset);
      blocks.push(h(`h${level}`, {}, inline(match[2])));
      continue;
    }
    if (RULE.test(line)) {
      endAll();
      blocks.push(h('hr'));
      continue;
    }
    if (line.startsWith('>')) {
      endParagraph();
      endList();
      if (!quote) {
        quote = h('blockquote');
        blocks.push(quote);
      }
      quote.append(h('p', {}, inline(line.replace(/^>\s?/, ''))));
      continue;
    }
    const bullet = BULLET.exec(line);
    const numbered = bullet ? null : NUMBERED.exec(line);
    if (bullet || numbered) {
      endParagraph();
      endQuote();
      const tag = bullet ? 'ul' : 'ol';
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = h(tag);
        blocks.push(list);
      }
      list.append(h('li', {}, inline((bullet ?? numbered)[1])));
      continue;
    }
    if (list && /^\s+\S/.test(line)) {
      // an indented continuation of the last item
      list.lastElementChild.append(' ', ...inline(line.trim()));
      continue;
    }
    endList();
    endQuote();
    paragraph.push(line.trim());
  }
  endAll();
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks);
  return fragment;
}
