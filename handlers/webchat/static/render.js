"use strict";
// Posts → DOM. Text goes in through textContent; only the Markdown renderer (which escapes
// first) produces HTML.
(() => {
  const { renderMarkdown } = window.deskmateMarkdown;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  const initials = (name) =>
    (name || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");

  function clock(iso) {
    const when = new Date(iso);
    return Number.isNaN(when.getTime())
      ? "" : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function meta(post) {
    const line = el("div", "meta");
    line.append(el("span", "name", post.author.name || post.author.email || "someone"));
    line.append(el("time", "time", clock(post.created_at)));
    if (post.ephemeral) line.append(el("span", "badge", "only you can see this"));
    if (post.status === "offline") line.append(el("span", "badge", "offline mode"));
    return line;
  }

  function fields(post) {
    const list = el("dl", "fields");
    for (const [label, value] of post.fields) {
      const item = el("div", "field");
      item.append(el("dt", null, label), el("dd", null, value));
      list.append(item);
    }
    return list;
  }

  // Sources as a compact list under the answer; the passage itself is a tooltip (offline
  // answers already quote it, Claude's answers cite it by number).
  function sources(post) {
    const box = el("div", "sources");
    box.append(el("span", "sources-title", "Sources"));
    const list = el("ol");
    for (const source of post.sources) {
      const item = el("li", "source");
      if (source.excerpt) item.title = source.excerpt;
      if (source.number) item.append(el("span", "num", String(source.number)));
      item.append(el("span", "label", source.label));
      if (source.department) item.append(el("span", "dept", source.department));
      list.append(item);
    }
    box.append(list);
    return box;
  }

  function buttons(post, on) {
    const row = el("div", "actions");
    for (const action of post.actions) {
      const button = el("button", `action ${action.style || ""}`.trim(), action.label);
      button.type = "button";
      button.addEventListener("click", () => on.action(post, action, button));
      row.append(button);
    }
    return row;
  }

  function feedback(post, on) {
    const row = el("div", "feedback");
    for (const [rating, label, title] of [["up", "👍", "Helpful"], ["down", "👎", "Not helpful"]]) {
      const button = el("button", "rate", label);
      button.type = "button";
      button.title = title;
      button.dataset.rating = rating;
      button.setAttribute("aria-label", title);
      button.addEventListener("click", () => on.rate(post, rating, row));
      row.append(button);
    }
    return row;
  }

  /** The element for one post; `on.rate` and `on.action` handle its buttons. */
  function postElement(post, on) {
    const bot = post.author.kind === "bot";
    const card = bot && (post.title || post.fields.length || post.actions.length);
    const node = el("article", `post ${bot ? "bot" : "user"}${card ? " card" : ""}`);
    node.dataset.id = post.id;
    node.append(el("div", "avatar", bot ? "d" : initials(post.author.name)));
    const body = el("div", "body");
    body.append(meta(post));
    if (post.title) body.append(el("div", "card-title", post.title));
    const text = el("div", "text markdown");
    text.innerHTML = renderMarkdown(post.text);
    body.append(text);
    if (post.fields.length) body.append(fields(post));
    if (post.sources.length) body.append(sources(post));
    if (post.actions.length) body.append(buttons(post, on));
    if (post.feedback) body.append(feedback(post, on));
    node.append(body);
    return node;
  }

  /** A bubble that fills in while an answer streams. */
  function pendingElement(replyTo) {
    const node = el("article", "post bot pending");
    node.dataset.pending = replyTo;
    node.append(el("div", "avatar", "d"));
    const body = el("div", "body");
    const line = el("div", "meta");
    line.append(el("span", "name", "deskmate"), el("span", "typing", "is writing…"));
    const text = el("div", "text markdown");
    body.append(line, text);
    node.append(body);
    let raw = "";
    node.appendText = (piece) => {
      raw += piece;
      text.innerHTML = renderMarkdown(raw);
    };
    return node;
  }

  window.deskmateRender = { el, postElement, pendingElement };
})();
