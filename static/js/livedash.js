// Shared page state and a tiny event bus. stream.js (the SSE stream), control.js
// (the WebSocket), charts.js and notifications.js each own one part of the page
// and talk through this; format.js holds the formatting helpers.
// Every text the page shows goes through Django's JavaScript catalogue
// (gettext, ngettext, interpolate: /i18n/js/, loaded before this file).
(function () {
  "use strict";
  const configNode = document.getElementById("livedash-config");
  const config = configNode ? JSON.parse(configNode.textContent) : {};
  const handlers = {};
  const lang = document.documentElement.lang || "en";
  // Info and success toasts go away by themselves; warnings and errors stay until closed.
  const TOAST_MS = 8000;
  const LEVEL_WORDS = {
    info: gettext("Info"),
    success: gettext("Success"),
    warning: gettext("Warning"),
    error: gettext("Error"),
  };
  const LEVEL_ICONS = { info: "ℹ", success: "✓", warning: "⚠", error: "✕" };
  // What notify() accepts; checked again here for rows written around it.
  // http(s) URLs and paths on this site only. Browsers drop tabs and newlines from a
  // URL before reading it, so "/\t/evil.com" would open //evil.com: no whitespace or
  // control character anywhere, and a path never starts with a second slash or backslash.
  const SAFE_LINK = /^(?:https?:\/\/|\/(?![\/\\]))[^\x00-\x20\x7f]*$/i;

  function on(type, handler) {
    (handlers[type] = handlers[type] || []).push(handler);
  }

  function emit(type, payload) {
    for (const handler of handlers[type] || []) {
      try {
        handler(payload);
      } catch (err) {
        console.error("livedash handler for", type, "failed:", err);
      }
    }
  }

  // The words of the states a status indicator can be in (data-state), translated once.
  const STATE_WORDS = {
    connecting: gettext("connecting"),
    connected: gettext("connected"),
    reconnecting: gettext("reconnecting"),
    offline: gettext("offline"),
    stale: gettext("no recent data"),
    paused: gettext("paused"),
  };

  function setStatus(elementId, state, detail) {
    const node = document.getElementById(elementId);
    if (!node) return;
    node.dataset.state = state;
    const detailNode = node.querySelector(".detail");
    const text = detail || STATE_WORDS[state] || state;
    if (detailNode && detailNode.textContent !== text) detailNode.textContent = text;
  }

  function levelWord(level) {
    return LEVEL_WORDS[level] || LEVEL_WORDS.info;
  }

  function safeLink(link) {
    return typeof link === "string" && SAFE_LINK.test(link) ? link : null;
  }

  function dismiss(node) {
    node.classList.add("leaving");
    setTimeout(() => node.remove(), 400);
  }

  // A toast: the level as a word and an icon (never colour alone), a close button,
  // and the notification's link. Errors and warnings stay until closed.
  function toast(title, body, level, link) {
    const box = document.getElementById("toasts");
    if (!box) return null;
    level = LEVEL_WORDS[level] ? level : "info";
    const node = document.createElement("div");
    node.className = "toast level-" + level;
    node.setAttribute("role", level === "error" || level === "warning" ? "alert" : "status");
    const word = document.createElement("span");
    word.className = "level-word";
    word.textContent = LEVEL_ICONS[level] + " " + levelWord(level);
    const strong = document.createElement("strong");
    strong.className = "toast-title";
    strong.textContent = title;
    node.append(word, strong);
    if (body) {
      const p = document.createElement("p");
      p.textContent = body;
      node.appendChild(p);
    }
    const href = safeLink(link);
    if (href) {
      const a = document.createElement("a");
      a.className = "link";
      a.href = href;
      a.textContent = gettext("Open");
      node.appendChild(a);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "icon-button toast-close";
    close.setAttribute("aria-label", gettext("Close"));
    close.textContent = "×";
    close.addEventListener("click", () => dismiss(node));
    node.appendChild(close);
    box.appendChild(node);
    if (level === "info" || level === "success") setTimeout(() => dismiss(node), TOAST_MS);
    return node;
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // A call to one of livedash's JSON APIs with the session: never throws for an HTTP
  // error, the caller reads `ok`, `status` and the answer's `body` (its `error` code).
  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, body: answer };
  }

  window.livedash = { config, lang, on, emit, setStatus, toast, levelWord, safeLink, csrfToken, api };
})();
