// Firing and silenced alert rules, shared by everyone watching: who acknowledged,
// until when a rule is silenced, and (for those allowed) the buttons to do it.
// State comes in the socket's hello (`alerts`) and in `alert_state` broadcasts.
(function () {
  "use strict";
  const ld = window.livedash;
  const strip = document.getElementById("alerts");
  if (!ld || !strip) return;

  const SILENCE_MINUTES = 60;
  const rules = new Map(); // id -> the rule's state, as the server sent it
  let canManage = false;

  function keep(rule) {
    if (rule.firing || rule.silenced_until) rules.set(rule.id, rule);
    else rules.delete(rule.id);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(label, action, rule, name) {
    const node = element("button", "button small", label);
    node.type = "button";
    node.dataset.action = action;
    node.dataset.rule = rule.id;
    node.setAttribute("aria-label", label + " " + name);
    return node;
  }

  function clock(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString(ld.lang, { hour: "2-digit", minute: "2-digit" });
  }

  function render() {
    const nodes = [...rules.values()].sort((a, b) => a.id - b.id).map((rule) => {
      const row = element("div", "alert level-" + (rule.level || "warning"));
      row.dataset.rule = rule.id;
      row.appendChild(element("strong", "name", rule.name));
      const parts = [];
      if (rule.firing) parts.push(gettext("firing"));
      if (rule.acknowledged_by) parts.push(interpolate(gettext("acknowledged by %s"), [rule.acknowledged_by]));
      if (rule.silenced_until) {
        const until = { time: clock(rule.silenced_until), user: rule.silenced_by };
        parts.push(
          rule.silenced_by
            ? interpolate(gettext("silenced until %(time)s by %(user)s"), until, true)
            : interpolate(gettext("silenced until %(time)s"), until, true),
        );
      }
      row.appendChild(element("span", "state", parts.join(" · ")));
      if (canManage) {
        if (rule.firing && !rule.acknowledged_by) row.appendChild(button(gettext("Acknowledge"), "ack_alert", rule, rule.name));
        if (rule.silenced_until) row.appendChild(button(gettext("Unsilence"), "unsilence_alert", rule, rule.name));
        else row.appendChild(button(gettext("Silence 1 h"), "silence_alert", rule, rule.name));
      }
      return row;
    });
    strip.replaceChildren(...nodes);
    strip.hidden = nodes.length === 0;
  }

  ld.on("ws:hello", (message) => {
    canManage = Boolean(message.can_manage_alerts);
    rules.clear();
    for (const rule of message.alerts || []) keep(rule);
    render();
  });

  ld.on("ws:alert_state", (message) => {
    if (!message.rule || typeof message.rule.id !== "number") return;
    keep(message.rule);
    render();
  });

  strip.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const command = { type: target.dataset.action, rule: Number(target.dataset.rule) };
    if (command.type === "silence_alert") command.minutes = SILENCE_MINUTES;
    const sent = ld.socket && typeof ld.socket.send === "function" && ld.socket.send(command);
    if (!sent) ld.toast(gettext("Not connected"), gettext("Try again once the control channel is back."), "warning");
  });

  // A refusal (say, the rule stopped firing meanwhile) is shown, not swallowed. The
  // server's text is English; the toast says it by code in the page's language.
  ld.on("ws:error", (message) => {
    if (message.id === undefined && ["invalid", "not_found", "forbidden"].includes(message.code) && /rule/.test(message.message)) {
      ld.toast(gettext("Alert not changed"), ld.errorText ? ld.errorText(message.code) : message.message, "warning");
    }
  });
})();

// The maintenance banner (rendered by the page while a window covering one of its
// charts is on): its end in the browser's time zone, and gone once that has passed.
(function () {
  "use strict";
  const ld = window.livedash;
  const banner = document.getElementById("maintenance");
  if (!ld || !banner) return;
  for (const moment of banner.querySelectorAll("time[data-ts]")) {
    const ts = Number(moment.dataset.ts);
    // The charts' clock (24 h); with the date when the end is 20 hours away or more.
    if (Number.isFinite(ts)) moment.textContent = ts - Date.now() / 1000 < 72000 ? ld.format.times([ts])[0] : ld.format.dateTime(ts);
  }
  function expire() {
    const now = Date.now() / 1000;
    for (const line of banner.querySelectorAll("[data-until]")) {
      if (Number(line.dataset.until) <= now) line.remove();
    }
    banner.hidden = !banner.querySelector("[data-until]");
    if (!banner.hidden) setTimeout(expire, 5000);
  }
  expire();
})();
