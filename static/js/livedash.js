// Shared page state and a tiny event bus. charts.js, control.js and
// notifications.js each own one part of the page and talk through this.
(function () {
  "use strict";
  const configNode = document.getElementById("livedash-config");
  const config = configNode ? JSON.parse(configNode.textContent) : {};
  const handlers = {};

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

  function setStatus(elementId, state, detail) {
    const node = document.getElementById(elementId);
    if (!node) return;
    node.dataset.state = state;
    const detailNode = node.querySelector(".detail");
    if (detailNode) detailNode.textContent = detail || state;
  }

  function formatAge(seconds) {
    if (seconds < 1) return "just now";
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    return Math.floor(seconds / 3600) + " h ago";
  }

  function toast(title, body, level) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const node = document.createElement("div");
    node.className = "toast level-" + (level || "info");
    const strong = document.createElement("strong");
    strong.textContent = title;
    node.appendChild(strong);
    if (body) {
      const p = document.createElement("p");
      p.textContent = body;
      node.appendChild(p);
    }
    box.appendChild(node);
    setTimeout(() => node.classList.add("leaving"), 5500);
    setTimeout(() => node.remove(), 6000);
  }

  window.livedash = { config, on, emit, setStatus, formatAge, toast };
})();
