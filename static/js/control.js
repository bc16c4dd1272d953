// The control socket: one WebSocket per tab for commands, presence, round-trip
// time and notifications. Every server message is re-emitted on the bus as
// "ws:<type>", and `livedash.socket.send(obj)` lets other parts send commands.
// The protocol is described in docs/protocol.md.
(function () {
  "use strict";
  const ld = window.livedash;
  if (!ld || !ld.config || !ld.config.socketPath) return;
  ld.state = ld.state || {};

  const PING_EVERY_MS = 5000;
  const PONG_TIMEOUT_MS = 10000;
  const BACKOFF_START_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  // A worker that is restarting closes its sockets with 4012 (1012 from uvicorn itself,
  // for a socket it closes without us): another worker answers at once.
  const RESTART_CODES = [1012, 4012];
  const RESTART_JITTER_MS = 500;
  const PRESENCE_SHOWN = 8;

  const controls = document.getElementById("controls");
  const intervalSelect = document.getElementById("interval-select");
  const pauseButton = document.getElementById("pause-button");
  const samplingInfo = document.getElementById("sampling-info");
  const presenceBox = document.getElementById("presence");
  const rttNode = document.getElementById("rtt");

  let socket = null;
  let attempts = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let nextId = 0;
  const pendingPings = new Map(); // id -> performance.now() when sent
  const pendingControl = new Map(); // id -> what the command was, for error toasts
  const sampling = { interval: null, paused: false };

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let url = scheme + "//" + window.location.host + ld.config.socketPath;
    const last = ld.state.lastNotificationId;
    if (typeof last === "number" && last >= 0) url += "?last_notification=" + encodeURIComponent(last);
    return url;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    ld.setStatus("ws-status", attempts ? "reconnecting" : "connecting", attempts ? "reconnecting…" : "connecting…");
    try {
      socket = new WebSocket(socketUrl());
    } catch (err) {
      console.error("livedash: cannot open the control socket:", err);
      scheduleReconnect();
      return;
    }
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", onClose);
  }

  function onClose(event) {
    if (event.target !== socket) return;
    socket = null;
    stopPinging();
    if (rttNode) rttNode.textContent = "RTT –";
    scheduleReconnect(event.code);
  }

  // Exponential backoff with jitter, so a restarted worker is not hit by every
  // tab at the same instant.
  function scheduleReconnect(code) {
    if (reconnectTimer) return;
    if (RESTART_CODES.includes(code)) {
      ld.setStatus("ws-status", "reconnecting", "server restarting; reconnecting…");
      reconnectTimer = setTimeout(connect, Math.random() * RESTART_JITTER_MS);
      return;
    }
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * Math.pow(2, attempts));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    attempts += 1;
    const why = code === 4008 ? "too many messages; " : code === 4009 ? "message too large; " : "";
    const state = navigator.onLine === false ? "offline" : "reconnecting";
    ld.setStatus("ws-status", state, why + "retry in " + Math.ceil(delay / 1000) + " s");
    reconnectTimer = setTimeout(connect, delay);
  }

  function send(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  function freshId(prefix) {
    nextId += 1;
    return prefix + nextId;
  }

  // Round-trip time

  function startPinging() {
    stopPinging();
    ping();
    pingTimer = setInterval(ping, PING_EVERY_MS);
  }

  function stopPinging() {
    clearInterval(pingTimer);
    pingTimer = null;
    pendingPings.clear();
  }

  function ping() {
    const now = performance.now();
    for (const sentAt of pendingPings.values()) {
      if (now - sentAt > PONG_TIMEOUT_MS && socket) {
        // The connection looks open but nothing comes back: start over.
        socket.close(4000, "no pong");
        return;
      }
    }
    const id = freshId("p");
    if (send({ type: "ping", id: id })) pendingPings.set(id, now);
  }

  function onPong(message) {
    const sentAt = pendingPings.get(message.id);
    if (sentAt === undefined) return;
    pendingPings.clear(); // anything older is answered too: the link is alive
    const rtt = performance.now() - sentAt;
    if (rttNode) rttNode.textContent = "RTT " + (rtt < 10 ? rtt.toFixed(1) : Math.round(rtt)) + " ms";
  }

  // Server messages

  function onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (err) {
      console.error("livedash: the server sent something that is not JSON");
      return;
    }
    if (!message || typeof message.type !== "string") return;
    if (message.type === "hello") onHello(message);
    else if (message.type === "pong") onPong(message);
    else if (message.type === "interval_changed") showSampling({ interval: message.interval }, message.by);
    else if (message.type === "sampling_state") showSampling(message, message.by);
    else if (message.type === "presence") showPresence(message.online);
    else if (message.type === "ack" || message.type === "error") onAnswer(message);
    ld.emit("ws:" + message.type, message);
  }

  function onHello(message) {
    attempts = 0;
    ld.setStatus("ws-status", "connected", "connected");
    if (controls) controls.hidden = !message.can_control;
    showSampling(message);
    showPresence(message.online);
    startPinging();
    if (document.visibilityState === "visible") send({ type: "snapshot", id: freshId("s") });
  }

  function onAnswer(message) {
    const what = pendingControl.get(message.id);
    if (what === undefined) return;
    pendingControl.delete(message.id);
    if (message.type === "error") {
      ld.toast("Could not " + what, message.message, "error");
      showSampling(sampling); // put the controls back to the real state
    }
  }

  // Sampling controls

  function formatSeconds(seconds) {
    return String(seconds) + " s";
  }

  function showSampling(state, by) {
    if (typeof state.interval === "number") sampling.interval = state.interval;
    if (typeof state.paused === "boolean") sampling.paused = state.paused;
    if (intervalSelect && sampling.interval !== null) {
      const value = String(sampling.interval);
      if (![...intervalSelect.options].some((option) => Number(option.value) === sampling.interval)) {
        intervalSelect.add(new Option(formatSeconds(sampling.interval), value));
      }
      intervalSelect.value = [...intervalSelect.options].find(
        (option) => Number(option.value) === sampling.interval
      ).value;
    }
    if (pauseButton) {
      pauseButton.textContent = sampling.paused ? "Resume" : "Pause";
      pauseButton.classList.toggle("primary", sampling.paused);
      pauseButton.setAttribute("aria-pressed", String(sampling.paused));
    }
    if (samplingInfo && sampling.interval !== null) {
      let text = sampling.paused ? "Sampling paused" : "Sampling every " + formatSeconds(sampling.interval);
      if (by) text += " · set by " + by;
      samplingInfo.textContent = text;
      samplingInfo.dataset.paused = String(sampling.paused);
    }
  }

  function sendControl(message, what) {
    message.id = freshId("c");
    if (send(message)) pendingControl.set(message.id, what);
    else ld.toast("Not connected", "The control channel is reconnecting; try again in a moment.", "warning");
  }

  if (intervalSelect) {
    intervalSelect.addEventListener("change", () => {
      sendControl({ type: "set_interval", seconds: Number(intervalSelect.value) }, "change the interval");
    });
  }
  if (pauseButton) {
    pauseButton.addEventListener("click", () => {
      sendControl({ type: sampling.paused ? "resume" : "pause" }, sampling.paused ? "resume" : "pause");
    });
  }

  // Who is online

  function showPresence(online) {
    if (!presenceBox || !Array.isArray(online)) return;
    const me = ld.config.user && ld.config.user.id;
    presenceBox.replaceChildren();
    const label = document.createElement("span");
    label.className = "muted";
    label.textContent = online.length === 1 ? "1 online" : online.length + " online";
    presenceBox.appendChild(label);
    for (const person of online.slice(0, PRESENCE_SHOWN)) {
      const chip = document.createElement("span");
      chip.className = "person" + (person.id === me ? " me" : "");
      chip.textContent = person.username;
      chip.title = person.id === me ? "you" : person.username + " is watching";
      presenceBox.appendChild(chip);
    }
    if (online.length > PRESENCE_SHOWN) {
      const more = document.createElement("span");
      more.className = "person more";
      more.textContent = "+" + (online.length - PRESENCE_SHOWN);
      more.title = online.slice(PRESENCE_SHOWN).map((person) => person.username).join(", ");
      presenceBox.appendChild(more);
    }
  }

  // A tab that comes back asks for the latest values rather than waiting for a tick.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") send({ type: "snapshot", id: freshId("s") });
  });
  window.addEventListener("online", () => {
    if (!socket) {
      attempts = 0;
      connect();
    }
  });

  ld.socket = { send: send };
  connect();
})();
