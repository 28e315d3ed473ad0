"use strict";
// Answers, documents and scheduled messages are Markdown, rendered by markdown-it (vendored in
// markdown-it.min.js, see THIRD-PARTY-NOTICES.txt). Raw HTML is off, so an answer's <script> or
// <img onerror> stays text; links may only go to web pages and mail addresses; images are not
// loaded; citations such as [1] become markers.
(() => {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
  // No javascript:, data: or relative URLs: a link Claude or a document writes could otherwise
  // run code on this page or point somewhere the reader cannot see.
  const SAFE_URL = /^(https?:\/\/|mailto:)/i;
  const CITATION = /^\[(\d{1,2})\](?!\()/;

  const md = window.markdownit({ html: false, linkify: false, typographer: false, breaks: true });
  md.validateLink = (url) => SAFE_URL.test(url.trim());
  // An image would be fetched from wherever the text says: a tracking pixel in a document.
  md.disable("image");

  // [1] is a citation, unless it is the label of a link ([1](https://…)).
  md.inline.ruler.before("link", "citation", (state, silent) => {
    if (state.src.charCodeAt(state.pos) !== 0x5b /* [ */) return false;
    const match = CITATION.exec(state.src.slice(state.pos));
    if (!match) return false;
    if (!silent) state.push("citation", "", 0).content = match[1];
    state.pos += match[0].length;
    return true;
  });
  md.renderer.rules.citation = (tokens, i) => `<sup class="cite">${escapeHtml(tokens[i].content)}</sup>`;

  const defaultLinkOpen = md.renderer.rules.link_open ||
    ((tokens, i, options, env, self) => self.renderToken(tokens, i, options));
  md.renderer.rules.link_open = (tokens, i, options, env, self) => {
    tokens[i].attrSet("target", "_blank");
    tokens[i].attrSet("rel", "noopener noreferrer");
    return defaultLinkOpen(tokens, i, options, env, self);
  };

  // Table columns are aligned with a class: the page's Content-Security-Policy forbids inline
  // styles, which is what markdown-it would write.
  for (const cell of ["th_open", "td_open"]) {
    md.renderer.rules[cell] = (tokens, i, options, env, self) => {
      const style = tokens[i].attrGet("style");
      const align = style && /text-align:(left|center|right)/.exec(style);
      if (style) tokens[i].attrs = tokens[i].attrs.filter(([name]) => name !== "style");
      if (align) tokens[i].attrJoin("class", `align-${align[1]}`);
      return self.renderToken(tokens, i, options);
    };
  }

  /** Markdown text → safe HTML. */
  function renderMarkdown(text) {
    return md.render(String(text ?? "").replace(/\u0000/g, ""));
  }

  window.deskmateMarkdown = { renderMarkdown, escapeHtml };
})();
