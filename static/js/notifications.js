// The bell, its dropdown and the toasts. Notifications arrive on the control
// socket (control.js re-emits server messages as "ws:<type>"); marking them read
// goes back the same way. Every notification is keyed by id, so one that comes
// both in a hello and as a push is shown once.
(function () {
  "use strict";
  const ld = window.livedash;
  const button = document.getElementById("bell-button");
  const badge = document.getElementById("bell-badge");
  const menu = document.getElementById("bell-menu");
  if (!ld || !button || !badge || !menu) return;

  // Shared with control.js, which resumes from it with ?last_notification= on reconnect.
  ld.state = ld.state || {};

  const MAX_ITEMS = 50;
  const LEVELS = ["info", "success", "warning", "error"];
  // What notify() accepts; checked again here for rows written around it.
  // http(s) URLs and paths on this site only. Browsers drop tabs and newlines from a
  // URL before reading it, so "/\t/evil.com" would open //evil.com: no whitespace or
  // control character anywhere, and a path never starts with a second slash or backslash.
  const SAFE_LINK = /^(?:https?:\/\/|\/(?![\/\\]))[^\x00-\x20\x7f]*$/i;
  const items = new Map(); // id -> notification dict with a `read` flag
  let unread = 0;
  let serverOffset = 0; // server clock minus ours, in seconds, for relative times
  let refreshTimer = null;

  function remember(notification, read) {
    const known = items.get(notification.id);
    items.set(notification.id, Object.assign({}, notification, { read: known ? known.read || read : read }));
    const last = ld.state.lastNotificationId;
    if (last === undefined || last === null || notification.id > last) {
      ld.state.lastNotificationId = notification.id;
    }
    if (items.size > MAX_ITEMS) {
      const oldest = Math.min(...items.keys());
      items.delete(oldest);
    }
    return !known;
  }

  function setUnread(count) {
    unread = Math.max(0, Number(count) || 0);
    if (unread === 0) items.forEach((item) => { item.read = true; });
    badge.textContent = unread > 99 ? "99+" : String(unread);
    badge.hidden = unread === 0;
    button.setAttribute("aria-label", unread ? "Notifications, " + unread + " unread" : "Notifications");
  }

  function toast(notification) {
    const level = LEVELS.includes(notification.level) ? notification.level : "info";
    ld.toast(notification.title, notification.body, level);
  }

  // Server messages

  ld.on("ws:hello", (message) => {
    if (typeof message.server_time === "number") serverOffset = message.server_time - Date.now() / 1000;
    const state = message.notifications || {};
    for (const notification of state.recent || []) remember(notification, Boolean(notification.read));
    // What this tab missed while it was away: new to it, so each one gets a toast.
    for (const notification of state.missed || []) {
      if (remember(notification, Boolean(notification.read)) && !notification.read) toast(notification);
    }
    setUnread(state.unread);
    render();
  });

  ld.on("ws:notification", (message) => {
    const notification = message.notification;
    if (!notification || typeof notification.id !== "number") return;
    if (remember(notification, false)) toast(notification);
    if (typeof message.unread === "number") setUnread(message.unread);
    render();
  });

  ld.on("ws:unread", (message) => {
    setUnread(message.count);
    render();
  });

  // An answer to our mark_read: a notification deleted meanwhile leaves the list.
  ld.on("ws:error", (message) => {
    if (message.code === "not_found" && items.has(message.id)) {
      items.delete(message.id);
      render();
    }
  });

  // Marking read

  function markRead(target) {
    const sent = ld.socket && typeof ld.socket.send === "function" && ld.socket.send({ type: "mark_read", id: target });
    if (!sent) {
      ld.toast("Not connected", "Notifications can be marked read once the control channel is back.", "warning");
      return;
    }
    // Shown at once; the server's `unread` push (to every tab) settles the count.
    if (target === "all") {
      items.forEach((item) => { item.read = true; });
      setUnread(0);
    } else {
      const item = items.get(target);
      if (item && !item.read) {
        item.read = true;
        setUnread(unread - 1);
      }
    }
    render();
  }

  // The dropdown

  function relativeTime(iso) {
    const then = Date.parse(iso) / 1000;
    if (Number.isNaN(then)) return "";
    return ld.format.age(Math.max(0, Date.now() / 1000 + serverOffset - then));
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderItem(item) {
    const level = LEVELS.includes(item.level) ? item.level : "info";
    const node = element("div", "item level-" + level + (item.read ? "" : " unread"));
    node.dataset.id = item.id;
    node.setAttribute("role", "menuitem");
    node.tabIndex = 0;
    node.title = item.read ? "" : "Mark as read";
    node.appendChild(element("strong", "title", item.title));
    if (item.body) node.appendChild(element("p", "body", item.body));
    const meta = element("div", "meta");
    const time = element("time", "time", relativeTime(item.created_at));
    time.dateTime = item.created_at;
    time.title = new Date(item.created_at).toLocaleString();
    meta.appendChild(time);
    if (item.created_by) meta.appendChild(element("span", "time", " · " + item.created_by));
    if (item.link && SAFE_LINK.test(item.link)) {
      const link = element("a", "link", "Open");
      link.href = item.link;
      meta.appendChild(link);
    }
    node.appendChild(meta);
    return node;
  }

  function render() {
    if (menu.hidden) return;
    const head = element("div", "menu-head");
    head.appendChild(element("strong", null, "Notifications"));
    const all = element("button", "button small", "Mark all read");
    all.type = "button";
    all.dataset.action = "mark-all";
    all.disabled = unread === 0;
    head.appendChild(all);
    const list = [...items.values()].sort((a, b) => b.id - a.id);
    const nodes = list.length ? list.map(renderItem) : [element("div", "empty", "No notifications yet.")];
    menu.replaceChildren(head, ...nodes);
  }

  function open() {
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    render();
    refreshTimer = setInterval(render, 30000); // keeps "2 min ago" true while open
  }

  function close() {
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    clearInterval(refreshTimer);
  }

  button.addEventListener("click", (event) => {
    event.stopPropagation();
    if (menu.hidden) open();
    else close();
  });

  menu.addEventListener("click", (event) => {
    event.stopPropagation();
    if (event.target.closest("[data-action=mark-all]")) {
      markRead("all");
      return;
    }
    const node = event.target.closest(".item");
    if (!node) return;
    const item = items.get(Number(node.dataset.id));
    if (item && !item.read) markRead(item.id);
  });

  menu.addEventListener("keydown", (event) => {
    const node = event.target.closest(".item");
    if (node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      node.click();
    }
  });

  document.addEventListener("click", () => { if (!menu.hidden) close(); });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !menu.hidden) {
      close();
      button.focus();
    }
  });

  setUnread(0);
})();
