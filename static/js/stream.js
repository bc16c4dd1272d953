// The page's event stream: one EventSource on /events/ for the channels the page
// config names (the ones this user may read). Every event is re-emitted on the
// bus as "sse:<type>" with its parsed data, as control.js does for the WebSocket
// with "ws:<type>"; "sse:open" and "sse:error" say when the connection comes and
// goes. This module owns the stream's status indicator too.
//
// The stream resumes from an id: whoever loads a channel's history knows where
// that history ends, so it (re)opens the stream there with
// `livedash.stream.open(lastEventId)`. Anything else on the page just listens.
(function () {
  "use strict";
  const ld = window.livedash;
  if (!ld) return;
  const config = ld.config.stream || {};
  const channels = Array.isArray(config.channels) ? config.channels : [];
  const eventTypes = Array.isArray(config.events) ? config.events : [];
  const STATUS_ID = "sse-status";
  // After this long without a working stream the indicator says offline, not reconnecting.
  const OFFLINE_AFTER_MS = 15000;
  const MAX_RETRY_MS = 5000;
  // An open stream that has carried nothing for this many sampling intervals (and
  // at least STALE_MIN_MS) is not "live": the collector or Redis behind it stopped.
  const STALE_INTERVALS = 3;
  const STALE_MIN_MS = 10000;

  const state = {
    source: null,
    everOpened: false,
    disconnectedSince: null,
    lastUpdateAt: null, // browser time of the last event from the stream
    openedAt: null,
    interval: 1, // seconds between collector ticks, from the control socket
    paused: false,
  };

  // The server takes at most this many `match=` selectors.
  const MAX_MATCH = 32;

  // On a dashboard (board.js), the stream carries the series of its panels only (as its
  // history does): the panels' selectors with the variables' values, read at each open.
  // Another page that draws a few series (hosts.js) sets `ld.streamMatches` the same way.
  function url() {
    let query = channels.map((channel) => "channel=" + encodeURIComponent(channel)).join("&");
    // A share link's page (share.js) reads the link's stream: no session, its series only.
    if (ld.config.share) query += "&share=" + encodeURIComponent(ld.config.share.token);
    const wanted = ld.board ? () => ld.board.matches() : ld.streamMatches;
    const matches = wanted && channels.includes(ld.config.metricsChannel) ? wanted() : [];
    if (matches.length && matches.length <= MAX_MATCH) {
      query += matches.map((text) => "&match=" + encodeURIComponent(text)).join("");
    }
    return config.url + "?" + query;
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (err) {
      console.warn("livedash: ignoring an event that is not JSON", event.type);
      return null;
    }
  }

  function open(lastEventId) {
    close();
    if (!config.url || channels.length === 0) return false;
    // ReconnectingEventSource sends lastEventId on every reconnect, updated as events arrive.
    const source = new ReconnectingEventSource(url(), { lastEventId: lastEventId, max_retry_time: MAX_RETRY_MS });
    state.source = source;
    const current = () => state.source === source; // a replaced source says nothing more
    source.onopen = () => {
      if (!current()) return;
      state.everOpened = true;
      state.openedAt = Date.now();
      updateStatus();
      ld.emit("sse:open", {});
    };
    source.onerror = () => {
      if (!current()) return;
      updateStatus();
      ld.emit("sse:error", {});
    };
    // A stream filtered by `match` sends keep-alives with an id when it skips events:
    // listening is what makes ReconnectingEventSource remember that id for its reconnect.
    source.addEventListener("keep-alive", () => {});
    for (const type of eventTypes) {
      source.addEventListener(type, (event) => {
        if (!current()) return;
        const data = parse(event);
        if (data === null) return;
        state.lastUpdateAt = Date.now();
        ld.emit("sse:" + type, data);
      });
    }
    updateStatus();
    return true;
  }

  function close() {
    if (state.source) state.source.close();
    state.source = null;
  }

  // ---- status indicator -------------------------------------------------

  function setStatus(label, detail) {
    ld.setStatus(STATUS_ID, label, detail);
  }

  function ageText() {
    if (state.lastUpdateAt === null) return "";
    return " · " + interpolate(gettext("last event %s"), [ld.format.age((Date.now() - state.lastUpdateAt) / 1000)]);
  }

  // connected (green): events arrive; stale (amber): open, but nothing for a few
  // intervals; paused (amber): sampling is paused; offline (red): the connection is down.
  function updateStatus() {
    const source = state.source;
    if (!source) return; // not open (history loading, or no access): its owner's status stands
    if (source.readyState === 1 && navigator.onLine !== false) {
      state.disconnectedSince = null;
      if (state.paused) {
        setStatus("paused", gettext("sampling paused") + ageText());
        return;
      }
      const since = Math.max(state.lastUpdateAt || 0, state.openedAt || 0);
      const staleAfter = Math.max(STALE_MIN_MS, STALE_INTERVALS * state.interval * 1000);
      if (since && Date.now() - since > staleAfter) {
        setStatus("stale", gettext("no new data") + ageText());
        return;
      }
      setStatus("connected", gettext("live") + ageText());
      return;
    }
    state.disconnectedSince = state.disconnectedSince || Date.now();
    if (!state.everOpened && navigator.onLine !== false) {
      setStatus("connecting");
      return;
    }
    const longGone = Date.now() - state.disconnectedSince > OFFLINE_AFTER_MS;
    const offline = navigator.onLine === false || longGone;
    const label = offline ? "offline" : "reconnecting";
    setStatus(label, (offline ? gettext("offline") : gettext("reconnecting")) + ageText());
  }

  // The sampling interval and pause state, from the control socket (control.js).
  ld.on("sampling", (sampling) => {
    if (typeof sampling.interval === "number" && sampling.interval > 0) state.interval = sampling.interval;
    state.paused = Boolean(sampling.paused);
    updateStatus();
  });

  window.addEventListener("online", updateStatus);
  window.addEventListener("offline", updateStatus);
  setInterval(updateStatus, 1000);
  if (channels.length === 0) setStatus("offline", gettext("no permission"));

  ld.stream = {
    channels: channels.slice(),
    open: open,
    close: close,
    setStatus: setStatus,
    isOpen: () => state.source !== null,
    lastEventAt: () => state.lastUpdateAt,
  };
})();
