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
    button.setAttribute(
      "aria-label",
      unread
        ? interpolate(ngettext("Notifications, %s unread", "Notifications, %s unread", unread), [unread])
        : gettext("Notifications"),
    );
  }

  function toast(notification) {
    const level = LEVELS.includes(notification.level) ? notification.level : "info";
    ld.toast(notification.title, notification.body, level, notification.link);
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
      ld.toast(
        gettext("Not connected"),
        gettext("Notifications can be marked read once the control channel is back."),
        "warning",
      );
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
    node.title = item.read ? "" : gettext("Mark as read");
    node.appendChild(element("span", "level-word", ld.levelWord(level)));
    node.appendChild(document.createTextNode(" "));
    node.appendChild(element("strong", "title", item.title));
    if (item.body) node.appendChild(element("p", "body", item.body));
    const meta = element("div", "meta");
    const time = element("time", "time", relativeTime(item.created_at));
    time.dateTime = item.created_at;
    time.title = new Date(item.created_at).toLocaleString(ld.lang);
    meta.appendChild(time);
    if (item.created_by) meta.appendChild(element("span", "time", " · " + item.created_by));
    if (ld.safeLink(item.link)) {
      const link = element("a", "link", gettext("Open"));
      link.href = item.link;
      meta.appendChild(link);
    }
    node.appendChild(meta);
    return node;
  }

  function render() {
    if (menu.hidden) return;
    const typing = addInput !== null && document.activeElement === addInput;
    drawMenu();
    if (typing) addInput.focus();
  }

  function drawMenu() {
    const head = element("div", "menu-head");
    head.appendChild(element("strong", null, gettext("Notifications")));
    const all = element("button", "button small", gettext("Mark all read"));
    all.type = "button";
    all.dataset.action = "mark-all";
    all.disabled = unread === 0;
    head.appendChild(all);
    const list = [...items.values()].sort((a, b) => b.id - a.id);
    if (!list.length) {
      menu.replaceChildren(head, element("div", "empty", gettext("No notifications yet.")), renderChannels());
      return;
    }
    // The items' own parent carries role=menu, so each menuitem has its menu.
    const group = element("div", "items");
    group.setAttribute("role", "menu");
    group.setAttribute("aria-label", gettext("Notifications"));
    group.append(...list.map(renderItem));
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".item");
    const focusedId = focused ? focused.dataset.id : null;
    menu.replaceChildren(head, group, renderChannels());
    if (focusedId) {
      const again = group.querySelector('.item[data-id="' + focusedId + '"]');
      if (again) again.focus();
    }
  }

  // Under the bell, kept inside the viewport whatever the width and wherever the bell wrapped to.
  function place() {
    const margin = 8;
    const rect = button.getBoundingClientRect();
    const width = Math.min(360, window.innerWidth - 2 * margin);
    const left = Math.max(margin, Math.min(rect.right - width, window.innerWidth - width - margin));
    menu.style.width = width + "px";
    menu.style.left = left + "px";
    menu.style.right = "auto";
    menu.style.top = Math.round(rect.bottom + 4) + "px";
  }

  // The user's own delivery channels (e-mail, webhooks, apprise), each with a pause
  // switch, "send a test" and "remove"; and, for those allowed, a form adding an
  // apprise URL of their own. The form is one element kept across renders, so what is
  // typed in it survives the menu being drawn again.

  let channels = null; // null until loaded
  const outcomes = new Map(); // channel id -> what its last test said
  let addForm = null;
  let addInput = null;

  function kindWord(kind) {
    if (kind === "email") return gettext("email");
    if (kind === "webhook") return gettext("webhook");
    if (kind === "apprise") return gettext("apprise");
    return kind;
  }

  function channelButton(label, action, describe, channel) {
    const node = element("button", "button small", label);
    node.type = "button";
    node.dataset.action = action;
    node.setAttribute("aria-label", interpolate(describe, { kind: kindWord(channel.kind), target: channel.target }, true));
    return node;
  }

  function addChannelForm() {
    if (addForm) return addForm;
    addForm = element("form", "channel-add");
    addForm.id = "channel-add";
    const label = element("label", "sr-only", gettext("apprise URL of a channel of yours"));
    label.htmlFor = "channel-add-url";
    addInput = element("input");
    addInput.id = "channel-add-url";
    addInput.name = "target";
    addInput.type = "text";
    addInput.autocomplete = "off";
    addInput.spellcheck = false;
    addInput.required = true;
    addInput.placeholder = gettext("apprise URL: ntfys://…, tgram://…, slack://…");
    const add = element("button", "button small", gettext("Add"));
    add.type = "submit";
    addForm.append(label, addInput, add);
    return addForm;
  }

  function renderChannels() {
    const section = element("div", "channels");
    section.id = "my-channels";
    section.appendChild(element("strong", null, gettext("My delivery channels")));
    if (channels === null) {
      section.appendChild(element("div", "time", gettext("Loading…")));
      return section;
    }
    if (!channels.length && !ld.config.canAddChannels) {
      section.appendChild(element("div", "time", gettext("None: an administrator can add e-mail or webhook channels.")));
    }
    for (const channel of channels) {
      const row = element("div", "channel");
      row.dataset.channel = channel.id;
      row.appendChild(element("span", "target", kindWord(channel.kind) + " · " + channel.target));
      if (channel.paused) row.appendChild(element("span", "time", gettext("paused")));
      const toggle = element("button", "button small", channel.paused ? gettext("Resume") : gettext("Pause"));
      toggle.type = "button";
      toggle.dataset.action = "toggle-channel";
      toggle.setAttribute(
        "aria-label",
        interpolate(
          channel.paused ? gettext("Resume %(kind)s %(target)s") : gettext("Pause %(kind)s %(target)s"),
          { kind: kindWord(channel.kind), target: channel.target },
          true,
        ),
      );
      row.appendChild(toggle);
      row.appendChild(channelButton(gettext("Test"), "test-channel", gettext("Send a test to %(kind)s %(target)s"), channel));
      row.appendChild(channelButton(gettext("Remove"), "remove-channel", gettext("Remove %(kind)s %(target)s"), channel));
      section.appendChild(row);
      if (outcomes.has(channel.id)) {
        const said = element("div", "time channel-outcome", outcomes.get(channel.id));
        said.setAttribute("role", "status");
        said.dataset.channel = channel.id;
        section.appendChild(said);
      }
    }
    if (ld.config.canAddChannels) section.appendChild(addChannelForm());
    return section;
  }

  async function channelRequest(url, options) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": ld.csrfToken() },
      ...options,
    });
    const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
    return answer;
  }

  async function testChannel(id) {
    outcomes.set(id, gettext("Sending a test…"));
    render();
    try {
      const answer = await channelRequest(ld.config.channelsUrl + id + "/test/", { method: "POST" });
      outcomes.set(id, answer.sent ? gettext("Test sent.") : interpolate(gettext("Test failed: %s"), [answer.error || ""]));
    } catch (error) {
      outcomes.set(id, interpolate(gettext("Test failed: %s"), [String(error.message || error)]));
    }
    render();
  }

  async function removeChannel(id) {
    try {
      await channelRequest(ld.config.channelsUrl + id + "/", { method: "DELETE" });
      channels = (channels || []).filter((c) => c.id !== id);
      outcomes.delete(id);
    } catch (error) {
      ld.toast(gettext("Channel not changed"), String(error.message || error), "warning");
    }
    render();
  }

  async function addChannel() {
    const target = addInput.value.trim();
    if (!target) return;
    try {
      const channel = await channelRequest(ld.config.channelsUrl, {
        method: "POST",
        body: JSON.stringify({ kind: "apprise", target }),
      });
      addInput.value = "";
      channels = (channels || []).concat(channel);
    } catch (error) {
      ld.toast(gettext("Channel not added"), String(error.message || error), "warning");
    }
    render();
  }

  async function loadChannels() {
    if (!ld.config.channelsUrl) return;
    try {
      const response = await fetch(ld.config.channelsUrl, { credentials: "same-origin" });
      if (!response.ok) return;
      channels = (await response.json()).channels || [];
    } catch (error) {
      return; // offline: the section keeps saying it is loading; the next open tries again
    }
    render();
  }

  async function toggleChannel(id) {
    const channel = (channels || []).find((c) => c.id === id);
    if (!channel) return;
    try {
      const response = await fetch(ld.config.channelsUrl + id + "/", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": ld.csrfToken() },
        body: JSON.stringify({ paused: !channel.paused }),
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      Object.assign(channel, await response.json());
    } catch (error) {
      ld.toast(gettext("Channel not changed"), String(error.message || error), "warning");
    }
    render();
  }

  function open() {
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    place();
    render();
    loadChannels();
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
    const toggle = event.target.closest("[data-action=toggle-channel]");
    if (toggle) {
      toggleChannel(Number(toggle.closest("[data-channel]").dataset.channel));
      return;
    }
    const tester = event.target.closest("[data-action=test-channel]");
    if (tester) {
      testChannel(Number(tester.closest("[data-channel]").dataset.channel));
      return;
    }
    const remover = event.target.closest("[data-action=remove-channel]");
    if (remover) {
      removeChannel(Number(remover.closest("[data-channel]").dataset.channel));
      return;
    }
    if (event.target.closest("#channel-add")) return;
    const node = event.target.closest(".item");
    if (!node) return;
    const item = items.get(Number(node.dataset.id));
    if (item && !item.read) markRead(item.id);
  });

  menu.addEventListener("submit", (event) => {
    event.preventDefault();
    if (event.target === addForm) addChannel();
  });

  menu.addEventListener("keydown", (event) => {
    const node = event.target.closest(".item");
    if (node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      node.click();
    } else if (node && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      const next = event.key === "ArrowDown" ? node.nextElementSibling : node.previousElementSibling;
      if (next) next.focus();
    }
  });
  window.addEventListener("resize", () => { if (!menu.hidden) place(); });

  document.addEventListener("click", () => { if (!menu.hidden) close(); });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !menu.hidden) {
      close();
      button.focus();
    }
  });

  setUnread(0);
})();
