// The hosts page (/hosts/): the rows the server rendered, kept live. The last few
// minutes of each host's CPU, memory, disk and network come from the history
// endpoint, then the stream (filtered by `match` to those series) moves them on.
// Up or down is worked out here every second, with the server's rule: a host whose
// interval is known is down once nothing came for `downIntervals` of it; without a
// known interval it is "unknown" once quiet for that many of the default interval.
// Sparklines are inline SVG polylines (no inline style: the CSP allows none).
(function () {
  "use strict";
  const ld = window.livedash;
  if (!ld || !ld.config.hosts) return;
  const cfg = ld.config.hosts;
  const SVG = "http://www.w3.org/2000/svg";
  const METRICS = cfg.metrics;
  const PERCENT = ["cpu", "memory", "disk"];
  const WINDOW_S = cfg.historyMinutes * 60;
  const MIN_SPAN_S = 20;
  // Every sparkline is drawn again this often, so a quiet host's line shows the gap.
  const REDRAW_MS = 5000;
  // The browser's clock minus the server's, so ages are the server's.
  const offset = Date.now() / 1000 - cfg.now;
  const STATUS_WORDS = {
    up: gettext("up"),
    down: gettext("down"),
    unknown: gettext("unknown"),
    never: gettext("never seen"),
    paused: gettext("paused"),
  };
  // Sampling paused by an operator (control.js tells): the collector's own host is
  // quiet on purpose, not down.
  let samplingPaused = cfg.rows.some((row) => row.status === "paused");
  const hosts = new Map();

  function serverNow() {
    return Date.now() / 1000 - offset;
  }

  function track(name, node, row) {
    const host = {
      node: node,
      lastSeen: row.last_seen,
      interval: row.interval,
      deadline: row.deadline,
      values: Object.assign({}, row.values),
      points: {},
      dirty: true,
    };
    hosts.set(name, host);
    return host;
  }

  for (const row of cfg.rows) {
    const node = document.querySelector('tr.host-row[data-host="' + CSS.escape(row.name) + '"]');
    if (node) track(row.name, node, row);
  }
  const table = document.getElementById("hosts-table");
  const rowTemplate = document.getElementById("host-row-template");
  // Without a table (no host yet, or the filter matched none) the page waits for a reload.
  if (!table || !rowTemplate) return;

  // A host first heard from while the page is open (and that the page's filter keeps):
  // a new row at the end; the next load puts it in order.
  function newHost(name) {
    if (typeof name !== "string" || !name) return null;
    if (cfg.query && !name.toLowerCase().includes(cfg.query.trim().toLowerCase())) return null;
    if (cfg.status && cfg.status !== "up") return null;
    const node = rowTemplate.content.firstElementChild.cloneNode(true);
    node.dataset.host = name;
    const link = node.querySelector("a.host-link");
    link.textContent = name;
    link.href = cfg.boardUrl + "?var-host=" + encodeURIComponent(name);
    node.querySelector(".status-word").textContent = STATUS_WORDS.up;
    table.tBodies[0].appendChild(node);
    return track(name, node, { last_seen: serverNow(), interval: null, deadline: null, values: {} });
  }

  // Only a host's own series (labelled with `host` alone): the ones the agent and the collector push.
  ld.streamMatches = () => METRICS.map((name) => name + '{host=~".+"}');

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function addPoint(name, metric, ts, value, live) {
    if (!METRICS.includes(metric) || !isNumber(value) || !isNumber(ts)) return;
    const host = hosts.get(name) || (live ? newHost(name) : null);
    if (!host) return;
    const points = (host.points[metric] = host.points[metric] || []);
    if (!points.length || points[points.length - 1][0] <= ts) points.push([ts, value]);
    else return; // an older value arriving late does not replace the latest
    const floor = serverNow() - WINDOW_S;
    while (points.length && points[0][0] < floor) points.shift();
    host.values[metric] = value;
    if (live) {
      host.lastSeen = serverNow();
      if (host.interval) host.deadline = host.lastSeen + cfg.downIntervals * host.interval;
    }
    host.dirty = true;
  }

  ld.on("sse:frame", (data) => {
    if (!data || typeof data.host !== "string" || !data.values) return;
    for (const metric of METRICS) addPoint(data.host, metric, data.ts, data.values[metric], true);
  });

  ld.on("sse:metric", (data) => {
    if (!data || !data.labels || Object.keys(data.labels).length !== 1) return;
    addPoint(data.labels.host, data.name, data.ts, data.value, true);
  });

  function statusOf(name, host, now) {
    if (samplingPaused && name === ld.config.collectorHost) return "paused";
    if (!isNumber(host.lastSeen)) return "never";
    if (!host.interval) {
      return now - host.lastSeen <= cfg.downIntervals * cfg.defaultInterval ? "up" : "unknown";
    }
    const deadline = Math.max(host.deadline || 0, host.lastSeen + cfg.downIntervals * host.interval);
    return now <= deadline ? "up" : "down";
  }

  function valueText(metric, host) {
    if (metric === "net") {
      const rx = host.values.net_rx;
      const tx = host.values.net_tx;
      if (!isNumber(rx) && !isNumber(tx)) return "–";
      return "↓ " + ld.format.joined(rx, "B/s") + " ↑ " + ld.format.joined(tx, "B/s");
    }
    return ld.format.joined(host.values[metric], "%", 1);
  }

  // One polyline per series, x across the window ending now (from the oldest point
  // when there is less than the window, but at least MIN_SPAN_S, so a host that just
  // appeared is not squeezed into the right edge), y from 0 to the top of the domain
  // (100 for percentages, the largest value otherwise).
  function drawSpark(svg, lines, top, now) {
    let oldest = now - MIN_SPAN_S;
    for (const points of lines) if (points && points.length) oldest = Math.min(oldest, points[0][0]);
    const start = Math.max(now - WINDOW_S, oldest);
    const span = now - start;
    const nodes = [];
    lines.forEach((points, index) => {
      if (!points || points.length < 2) return;
      const coords = points.map(([ts, value]) => {
        const x = Math.max(0, Math.min(100, ((ts - start) / span) * 100));
        const y = 23 - (Math.max(0, Math.min(top, value)) / top) * 22;
        return x.toFixed(2) + "," + y.toFixed(2);
      });
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", coords.join(" "));
      line.setAttribute("class", "spark-line spark-line-" + (index + 1));
      nodes.push(line);
    });
    svg.replaceChildren(...nodes);
    svg.dataset.points = String(lines.reduce((sum, points) => sum + (points ? points.length : 0), 0));
  }

  function render(name, host, now) {
    const status = statusOf(name, host, now);
    const row = host.node;
    if (row.dataset.status !== status) {
      row.dataset.status = status;
      row.querySelector(".status-word").textContent = STATUS_WORDS[status];
    }
    const seen = row.querySelector(".host-seen time");
    if (seen && isNumber(host.lastSeen)) seen.textContent = ld.format.age(Math.max(0, now - host.lastSeen));
    if (!host.dirty) return;
    host.dirty = false;
    for (const cell of row.querySelectorAll(".host-metric")) {
      const metric = cell.dataset.metric;
      cell.querySelector(".metric-value").textContent = valueText(metric, host);
      const svg = cell.querySelector("svg.spark");
      if (metric === "net") {
        const lines = [host.points.net_rx, host.points.net_tx];
        let top = 1;
        for (const points of lines) for (const point of points || []) top = Math.max(top, point[1]);
        drawSpark(svg, lines, top, now);
      } else {
        drawSpark(svg, [host.points[metric]], 100, now);
      }
    }
  }

  const summary = document.getElementById("hosts-summary");

  function renderAll() {
    const now = serverNow();
    let down = 0;
    for (const [name, host] of hosts) {
      render(name, host, now);
      if (host.node.dataset.status === "down") down += 1;
    }
    if (summary) {
      const total = interpolate(ngettext("%s host", "%s hosts", hosts.size), [hosts.size]);
      const text = total + " · " + interpolate(ngettext("%s down", "%s down", down), [down]);
      if (summary.textContent !== text) summary.textContent = text;
    }
  }

  async function loadHistory() {
    const params = new URLSearchParams({ minutes: String(cfg.historyMinutes) });
    for (const text of ld.streamMatches()) params.append("match", text);
    let lastEventId;
    try {
      const response = await fetch(ld.config.historyUrl + "?" + params.toString(), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const answer = await response.json();
      for (const [id, points] of Object.entries(answer.series || {})) {
        const labels = ld.series.labelsOf(id);
        if (Object.keys(labels).length !== 1) continue;
        const metric = ld.series.nameOf(id);
        for (const point of points) addPoint(labels.host, metric, point[0], point[1], false);
      }
      lastEventId = answer.last_event_id;
    } catch (err) {
      console.warn("livedash: no history for the hosts' sparklines:", err);
    }
    renderAll();
    if (ld.stream) ld.stream.open(lastEventId);
  }

  ld.on("sampling", (sampling) => {
    samplingPaused = Boolean(sampling.paused);
    renderAll();
  });

  renderAll();
  setInterval(renderAll, 1000);
  setInterval(() => {
    for (const host of hosts.values()) host.dirty = true;
  }, REDRAW_MS);
  loadHistory();
})();
