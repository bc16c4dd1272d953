// The live charts: one uPlot chart per enabled metric, filled from the history
// endpoint and continued from the `metrics` channel's events ("sse:frame",
// "sse:metric" from stream.js), the stream resuming exactly where the history
// ended (its last_event_id), so the seam has no gap and no duplicate.
//
// Events only change data; drawing happens once per animation frame for every
// chart that changed, so 20 charts updating every second cost one layout pass,
// and a hidden tab (no animation frames) costs no drawing at all.
(function () {
  "use strict";
  const ld = window.livedash;
  const config = ld.config || {};
  const root = document.getElementById("charts");
  const WINDOWS = [5, 15, 60, 360, 1440, 10080, 43200];
  const DEFAULT_WINDOW = 15;
  const WINDOW_STORAGE_KEY = "livedash.window";
  // Raw points per chart never exceed a window's worth at the fastest interval (0.25 s);
  // bucketed windows hold at most the server's 1,000 buckets plus the live tail's.
  const MAX_POINTS_PER_MINUTE = 240;
  const MAX_BUCKETS = 1100;
  const PLOT_HEIGHT = 130;

  if (!root || !ld || !ld.stream) return;
  if (!config.canViewMetrics) return; // stream.js shows "no permission"

  const state = {
    windowMinutes: initialWindow(),
    charts: new Map(), // metric key -> chart record
    hidden: new Set(), // keys the server knows but does not chart (disabled metrics)
    lastSeq: 0,
    lastFrameTs: 0,
    clockOffset: 0, // server ts minus browser clock, from live frames
    step: 0, // seconds per point of the shown data; 0 for raw values
    zoom: null, // {start, end} while a dragged range is shown instead of the live window
    generation: 0, // bumps on every history load; stale loads are dropped
    refetchQueued: false,
    renderQueued: false,
  };

  const fmt = ld.format;

  function levelFor(def, value) {
    if (value === null || value === undefined) return "ok";
    if (def.critical !== null && def.critical !== undefined && value >= def.critical) return "critical";
    if (def.warning !== null && def.warning !== undefined && value >= def.warning) return "warning";
    return "ok";
  }

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  const COLORS = {
    line: cssVar("--accent", "#4f8cff"),
    grid: cssVar("--border", "#2a3550"),
    axis: cssVar("--muted", "#8d99b3"),
    warning: cssVar("--warning", "#f2b53a"),
    critical: cssVar("--critical", "#f2555a"),
  };

  // ---- charts -----------------------------------------------------------

  function windowSeconds() {
    return state.windowMinutes * 60;
  }

  function serverNow() {
    return Date.now() / 1000 + state.clockOffset;
  }

  function xRange() {
    if (state.zoom) return [state.zoom.start, state.zoom.end];
    return [serverNow() - windowSeconds(), serverNow()];
  }

  // Dates join the times once the range spans days (7 d, 30 d).
  function axisTimes(u, splits) {
    const [start, end] = [u.scales.x.min, u.scales.x.max];
    if (end - start < 2 * 86400) return fmt.times(splits);
    return splits.map((ts) => {
      const d = new Date(ts * 1000);
      const day = d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
      return end - start > 8 * 86400 ? day : day + " " + fmt.times([ts])[0];
    });
  }

  function makeCard(def) {
    const card = document.createElement("article");
    card.className = "chart-card";
    card.dataset.key = def.key;
    card.dataset.level = "ok";
    const head = document.createElement("header");
    head.className = "chart-head";
    const titleBox = document.createElement("div");
    const title = document.createElement("span");
    title.className = "chart-title";
    const firing = document.createElement("span");
    firing.className = "firing-tag";
    firing.textContent = "firing";
    firing.hidden = true;
    titleBox.append(title, firing);
    const valueBox = document.createElement("div");
    const value = document.createElement("span");
    value.className = "chart-value";
    value.textContent = "–";
    const unit = document.createElement("span");
    unit.className = "chart-unit";
    const csv = document.createElement("button");
    csv.type = "button";
    csv.className = "chart-csv";
    csv.textContent = "CSV";
    csv.title = "Download what this chart shows as CSV";
    valueBox.append(value, unit, csv);
    head.append(titleBox, valueBox);
    const plot = document.createElement("div");
    plot.className = "chart-plot";
    card.append(head, plot);
    return { card, title, firing, value, unit, plot, csv };
  }

  // Dashed lines at the warning and critical thresholds, when they are in view.
  function drawThresholds(u, def) {
    const ctx = u.ctx;
    const scale = u.scales.y;
    for (const [threshold, color] of [
      [def.warning, COLORS.warning],
      [def.critical, COLORS.critical],
    ]) {
      if (threshold === null || threshold === undefined) continue;
      if (threshold < scale.min || threshold > scale.max) continue;
      const y = Math.round(u.valToPos(threshold, "y", true)) + 0.5;
      ctx.save();
      ctx.strokeStyle = color;
      ctx.globalAlpha = 0.6;
      ctx.setLineDash([4, 4]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      ctx.restore();
    }
  }

  function yRange(def, min, max) {
    if (def.unit === "%") return [0, 100];
    if (min === null || max === null) return [0, 1];
    const low = Math.min(0, min);
    const high = max > low ? max * 1.15 : low + 1;
    return [low, high];
  }

  function makePlot(chart) {
    const width = Math.max(200, chart.dom.plot.clientWidth || 320);
    const options = {
      width: width,
      height: PLOT_HEIGHT,
      legend: { show: false },
      // Dragging selects a range to zoom into (finer data is fetched for it).
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
      scales: {
        x: { time: true, range: () => xRange() },
        y: { range: (u, min, max) => yRange(chart.def, min, max) },
      },
      axes: [
        {
          stroke: COLORS.axis,
          grid: { stroke: COLORS.grid, width: 1 },
          ticks: { stroke: COLORS.grid, width: 1 },
          font: "11px system-ui, sans-serif",
          size: 28,
          values: axisTimes,
        },
        {
          stroke: COLORS.axis,
          grid: { stroke: COLORS.grid, width: 1 },
          ticks: { stroke: COLORS.grid, width: 1 },
          font: "11px system-ui, sans-serif",
          size: 48,
          // Counts get no "0.5" labels: only whole ticks are labelled when every value is whole.
          values: (u, splits) => {
            const whole = chart.ys.every(Number.isInteger);
            return splits.map((v) => (whole && !Number.isInteger(v) ? "" : fmt.axis(v, chart.def.unit)));
          },
        },
      ],
      series: [
        {},
        {
          stroke: COLORS.line,
          width: 1.5,
          fill: "rgba(79, 140, 255, 0.12)",
          // uPlot's default shows dots only where points are sparse: a custom
          // metric pushed once is visible, a busy line is not cluttered.
          spanGaps: false,
        },
        // Each bucket's min and max: the band keeps a one-second spike visible
        // after averaging. Raw values have min = max, so no band shows.
        { stroke: "transparent", width: 0, points: { show: false } },
        { stroke: "transparent", width: 0, points: { show: false } },
      ],
      bands: [{ series: [3, 2], fill: "rgba(79, 140, 255, 0.22)" }],
      hooks: {
        draw: [(u) => drawThresholds(u, chart.def)],
        setSelect: [
          (u) => {
            if (u.select.width < 5) return;
            const start = u.posToVal(u.select.left, "x");
            const end = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            zoomTo(start, end);
          },
        ],
      },
    };
    const plot = new uPlot(options, plotData(chart), chart.dom.plot);
    plot.over.addEventListener("dblclick", () => unzoom());
    return plot;
  }

  function plotData(chart) {
    return [chart.xs, chart.ys, chart.lows, chart.highs];
  }

  function createChart(def) {
    const dom = makeCard(def);
    const chart = { def, dom, current: null, firing: false, plot: null, dirty: true, drawnAt: 0 };
    clearSeries(chart);
    dom.csv.addEventListener("click", () => downloadCsv(chart));
    applyDefinition(chart, def);
    state.charts.set(def.key, chart);
    return chart;
  }

  function applyDefinition(chart, def) {
    chart.def = def;
    chart.dom.title.textContent = def.label || def.key;
    chart.dom.card.title = def.key;
    chart.dirty = true;
  }

  function sortedCharts() {
    return Array.from(state.charts.values()).sort(
      (a, b) => (a.def.order ?? 100) - (b.def.order ?? 100) || a.def.key.localeCompare(b.def.key),
    );
  }

  // Cards in display order; uPlot instances created once a card has its width.
  function layout() {
    const charts = sortedCharts();
    const empty = root.querySelector(".empty");
    if (charts.length === 0) {
      if (!empty) {
        const note = document.createElement("p");
        note.className = "empty";
        note.textContent = "No metrics yet. They appear as soon as the collector (manage.py collect_metrics) runs.";
        root.append(note);
      }
      return;
    }
    if (empty) empty.remove();
    charts.forEach((chart) => root.append(chart.dom.card)); // append moves cards into order
    for (const chart of charts) {
      if (!chart.plot) chart.plot = makePlot(chart);
    }
  }

  function removeChart(key) {
    const chart = state.charts.get(key);
    if (!chart) return;
    if (chart.plot) chart.plot.destroy();
    chart.dom.card.remove();
    state.charts.delete(key);
  }

  // Per point: time, average, min, max, and how many values it holds (null when
  // the server did not say), so live values fold into a bucket exactly.
  function clearSeries(chart) {
    chart.xs = [];
    chart.ys = [];
    chart.lows = [];
    chart.highs = [];
    chart.counts = [];
  }

  function indexOf(xs, ts) {
    let low = 0;
    let high = xs.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (xs[mid] < ts) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  function insertAt(chart, index, ts, avg, low, high, count) {
    chart.xs.splice(index, 0, ts);
    chart.ys.splice(index, 0, avg);
    chart.lows.splice(index, 0, low);
    chart.highs.splice(index, 0, high);
    chart.counts.splice(index, 0, count);
  }

  // A live value: its own point on raw windows (a point at a time already charted
  // is a duplicate), folded into its bucket on bucketed ones.
  function addPoint(chart, ts, value) {
    const xs = chart.xs;
    const latest = xs.length === 0 || ts >= xs[xs.length - 1];
    if (latest) chart.current = value;
    if (state.zoom) return true; // a past range is shown; only the header follows live
    const at = state.step > 0 ? Math.floor(ts / state.step) * state.step : ts;
    const index = latest && (xs.length === 0 || at > xs[xs.length - 1]) ? xs.length : indexOf(xs, at);
    if (xs[index] === at) {
      if (state.step === 0) return false;
      const count = chart.counts[index];
      if (count !== null) {
        chart.ys[index] = (chart.ys[index] * count + value) / (count + 1);
        chart.counts[index] = count + 1;
      }
      chart.lows[index] = Math.min(chart.lows[index], value);
      chart.highs[index] = Math.max(chart.highs[index], value);
    } else {
      insertAt(chart, index, at, value, value, value, 1);
    }
    trim(chart);
    chart.dirty = true;
    return true;
  }

  function trim(chart) {
    const cutoff = serverNow() - windowSeconds() - Math.max(5, state.step);
    let drop = 0;
    while (drop < chart.xs.length && chart.xs[drop] < cutoff) drop += 1;
    const cap = state.step > 0 ? MAX_BUCKETS : state.windowMinutes * MAX_POINTS_PER_MINUTE;
    drop = Math.max(drop, chart.xs.length - cap);
    if (drop > 0) {
      for (const list of [chart.xs, chart.ys, chart.lows, chart.highs, chart.counts]) list.splice(0, drop);
    }
  }

  function setFiring(firingKeys) {
    const firing = new Set(firingKeys || []);
    for (const [key, chart] of state.charts) {
      const now = firing.has(key);
      if (now !== chart.firing) {
        chart.firing = now;
        chart.dirty = true;
      }
    }
  }

  function scheduleRender() {
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(render);
  }

  function render() {
    state.renderQueued = false;
    for (const chart of state.charts.values()) {
      if (!chart.dirty) continue;
      chart.dirty = false;
      const shown = fmt.withUnit(chart.current, chart.def.unit);
      chart.dom.value.textContent = shown.text;
      chart.dom.unit.textContent = shown.unit;
      chart.dom.card.dataset.level = levelFor(chart.def, chart.current);
      chart.dom.card.classList.toggle("firing", chart.firing);
      chart.dom.firing.hidden = !chart.firing;
      if (chart.plot) chart.plot.setData(plotData(chart), true);
      chart.drawnAt = performance.now();
    }
  }

  function markAllDirty() {
    for (const chart of state.charts.values()) chart.dirty = true;
    scheduleRender();
  }

  // ---- data in --------------------------------------------------------------

  function applyFrame(frame, live) {
    if (typeof frame.seq !== "number" || typeof frame.ts !== "number") return;
    if (frame.seq <= state.lastSeq) {
      // Seen already, unless the collector's sequence restarted (its Redis was
      // emptied): then time still moves forward while seq went back.
      if (frame.ts <= state.lastFrameTs) return;
    }
    state.lastSeq = frame.seq;
    state.lastFrameTs = frame.ts;
    if (live) state.clockOffset = frame.ts - Date.now() / 1000;
    let unknown = false;
    for (const [key, value] of Object.entries(frame.values || {})) {
      const chart = state.charts.get(key);
      if (chart) addPoint(chart, frame.ts, value);
      else if (!state.hidden.has(key)) unknown = true;
    }
    setFiring(frame.firing);
    // A metric the page has no definition for yet (a collector started after
    // the page loaded): the history answer carries its label and thresholds.
    if (unknown && live) queueRefetch();
  }

  function applyMetric(point) {
    if (typeof point.name !== "string" || typeof point.ts !== "number") return;
    if (state.hidden.has(point.name)) return;
    let chart = state.charts.get(point.name);
    if (!chart) {
      // Registered on its first publish; history will bring its definition later.
      chart = createChart({ key: point.name, label: point.name, unit: "", source: "custom", order: 100 });
      layout();
    }
    addPoint(chart, point.ts, point.value);
  }

  // A history answer: `series` {key: [[ts, avg, min, max], ...]} with `step`
  // seconds per point (0: raw values), for the live window or a zoomed range.
  function applyHistory(history) {
    const keys = new Set(history.metrics.map((def) => def.key));
    for (const key of Array.from(state.charts.keys())) {
      if (!keys.has(key)) removeChart(key);
    }
    for (const def of history.metrics) {
      const chart = state.charts.get(def.key) || createChart(def);
      applyDefinition(chart, def);
      clearSeries(chart);
      if (!state.zoom) chart.current = null;
    }
    // Whatever the server sends but does not list is disabled: ignore it live too.
    state.hidden = new Set(Object.keys(history.series || {}).filter((key) => !keys.has(key)));
    state.step = history.step || 0;
    state.lastSeq = 0;
    state.lastFrameTs = 0;
    layout();
    const lastCounts = history.last_counts || {};
    for (const [key, points] of Object.entries(history.series || {})) {
      const chart = state.charts.get(key);
      if (!chart) continue;
      points.forEach(([ts, avg, low, high], i) => {
        const last = i === points.length - 1;
        const count = state.step === 0 ? 1 : last && key in lastCounts ? lastCounts[key] : null;
        insertAt(chart, chart.xs.length, ts, avg, low, high, count);
      });
      if (!state.zoom && points.length > 0) chart.current = points[points.length - 1][1];
    }
    markAllDirty();
  }

  // ---- zoom and CSV -------------------------------------------------------

  async function zoomTo(start, end) {
    if (!(end - start >= 10)) return;
    const generation = ++state.generation;
    state.zoom = { start, end };
    document.body.classList.add("zoomed");
    let response;
    try {
      const query = "?start=" + start.toFixed(3) + "&end=" + end.toFixed(3);
      response = await fetch(config.historyUrl + query, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
    } catch (err) {
      if (generation === state.generation) unzoom();
      return;
    }
    if (generation !== state.generation) return;
    if (!response.ok) return unzoom();
    const history = await response.json();
    if (generation !== state.generation) return;
    applyHistory(history);
  }

  // Back to the live window (double-click a chart, or pick a window).
  function unzoom() {
    if (!state.zoom) return;
    state.zoom = null;
    document.body.classList.remove("zoomed");
    loadHistory();
  }

  function csvTime(ts) {
    return new Date(ts * 1000).toISOString();
  }

  function downloadCsv(chart) {
    const [start, end] = xRange();
    const lines = [state.step > 0 ? "time,avg,min,max" : "time,value"];
    chart.xs.forEach((ts, i) => {
      if (ts < start - state.step || ts > end) return;
      const row = state.step > 0 ? [chart.ys[i], chart.lows[i], chart.highs[i]] : [chart.ys[i]];
      lines.push([csvTime(ts), ...row].join(","));
    });
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = chart.def.key + "-" + csvTime(start).slice(0, 19).replace(/:/g, "") + ".csv";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  // ---- history + stream -------------------------------------------------

  async function loadHistory(attempt) {
    const generation = ++state.generation;
    state.zoom = null;
    document.body.classList.remove("zoomed");
    ld.stream.close();
    let response;
    try {
      response = await fetch(config.historyUrl + "?minutes=" + state.windowMinutes, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
    } catch (err) {
      return retryHistory(generation, attempt, "offline");
    }
    if (generation !== state.generation) return;
    if (response.status === 401 || response.status === 403) {
      ld.stream.setStatus("offline", "not allowed: sign in again");
      return;
    }
    if (!response.ok) return retryHistory(generation, attempt, "reconnecting");
    const history = await response.json();
    if (generation !== state.generation) return;
    applyHistory(history);
    ld.stream.open(history.last_event_id);
  }

  function retryHistory(generation, attempt, status) {
    if (generation !== state.generation) return;
    const tries = (attempt || 0) + 1;
    const delay = Math.min(30000, 1000 * 2 ** Math.min(tries, 5)) * (0.5 + Math.random() / 2);
    ld.stream.setStatus(status, status === "offline" ? "offline, retrying" : "reconnecting");
    setTimeout(() => {
      if (generation === state.generation) loadHistory(tries);
    }, delay);
  }

  function queueRefetch() {
    if (state.refetchQueued) return;
    state.refetchQueued = true;
    setTimeout(() => {
      state.refetchQueued = false;
      loadHistory();
    }, 1000);
  }

  // Events from the stream (stream.js) only while it is open from our history.
  ld.on("sse:frame", (frame) => {
    applyFrame(frame, true);
    scheduleRender();
  });
  ld.on("sse:metric", (point) => {
    applyMetric(point);
    scheduleRender();
  });
  // The stream could not resume (we were away longer than storage keeps):
  // reload the window and resume from where that history ends.
  ld.on("sse:stream-reset", (reset) => {
    const resetChannels = reset && Array.isArray(reset.channels) ? reset.channels : null;
    if (resetChannels === null || resetChannels.includes(config.metricsChannel)) loadHistory();
  });

  function tick() {
    // Keep every window sliding, also for charts that get no data (a custom metric
    // pushed now and then, a paused collector): redraw what was not drawn this second.
    const stale = performance.now() - 900;
    for (const chart of state.charts.values()) if (chart.drawnAt < stale) chart.dirty = true;
    scheduleRender();
  }

  // ---- window picker ----------------------------------------------------

  function initialWindow() {
    try {
      const saved = parseInt(window.localStorage.getItem(WINDOW_STORAGE_KEY), 10);
      if (WINDOWS.includes(saved)) return saved;
    } catch (err) {
      /* storage blocked: use the default */
    }
    return DEFAULT_WINDOW;
  }

  function showWindow() {
    for (const chip of document.querySelectorAll("[data-window]")) {
      const active = parseInt(chip.dataset.window, 10) === state.windowMinutes;
      chip.classList.toggle("active", active);
      chip.setAttribute("aria-pressed", active ? "true" : "false");
    }
  }

  function chooseWindow(minutes) {
    if (!WINDOWS.includes(minutes) || (minutes === state.windowMinutes && !state.zoom)) return;
    state.windowMinutes = minutes;
    try {
      window.localStorage.setItem(WINDOW_STORAGE_KEY, String(minutes));
    } catch (err) {
      /* not remembered; still applied */
    }
    showWindow();
    loadHistory();
  }

  for (const chip of document.querySelectorAll("[data-window]")) {
    chip.addEventListener("click", () => chooseWindow(parseInt(chip.dataset.window, 10)));
  }

  // ---- page life ----------------------------------------------------------

  let resizeQueued = false;
  function resizePlots() {
    resizeQueued = false;
    for (const chart of state.charts.values()) {
      if (!chart.plot) continue;
      const width = chart.dom.plot.clientWidth;
      if (width > 0 && Math.abs(width - chart.plot.width) > 1) chart.plot.setSize({ width, height: PLOT_HEIGHT });
    }
  }
  new ResizeObserver(() => {
    if (resizeQueued) return;
    resizeQueued = true;
    requestAnimationFrame(resizePlots);
  }).observe(root);

  // The WebSocket's `snapshot` (sent by control.js when the tab is shown again)
  // brings current values at once, before the stream has caught up.
  ld.on("ws:snapshot", (message) => {
    if (!message || typeof message.values !== "object" || message.values === null) return;
    for (const [key, value] of Object.entries(message.values)) {
      const chart = state.charts.get(key);
      if (chart && typeof value === "number") {
        chart.current = value;
        chart.dirty = true;
      }
    }
    scheduleRender();
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") markAllDirty();
  });

  // A read-only view for tests and the console.
  ld.charts = {
    windowMinutes: () => state.windowMinutes,
    lastSeq: () => state.lastSeq,
    keys: () => sortedCharts().map((chart) => chart.def.key),
    step: () => state.step,
    zoomed: () => (state.zoom ? { start: state.zoom.start, end: state.zoom.end } : null),
    points: (key) => (state.charts.has(key) ? state.charts.get(key).xs.length : 0),
    series: (key) => (state.charts.has(key) ? [state.charts.get(key).xs.slice(), state.charts.get(key).ys.slice()] : null),
    bands: (key) => (state.charts.has(key) ? [state.charts.get(key).lows.slice(), state.charts.get(key).highs.slice()] : null),
    reload: () => loadHistory(),
  };

  showWindow();
  ld.stream.setStatus("connecting", "loading history");
  setInterval(tick, 1000);
  loadHistory();
})();
