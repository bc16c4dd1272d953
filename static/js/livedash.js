// Shared page state and a tiny event bus. stream.js (the SSE stream), control.js
// (the WebSocket), charts.js and notifications.js each own one part of the page
// and talk through this; format.js holds the formatting helpers.
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

  window.livedash = { config, on, emit, setStatus, toast };
})();
