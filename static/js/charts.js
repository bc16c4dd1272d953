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
  // A card whose last value is older than this many sampling intervals (and at least
  // STALE_MIN_S; a minute for custom metrics, which come when they come) shows its age.
  const STALE_INTERVALS = 3;
  const STALE_MIN_S = 10;
  const STALE_CUSTOM_S = 60;
  // The text alternative of a chart is rewritten at most this often, not on every tick.
  const SUMMARY_EVERY_MS = 5000;
  // Hovering one chart moves the crosshair on all of them (uPlot's cursor sync).
  const SYNC = uPlot.sync("livedash");
  const SECTIONS = { system: "host", app: "app" }; // anything else: "custom"

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
    interval: 1, // seconds between collector ticks, from the control socket
  };

  const fmt = ld.format;

  function levelFor(def, value) {
    if (value === null || value === undefined) return "ok";
    if (def.critical !== null && def.critical !== undefined && value >= def.critical) return "critical";
    if (def.warning !== null && def.warning !== undefined && value >= def.warning) return "warning";
    return "ok";
  }

  // The words for a card's state, so it is never told by colour alone.
  const STATE_WORDS = {
    ok: gettext("normal"),
    warning: gettext("warning"),
    critical: gettext("critical"),
    firing: gettext("alert firing"),
    stale: gettext("no recent value"),
    empty: gettext("no values in this window"),
  };

  // The theme's colours are light-dark() pairs, which a canvas cannot take: each is read
  // as the colour an element computes from it, once the theme has picked its side.
  const colorProbe = element("span");
  colorProbe.hidden = true;
  function cssVar(name, fallback) {
    colorProbe.style.color = `var(${name}, ${fallback})`;
    document.body.append(colorProbe);
    const value = getComputedStyle(colorProbe).color;
    colorProbe.remove();
    return value || fallback;
  }

  const COLORS = {};
  // Canvas colours come from the theme's CSS variables; read again when the theme changes.
  function readColors() {
    Object.assign(COLORS, {
      line: cssVar("--accent", "#4f8cff"),
      fill: cssVar("--accent-fill", "rgba(79, 140, 255, 0.12)"),
      grid: cssVar("--border", "#2a3550"),
      axis: cssVar("--muted", "#8d99b3"),
      text: cssVar("--text", "#e6ebf5"),
      warning: cssVar("--warning", "#f2b53a"),
      critical: cssVar("--critical", "#f2555a"),
    });
  }
  readColors();

  // ---- charts -----------------------------------------------------------

  function windowSeconds() {
    return state.windowMinutes * 60;
  }

  function serverNow() {
    return Date.now() / 1000 + state.clockOffset;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
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
      const day = d.toLocaleDateString(ld.lang, { month: "short", day: "numeric" });
      return end - start > 8 * 86400 ? day : day + " " + fmt.times([ts])[0];
    });
  }

  // A card: title with its state in words, the current value, the age of that value
  // when it is stale, the value under the cursor (readout), and the plot, whose text
  // alternative (current value, range, state) is its aria-label.
  function makeCard(def) {
    const card = element("article", "chart-card");
    card.dataset.key = def.key;
    card.dataset.level = "ok";
    const head = element("header", "chart-head");
    const titleBox = element("div", "chart-title-box");
    const title = element("h3", "chart-title");
    const stateTag = element("span", "chart-state");
    stateTag.hidden = true;
    titleBox.append(title, stateTag);
    const valueBox = element("div", "chart-value-box");
    const value = element("span", "chart-value", "–");
    const unit = element("span", "chart-unit");
    const age = element("span", "chart-age");
    age.hidden = true;
    const csv = element("button", "chart-csv", gettext("CSV"));
    csv.type = "button";
    csv.title = gettext("Download what this chart shows as CSV");
    valueBox.append(value, unit, csv);
    head.append(titleBox, valueBox);
    const readout = element("p", "chart-readout");
    const plot = element("div", "chart-plot");
    plot.setAttribute("role", "img");
    card.append(head, age, plot, readout);
    return { card, title, stateTag, value, unit, age, readout, plot, csv };
  }

  function ruleColor(rule) {
    return rule.level === "error" || rule.level === "critical" ? COLORS.critical : COLORS.warning;
  }

  // Dashed lines at the warning and critical thresholds, and a solid one, labelled,
  // at each alert rule's threshold, when they are in view.
  function drawThresholds(u, def) {
    const ctx = u.ctx;
    const scale = u.scales.y;
    const lines = [
      [def.warning, COLORS.warning, [4, 4], null],
      [def.critical, COLORS.critical, [4, 4], null],
    ];
    for (const rule of def.rules || []) {
      const label = (rule.comparison === "below" ? "< " : "> ") + fmt.joined(rule.threshold, def.unit);
      lines.push([rule.threshold, ruleColor(rule), [], label]);
    }
    const ratio = window.devicePixelRatio || 1;
    for (const [threshold, color, dash, label] of lines) {
      if (threshold === null || threshold === undefined) continue;
      if (threshold < scale.min || threshold > scale.max) continue;
      const y = Math.round(u.valToPos(threshold, "y", true)) + 0.5;
      ctx.save();
      ctx.strokeStyle = color;
      ctx.globalAlpha = label ? 0.9 : 0.6;
      ctx.setLineDash(dash.map((d) => d * ratio));
      ctx.lineWidth = ratio;
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      if (label) {
        ctx.globalAlpha = 1;
        ctx.fillStyle = color;
        ctx.font = 11 * ratio + "px system-ui, sans-serif";
        ctx.textAlign = "right";
        ctx.textBaseline = "bottom";
        ctx.fillText(label, u.bbox.left + u.bbox.width - 4 * ratio, y - 2 * ratio);
      }
      ctx.restore();
    }
  }

  // Rule thresholds stay in view: the range grows to include them.
  function yRange(def, min, max) {
    if (def.unit === "%") return [0, 100];
    const thresholds = (def.rules || []).map((rule) => rule.threshold);
    if (min === null || max === null) {
      if (!thresholds.length) return [0, 1];
      min = max = thresholds[0];
    }
    for (const t of thresholds) {
      min = Math.min(min, t);
      max = Math.max(max, t);
    }
    const low = Math.min(0, min);
    const high = max > low ? max * 1.15 : low + 1;
    return [low, high];
  }

  function decimals(chart) {
    return fmt.decimalsFor(chart.def.unit, chart.whole);
  }

  // The value and time under the cursor, as text (also for assistive technology).
  function showReadout(chart, u) {
    const index = u.cursor.idx;
    let text = "";
    if (index !== null && index !== undefined && chart.xs[index] !== undefined) {
      text = fmt.time(chart.xs[index]) + " · " + fmt.joined(chart.ys[index], chart.def.unit, decimals(chart));
    }
    if (chart.dom.readout.textContent !== text) chart.dom.readout.textContent = text;
  }

  function axisWidth(u, values) {
    if (!values || !values.length) return 40;
    u.ctx.font = "11px system-ui, sans-serif";
    const widest = Math.max(...values.map((v) => u.ctx.measureText(v || "").width));
    return Math.ceil(widest / (window.devicePixelRatio || 1) + 14);
  }

  function makePlot(chart) {
    const width = Math.max(200, chart.dom.plot.clientWidth || 320);
    const options = {
      width: width,
      height: PLOT_HEIGHT,
      legend: { show: false },
      // Dragging selects a range to zoom into (finer data is fetched for it); the
      // crosshair moves on every chart at once, but a drag zooms only once.
      cursor: {
        drag: { x: true, y: false, setScale: false },
        points: { size: 6 },
        sync: {
          key: SYNC.key,
          setSeries: false,
          filters: { pub: (type) => type !== "mousedown" && type !== "mouseup" },
        },
      },
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
          size: axisWidth,
          // Byte units tick at binary steps (64 KiB, 128 KiB...), everything else at decimal ones.
          incrs: fmt.isBytes(chart.def.unit) ? fmt.binaryIncrements : undefined,
          // Counts get no "0.5" labels: only whole ticks are labelled when every value is whole.
          values: (u, splits, axisIndex, space, increment) => {
            const labels = fmt.axis(splits, chart.def.unit, chart.whole ? Math.max(1, increment) : increment);
            return splits.map((v, i) => (chart.whole && !Number.isInteger(v) ? "" : labels[i]));
          },
        },
      ],
      series: [
        {},
        {
          stroke: COLORS.line,
          width: 1.5,
          fill: COLORS.fill,
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
        setCursor: [(u) => showReadout(chart, u)],
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
    // The canvas says nothing to assistive technology; the plot's aria-label does.
    for (const canvas of chart.dom.plot.querySelectorAll("canvas")) canvas.setAttribute("aria-hidden", "true");
    plot.over.addEventListener("dblclick", () => unzoom());
    return plot;
  }

  function plotData(chart) {
    return [chart.xs, chart.ys, chart.lows, chart.highs];
  }

  function createChart(def) {
    const dom = makeCard(def);
    const chart = {
      def,
      dom,
      current: null,
      currentAt: null, // server ts of the current value
      whole: true, // every value so far is an integer: shown without decimals
      firing: false,
      plot: null,
      dirty: true,
      drawnAt: 0,
      summarisedAt: -Infinity,
    };
    clearSeries(chart);
    dom.csv.addEventListener("click", () => downloadCsv(chart));
    applyDefinition(chart, def);
    state.charts.set(def.key, chart);
    return chart;
  }

  function applyDefinition(chart, def) {
    const redraw = chart.plot && JSON.stringify(chart.def) !== JSON.stringify(def);
    chart.def = def;
    chart.dom.title.textContent = def.label || def.key;
    chart.dom.card.title = def.key;
    chart.dom.card.dataset.section = SECTIONS[def.source] || "custom";
    chart.summarisedAt = -Infinity;
    chart.dirty = true;
    // A new unit or rule changes the axes and lines: build the plot again.
    if (redraw) {
      chart.plot.destroy();
      chart.plot = null;
    }
  }

  function sortedCharts() {
    return Array.from(state.charts.values()).sort(
      (a, b) => (a.def.order ?? 100) - (b.def.order ?? 100) || a.def.key.localeCompare(b.def.key),
    );
  }

  function sectionGrid(name) {
    const section = root.querySelector('.chart-section[data-section="' + name + '"]');
    return section ? section.querySelector(".chart-grid") : root;
  }

  // Cards in display order, each in its section (the host's metrics, custom ones,
  // livedash's own); uPlot instances created once a card has its width.
  function layout() {
    const charts = sortedCharts();
    const empty = root.querySelector(".empty");
    if (charts.length === 0) {
      if (!empty) {
        root.append(
          element(
            "p",
            "empty",
            gettext("No metrics yet. They appear as soon as the collector (manage.py collect_metrics) runs."),
          ),
        );
      }
    } else if (empty) {
      empty.remove();
    }
    // append moves cards into order
    charts.forEach((chart) => sectionGrid(chart.dom.card.dataset.section).append(chart.dom.card));
    for (const section of root.querySelectorAll(".chart-section")) {
      section.hidden = !section.querySelector(".chart-card");
    }
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
    if (latest) {
      chart.current = value;
      chart.currentAt = ts;
    }
    if (chart.whole && !Number.isInteger(value)) chart.whole = false;
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

  // How old a card's value is, in seconds, when that counts as stale; else null.
  function staleAge(chart) {
    if (chart.currentAt === null) return null;
    const age = serverNow() - chart.currentAt;
    const custom = chart.dom.card.dataset.section === "custom";
    const limit = custom ? STALE_CUSTOM_S : Math.max(STALE_MIN_S, STALE_INTERVALS * state.interval);
    return age > limit ? age : null;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // The chart's text alternative: what it shows, its current value, its range in the
  // window and its state.
  function summary(chart, level, age) {
    const unit = chart.def.unit;
    const d = decimals(chart);
    const parts = [chart.def.label || chart.def.key];
    if (chart.current === null) {
      parts.push(STATE_WORDS.empty);
    } else {
      parts.push(interpolate(gettext("current value %s"), [fmt.joined(chart.current, unit, d)]));
      const low = Math.min(...chart.ys);
      const high = Math.max(...chart.ys);
      parts.push(
        interpolate(gettext("range %(low)s to %(high)s over the last %(minutes)s min"), {
          low: fmt.joined(low, unit, d),
          high: fmt.joined(high, unit, d),
          minutes: state.windowMinutes,
        }, true),
      );
      parts.push(STATE_WORDS[chart.firing ? "firing" : level]);
      if (age !== null) parts.push(interpolate(gettext("last value %s"), [fmt.age(age)]));
    }
    return parts.join("; ");
  }

  function render() {
    state.renderQueued = false;
    const now = performance.now();
    for (const chart of state.charts.values()) {
      if (!chart.dirty) continue;
      chart.dirty = false;
      const d = decimals(chart);
      const shown = fmt.withUnit(chart.current, chart.def.unit, d);
      setText(chart.dom.value, shown.text);
      setText(chart.dom.unit, shown.unit);
      const level = levelFor(chart.def, chart.current);
      const age = staleAge(chart);
      chart.dom.card.dataset.level = level;
      chart.dom.card.classList.toggle("firing", chart.firing);
      chart.dom.card.classList.toggle("stale", age !== null);
      // The state in words beside the title: never told by colour alone.
      const tag = chart.firing ? "firing" : level === "ok" ? null : level;
      chart.dom.stateTag.hidden = tag === null;
      if (tag !== null) {
        chart.dom.stateTag.dataset.level = tag;
        setText(chart.dom.stateTag, STATE_WORDS[tag]);
      }
      chart.dom.age.hidden = age === null;
      if (age !== null) setText(chart.dom.age, interpolate(gettext("last value %s"), [fmt.age(age)]));
      if (now - chart.summarisedAt > SUMMARY_EVERY_MS) {
        chart.summarisedAt = now;
        chart.dom.plot.setAttribute("aria-label", summary(chart, level, age));
      }
      if (chart.plot) chart.plot.setData(plotData(chart), true);
      chart.drawnAt = now;
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
    // A chart draws its metric's series without labels; a labelled series (one of
    // many hosts, say) is not mixed into that line.
    if (point.labels && typeof point.labels === "object" && Object.keys(point.labels).length > 0) return;
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
  // History names series by id (`name{label="value",...}`, an unlabelled one by its
  // name). A chart draws its metric's series without labels, or the collector's own
  // (labelled with its host), which the live frames feed.
  function metricNameOf(seriesId) {
    const brace = seriesId.indexOf("{");
    return brace < 0 ? seriesId : seriesId.slice(0, brace);
  }

  function escapeLabelValue(value) {
    return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
  }

  function chartKeyOf(seriesId) {
    const name = metricNameOf(seriesId);
    if (name === seriesId) return seriesId;
    const host = config.collectorHost || "";
    return host && seriesId === name + '{host="' + escapeLabelValue(host) + '"}' ? name : null;
  }

  function applyHistory(history) {
    const keys = new Set(history.metrics.map((def) => def.key));
    for (const key of Array.from(state.charts.keys())) {
      if (!keys.has(key)) removeChart(key);
    }
    for (const def of history.metrics) {
      const chart = state.charts.get(def.key) || createChart(def);
      applyDefinition(chart, def);
      clearSeries(chart);
      if (!state.zoom) {
        chart.current = null;
        chart.currentAt = null;
      }
      chart.whole = true;
    }
    // Whatever the server sends but does not list is disabled: ignore it live too.
    state.hidden = new Set(Object.keys(history.series || {}).map(metricNameOf).filter((key) => !keys.has(key)));
    state.step = history.step || 0;
    state.lastSeq = 0;
    state.lastFrameTs = 0;
    layout();
    const lastCounts = history.last_counts || {};
    for (const [key, points] of Object.entries(history.series || {})) {
      const chart = state.charts.get(chartKeyOf(key));
      if (!chart) continue;
      chart.seriesId = key;
      points.forEach(([ts, avg, low, high], i) => {
        const last = i === points.length - 1;
        const count = state.step === 0 ? 1 : last && key in lastCounts ? lastCounts[key] : null;
        insertAt(chart, chart.xs.length, ts, avg, low, high, count);
      });
      // Whole when every value is: a bucket's min and max are values, its average is not.
      if (!points.every(([, , low, high]) => Number.isInteger(low) && Number.isInteger(high))) chart.whole = false;
      if (!state.zoom && points.length > 0) {
        const [ts, avg] = points[points.length - 1];
        chart.current = avg;
        // A bucket starts before its last value: its end, at most now, is that value's age.
        chart.currentAt = Math.min(ts + state.step, serverNow());
      }
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

  // A CSV field: quoted when it holds a comma, a quote or a line break (series ids do).
  function csvField(text) {
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function downloadCsv(chart) {
    const [start, end] = xRange();
    // Each row names its series by id, as history and the series API do.
    const series = csvField(chart.seriesId || chart.def.key);
    const lines = [state.step > 0 ? "series,time,avg,min,max" : "series,time,value"];
    chart.xs.forEach((ts, i) => {
      if (ts < start - state.step || ts > end) return;
      const row = state.step > 0 ? [chart.ys[i], chart.lows[i], chart.highs[i]] : [chart.ys[i]];
      lines.push([series, csvTime(ts), ...row].join(","));
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
      ld.stream.setStatus("offline", gettext("not allowed: sign in again"));
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
    ld.stream.setStatus(status, status === "offline" ? gettext("offline, retrying") : gettext("reconnecting"));
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
  // A metric's label, unit, thresholds or rules were edited in the admin: fetch the
  // definitions again (in this page's language), with the data, from where we are.
  ld.on("sse:metric-config", () => queueRefetch());
  ld.on("sampling", (sampling) => {
    if (typeof sampling.interval === "number" && sampling.interval > 0) state.interval = sampling.interval;
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

  // A new theme (prefs.js): new canvas colours, so every plot is built again.
  function rebuildPlots() {
    readColors();
    for (const chart of state.charts.values()) {
      if (chart.plot) chart.plot.destroy();
      chart.plot = null;
    }
    layout();
    markAllDirty();
  }
  document.addEventListener("livedash:theme", rebuildPlots);
  if (window.matchMedia) {
    window.matchMedia("(prefers-color-scheme: light)").addEventListener("change", rebuildPlots);
  }

  const zoneNode = document.getElementById("timezone");
  if (zoneNode) zoneNode.textContent = interpolate(gettext("Times in %s"), [fmt.timeZone()]);

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
    definition: (key) => (state.charts.has(key) ? Object.assign({}, state.charts.get(key).def) : null),
    colors: () => Object.assign({}, COLORS),
  };

  showWindow();
  ld.stream.setStatus("connecting", gettext("loading history"));
  setInterval(tick, 1000);
  loadHistory();
})();
