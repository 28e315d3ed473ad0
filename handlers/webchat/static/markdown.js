"use strict";
// A small Markdown renderer for answers, documents and scheduled messages. Every piece of text
// is HTML-escaped first; only then are a few constructs recognised (bold, italics, code, links,
// lists, quotes, headings, citations [1]). No HTML from an answer or a document survives as HTML.
(() => {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
  // Links may only go to web pages and mail addresses: no javascript:, data: or relative URLs.
  const SAFE_URL = /^(https?:\/\/|mailto:)/i;
  const SLOT = /\u0000(\d+)\u0000/g;

  function emphasis(html) {
    return html
      .replace(/\*\*(?=\S)([^*]*?\S)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*\w])\*(?=\S)([^*]*?\S)\*(?![*\w])/g, "$1<em>$2</em>")
      .replace(/(^|[^_\w])_(?=\S)([^_]*?\S)_(?![_\w])/g, "$1<em>$2</em>")
      .replace(/\[(\d{1,2})\](?!\()/g, '<sup class="cite">$1</sup>');
  }

  // One line of text → HTML. Code spans and links are set aside first so emphasis never
  // reaches into them, then put back.
  function inline(raw) {
    const slots = [];
    const hold = (html) => `\u0000${slots.push(html) - 1}\u0000`;
    let html = escapeHtml(raw)
      .replace(/`([^`]+)`/g, (_, code) => hold(`<code>${code}</code>`))
      .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (whole, label, href) =>
        SAFE_URL.test(href)
          ? hold(`<a href="${href}" target="_blank" rel="noopener noreferrer">${emphasis(label)}</a>`)
          : whole);
    html = emphasis(html);
    for (let pass = 0; pass < 3 && html.includes("\u0000"); pass++) {
      html = html.replace(SLOT, (_, i) => slots[Number(i)] ?? "");
    }
    return html;
  }

  const FENCE = /^\s*```/;
  const QUOTE = /^\s*>/;
  const BULLET = /^\s*[-*•]\s+/;
  const NUMBERED = /^\s*\d{1,3}[.)]\s+/;
  const HEADING = /^\s*#{1,6}\s+/;
  const startsBlock = (line) =>
    FENCE.test(line) || QUOTE.test(line) || BULLET.test(line) || NUMBERED.test(line) ||
    HEADING.test(line);

  function take(lines, start, test) {
    let end = start;
    while (end < lines.length && test(lines[end])) end++;
    return [lines.slice(start, end), end];
  }

  function blocks(lines, depth) {
    const out = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let group;
      if (!line.trim()) {
        i++;
      } else if (FENCE.test(line)) {
        [group, i] = take(lines, i + 1, (l) => !FENCE.test(l));
        i++; // the closing fence
        out.push(`<pre><code>${escapeHtml(group.join("\n"))}</code></pre>`);
      } else if (QUOTE.test(line) && depth < 4) {
        [group, i] = take(lines, i, (l) => QUOTE.test(l));
        out.push(`<blockquote>${blocks(group.map((l) => l.replace(/^\s*> ?/, "")), depth + 1)}</blockquote>`);
      } else if (BULLET.test(line)) {
        [group, i] = take(lines, i, (l) => BULLET.test(l));
        out.push(`<ul>${group.map((l) => `<li>${inline(l.replace(BULLET, ""))}</li>`).join("")}</ul>`);
      } else if (NUMBERED.test(line)) {
        [group, i] = take(lines, i, (l) => NUMBERED.test(l));
        out.push(`<ol>${group.map((l) => `<li>${inline(l.replace(NUMBERED, ""))}</li>`).join("")}</ol>`);
      } else if (HEADING.test(line)) {
        out.push(`<h4>${inline(line.replace(HEADING, ""))}</h4>`);
        i++;
      } else {
        // The first line always goes in, so a line no other rule takes cannot stall the loop.
        [group, i] = take(lines, i + 1, (l) => l.trim() !== "" && !startsBlock(l));
        out.push(`<p>${[line, ...group].map(inline).join("<br>")}</p>`);
      }
    }
    return out.join("");
  }

  /** Markdown text → safe HTML. */
  function renderMarkdown(text) {
    const clean = String(text ?? "").replace(/\u0000/g, "").replace(/\r\n?/g, "\n");
    return blocks(clean.split("\n"), 0);
  }

  window.deskmateMarkdown = { renderMarkdown, escapeHtml };
})();
