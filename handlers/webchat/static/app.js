"use strict";
// The web chat page: pick a user, pick a conversation, talk. Live events come over one
// EventSource per conversation; sending and clicking are plain JSON POSTs.
(() => {
  const { el, postElement, pendingElement } = window.deskmateRender;
  const $ = (id) => document.getElementById(id);
  const state = {
    users: [], channels: [], user: null, channel: null, source: null,
    shown: new Map(), pending: new Map(), loading: false, buffered: [],
  };

  // Signed in (off loopback), every state change carries the session's CSRF token, which the
  // server also put in a cookie this page can read.
  function csrfToken() {
    const found = document.cookie.split("; ").find((c) => c.startsWith("deskmate_csrf="));
    return found ? decodeURIComponent(found.slice("deskmate_csrf=".length)) : null;
  }

  async function api(path, options = {}) {
    const headers = options.body ? { "Content-Type": "application/json" } : {};
    const token = csrfToken();
    if (token && options.method && options.method !== "GET") headers["X-CSRF-Token"] = token;
    const response = await fetch(`/webchat/api/${path}`, { ...options, headers });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
    return body;
  }
  const send = (path, data) => api(path, { method: "POST", body: JSON.stringify(data) });

  let toastTimer = null;
  function toast(text, isError = false) {
    const box = $("toast");
    box.textContent = text;
    box.classList.toggle("error", isError);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  // --- who and where --------------------------------------------------------------------

  function showUser() {
    const tags = $("departments");
    tags.replaceChildren();
    const user = state.user;
    if (user.super_user) tags.append(el("span", "tag super", "super user"));
    for (const d of user.departments) tags.append(el("span", "tag", d));
    if (!user.super_user && !user.departments.length) tags.append(el("span", "tag", "public only"));
  }

  function showChannels() {
    const list = $("channels");
    list.replaceChildren();
    for (const channel of state.channels) {
      const button = el("button", "conversation");
      button.type = "button";
      button.dataset.channel = channel.name;
      button.append(el("span", "hash", "#"), el("span", null, channel.name));
      const cleared = channel.public ? "public" : channel.departments.join(", ");
      if (cleared) button.append(el("span", "cleared", cleared));
      const item = el("li");
      item.append(button);
      list.append(item);
    }
  }

  function channelInfo(name) {
    return state.channels.find((c) => c.name === name);
  }

  function describe() {
    const channel = state.channel && channelInfo(state.channel);
    for (const button of document.querySelectorAll(".conversation")) {
      button.classList.toggle("active", button.dataset.channel === (state.channel || ""));
    }
    if (!channel) {
      $("title").textContent = "deskmate";
      $("subtitle").textContent = "Direct message · answers from every document your " +
        "departments may read, and from what deskmate remembers about you.";
      $("text").placeholder = "Ask deskmate… (try “remember that I …” or “help”)";
      return;
    }
    const cleared = channel.public ? "public documents" :
      `${channel.departments.join(", ") || "no department"} + public documents`;
    $("title").textContent = `#${channel.name}`;
    $("subtitle").textContent = `Channel · cleared for ${cleared}. Everyone here sees the ` +
      "answers; mention @deskmate to ask.";
    $("text").placeholder = `Message #${channel.name} — “@deskmate …” to ask`;
  }

  function choose(channel) {
    state.channel = channel || null;
    localStorage.setItem("deskmate.channel", state.channel || "");
    describe();
    connect();
  }

  // --- the conversation -----------------------------------------------------------------

  const list = () => $("messages");
  const scrollDown = () => { list().scrollTop = list().scrollHeight; };
  const handlers = { rate, action };

  function show(post) {
    list().querySelector(".empty")?.remove();
    const existing = state.shown.get(post.id);
    const node = postElement(post, handlers);
    if (existing) existing.replaceWith(node);
    else list().append(node);
    state.shown.set(post.id, node);
    if (post.reply_to && state.pending.has(post.reply_to)) {
      state.pending.get(post.reply_to).remove();
      state.pending.delete(post.reply_to);
    }
    scrollDown();
  }

  function pending(replyTo) {
    if (!state.pending.has(replyTo)) {
      const node = pendingElement(replyTo);
      state.pending.set(replyTo, node);
      list().append(node);
    }
    return state.pending.get(replyTo);
  }

  function apply(name, data) {
    if (name === "post" || name === "update") return show(data);
    if (name === "delta") {
      pending(data.reply_to).appendText(data.text);
      return scrollDown();
    }
    if (name === "error") {
      const node = pending(data.reply_to);
      node.classList.add("failed");
      node.appendText(data.text);
    }
  }

  function connect() {
    if (state.source) state.source.close();
    state.shown.clear();
    state.pending.clear();
    list().replaceChildren();
    const params = new URLSearchParams({ user: state.user.email });
    if (state.channel) params.set("channel", state.channel);
    const source = new EventSource(`/webchat/api/stream?${params}`);
    state.source = source;
    source.addEventListener("ready", () => load(source, params));
    for (const name of ["post", "update", "delta", "error"]) {
      source.addEventListener(name, (event) => {
        if (source !== state.source) return;
        const data = JSON.parse(event.data);
        if (state.loading) state.buffered.push([name, data]);
        else apply(name, data);
      });
    }
    source.onerror = () => { $("status").hidden = false; $("status").textContent = "reconnecting…"; };
    source.onopen = () => { $("status").hidden = true; };
  }

  // Questions about handbooks this person may read (the server chooses them), so a
  // suggestion is never one their access cannot answer.
  async function suggestionHint() {
    const { suggestions } = await api(`suggestions?user=${encodeURIComponent(state.user.email)}`)
      .catch(() => ({ suggestions: [] }));
    const tried = suggestions.map((q) => `“${q}”`).join(" or ");
    return tried ? `Try ${tried} Answers cite their sources.`
      : "Ask about your handbooks. Answers cite their sources.";
  }

  // On every (re)connection: what was said before, then what arrived meanwhile.
  async function load(source, params) {
    state.loading = true;
    try {
      const { posts } = await api(`history?${params}`);
      if (source !== state.source) return;
      state.shown.clear();
      list().replaceChildren();
      for (const post of posts) show(post);
      list().append(...state.pending.values()); // answers still being written go last
      if (!posts.length) list().prepend(el("p", "empty", state.channel
        ? "No messages here yet. Say hello, or ask “@deskmate …”."
        : await suggestionHint()));
    } catch (error) {
      toast(error.message, true);
    } finally {
      state.loading = false;
      const waiting = state.buffered.splice(0);
      for (const [name, data] of waiting) apply(name, data);
      scrollDown();
    }
  }

  async function submit(event) {
    event.preventDefault();
    const box = $("text");
    if (!box.value.trim()) return;
    $("send").disabled = true;
    try {
      const body = { user: state.user.email, text: box.value, channel: state.channel };
      const { post, answering } = await send("messages", body);
      box.value = "";
      show(post);
      if (answering) pending(post.id);
      scrollDown();
    } catch (error) {
      toast(error.message, true);
    } finally {
      $("send").disabled = false;
      box.focus();
    }
  }

  async function rate(post, rating, row) {
    try {
      const value = `${post.feedback}:${rating}`;
      const result = await send("actions", { user: state.user.email, kind: "feedback", value });
      for (const button of row.querySelectorAll("button")) {
        button.classList.toggle("chosen", button.dataset.rating === rating);
      }
      toast(result.text);
    } catch (error) {
      toast(error.message, true);
    }
  }

  // A button on a channel post (e.g. an alert's Acknowledge): the server checks that the post
  // carries it, dispatches the click, and may send back the post's new content.
  async function action(post, pressed, element) {
    element.disabled = true;
    try {
      const result = await send("actions", {
        user: state.user.email, kind: pressed.kind, value: pressed.value,
        post: Number(post.id.slice(1)),
      });
      if (result.post) show(result.post);
      toast(result.text);
    } catch (error) {
      element.disabled = false;
      toast(error.message, true);
    }
  }

  // --- start ----------------------------------------------------------------------------

  async function start() {
    const [info, users, channels] = await Promise.all([api("info"), api("users"), api("channels")]);
    $("mode").textContent = info.llm === "claude" ? "Claude" : "offline mode";
    $("mode").title = info.llm === "claude" ? info.model : "No ANTHROPIC_API_KEY: answers " +
      "quote the documents found";
    state.users = users.users;
    state.channels = channels.channels;
    const picker = $("user");
    for (const user of state.users) {
      const option = el("option", null, user.name);
      option.value = user.email;
      picker.append(option);
    }
    if (!state.users.length) return toast("The directory is empty: run `deskmate demo`.", true);
    const saved = localStorage.getItem("deskmate.user");
    // First visit: the person who may read the most, so the suggested questions have answers.
    const widest = [...state.users].sort((a, b) =>
      Number(b.super_user) - Number(a.super_user) || b.departments.length - a.departments.length)[0];
    picker.value = state.users.some((u) => u.email === saved) ? saved : widest.email;
    state.user = state.users.find((u) => u.email === picker.value);
    showUser();
    showChannels();
    const channel = localStorage.getItem("deskmate.channel");
    state.channel = channelInfo(channel) ? channel : null;
    picker.addEventListener("change", () => {
      state.user = state.users.find((u) => u.email === picker.value);
      localStorage.setItem("deskmate.user", state.user.email);
      showUser();
      connect();
    });
    document.querySelector("nav").addEventListener("click", (event) => {
      const button = event.target.closest(".conversation");
      if (button) choose(button.dataset.channel);
    });
    $("composer").addEventListener("submit", submit);
    $("text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) submit(event);
    });
    describe();
    connect();
    document.body.dataset.ready = "true";
  }

  start().catch((error) => toast(error.message, true));
})();
