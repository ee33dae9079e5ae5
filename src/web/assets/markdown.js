// A tiny, safe Markdown subset for model answers: paragraphs, line breaks, `code`, fenced code blocks, **bold**
// and [links](url) whose URL is http(s). Everything becomes DOM nodes with text set through textContent, so
// markup in an answer (a script tag, an onerror attribute, a javascript: link) stays visible text.

const FENCE = /^```[^\n]*\n([\s\S]*?)(?:\n```|$)/;
const INLINE = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|\[([^\]\n]+)\]\(([^)\s]+)\)/g;

/** The URL when it is an absolute http(s) URL, else null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function appendInline(parent, text) {
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (i > 0) parent.append(document.createElement('br'));
    let last = 0;
    for (const m of line.matchAll(INLINE)) {
      if (m.index > last) parent.append(document.createTextNode(line.slice(last, m.index)));
      if (m[1] !== undefined) {
        const code = document.createElement('code');
        code.textContent = m[1];
        parent.append(code);
      } else if (m[2] !== undefined) {
        const strong = document.createElement('strong');
        strong.textContent = m[2];
        parent.append(strong);
      } else {
        const href = safeUrl(m[4]);
        if (href) {
          const a = document.createElement('a');
          a.textContent = m[3];
          a.href = href;
          a.rel = 'noopener noreferrer';
          a.target = '_blank';
          parent.append(a);
        } else {
          parent.append(document.createTextNode(m[0]));
        }
      }
      last = m.index + m[0].length;
    }
    if (last < line.length) parent.append(document.createTextNode(line.slice(last)));
  });
}

function appendParagraphs(parent, text) {
  for (const block of text.split(/\n{2,}/)) {
    const trimmed = block.replace(/^\n+|\n+$/g, '');
    if (!trimmed) continue;
    const p = document.createElement('p');
    appendInline(p, trimmed);
    parent.append(p);
  }
}

/** Replaces `target`'s children with `text` rendered as the subset above. */
export function renderMarkdown(target, text) {
  const fragment = document.createDocumentFragment();
  let rest = String(text || '');
  while (rest) {
    const start = rest.search(/^```/m);
    if (start < 0) {
      appendParagraphs(fragment, rest);
      break;
    }
    appendParagraphs(fragment, rest.slice(0, start));
    const m = rest.slice(start).match(FENCE);
    if (!m) {
      appendParagraphs(fragment, rest.slice(start));
      break;
    }
    const pre = document.createElement('pre');
    const code = document.createElement('code');
    code.textContent = m[1];
    pre.append(code);
    fragment.append(pre);
    rest = rest.slice(start + m[0].length);
  }
  target.replaceChildren(fragment);
}
