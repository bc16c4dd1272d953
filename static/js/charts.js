// The live charts: one uPlot chart per enabled metric, filled from the history
// endpoint and continued from the `metrics` channel's events ("sse:frame",
// "sse:metric" from stream.js), the stream resuming exactly where the history
// ended (its last_event_id), so the seam has no gap and no duplicate.
//
// A chart is a definition (title, unit, thresholds, rules) and a set of series,
// keyed by series id (series.js): a metric pushed for many hosts is one chart with
// a line per host, a legend naming each by its labels, the lines past MAX_LINES
// folded into "N more". A chart of one series looks as it always did: one line
// with its min-max band, no legend.
//
// On a dashboard people built (board.js, `ld.board`), the charts are its panels
// instead: each a definition from the panel (title, unit, thresholds, type), a series
// going to every panel whose selectors take it, history asked for those selectors
// only. A `stat` panel is a card without a plot, a `gauge` one with a bar, a `table`
// one with a row per series: the same data, drawn another way.
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
  // The text alternative of a chart is rewritten at most this often, not on every tick
  // (but at once when the chart gets its first value or loses its last one).
  const SUMMARY_EVERY_MS = 5000;
  // Hovering one chart moves the crosshair on all of them (uPlot's cursor sync).
  const SYNC = uPlot.sync("livedash");
  const SECTIONS = { system: "host", app: "app" }; // anything else: "custom"
  // Lines a chart draws at most: past that, colours stop telling lines apart. The
  // rest are listed under "N more", up to MAX_LISTED of them.
  const MAX_LINES = 8;
  const MAX_LISTED = 100;
  // Lines past the first four are also dashed, so no two drawn lines differ by colour alone.
  const DASHED_FROM = 4;

  if (!root || !ld || !ld.stream || !ld.series) return;
  if (!config.canViewMetrics) return; // stream.js shows "no permission"
  const board = ld.board || null;

  const state = {
    windowMinutes: (board && WINDOWS.includes(board.windowMinutes()) && board.windowMinutes()) || initialWindow(),
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
    annotations: [], // from the annotations API, for the shown range: deploys, incidents, maintenance
    annotationsGeneration: 0,
    firingByRule: new Map(), // alert rule id -> ids of its series that fire (the socket's alert states)
    firingSeries: new Set(), // every firing series id, whichever rule
  };
  // A wall screen (kiosk.js) is read from across the room: larger axis labels.
  const KIOSK = document.body.classList.contains("kiosk");
  const AXIS_FONT = (KIOSK ? "16px" : "11px") + " system-ui, sans-serif";
  const AXIS_HEIGHT = KIOSK ? 36 : 28;
  // Annotations are read again this often while the live window slides.
  const ANNOTATIONS_EVERY_MS = 30000;
  // A marker is hovered within this many CSS pixels of its line.
  const MARKER_HOVER_PX = 4;

  const fmt = ld.format;
  const ids = ld.series;

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
      annotation: cssVar("--info", "#6a9dff"),
      series: Array.from({ length: MAX_LINES }, (_, i) => cssVar("--series-" + (i + 1), "#4f8cff")),
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
    // The legend of a chart of several series: an entry per drawn line (its colour,
    // its labels, its value: the current one, or the one under the cursor), then the
    // series not drawn, listed under "N more".
    const legend = element("ul", "chart-legend");
    legend.setAttribute("aria-label", gettext("Series"));
    legend.hidden = true;
    const more = element("details", "chart-more");
    const moreSummary = element("summary");
    const moreList = element("ul", "chart-legend chart-more-list");
    // It scrolls when long: reachable from the keyboard.
    moreList.tabIndex = 0;
    moreList.setAttribute("aria-label", gettext("Series not drawn"));
    more.append(moreSummary, moreList);
    more.hidden = true;
    // A gauge panel's bar (its value against the panel's range), a table panel's rows.
    const gauge = element("div", "chart-gauge");
    gauge.setAttribute("role", "meter");
    gauge.setAttribute("aria-valuemin", "0");
    const gaugeBar = element("div", "chart-gauge-bar");
    gauge.append(gaugeBar);
    gauge.hidden = true;
    const table = element("table", "chart-table");
    const tableBody = element("tbody");
    table.append(tableBody);
    table.hidden = true;
    card.append(head, age, plot, gauge, table, readout, legend, more);
    return {
      card, title, stateTag, value, unit, age, readout, plot, csv, legend, more, moreSummary, moreList,
      gauge, gaugeBar, table, tableBody,
    };
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

  // ---- annotations ----------------------------------------------------------

  // The metric an annotation's selector names (`cpu{host="a"}`, `{__name__="cpu"}`),
  // or null: then it belongs on every chart, as the API chooses them.
  function annotationMetric(match) {
    if (typeof match !== "string" || !match.trim()) return null;
    const named = /^\s*([A-Za-z_:][A-Za-z0-9_:]*)/.exec(match);
    if (named) return named[1];
    const inner = /__name__\s*=\s*"([^"]*)"/.exec(match);
    return inner ? inner[1] : null;
  }

  // The annotations drawn on a chart: those for every chart and those naming its metric.
  function annotationsOf(chart) {
    // A panel of a dashboard is keyed by the panel: it takes those naming a metric it draws.
    const metrics = board ? new Set(Array.from(chart.series.keys(), ids.nameOf)) : null;
    return state.annotations.filter(
      (note) => note.metric === null || note.metric === chart.def.key || (metrics !== null && metrics.has(note.metric)),
    );
  }

  function annotationText(note) {
    const when = note.end === null ? fmt.time(note.time) : fmt.time(note.time) + "–" + fmt.time(note.end);
    return when + " " + note.text;
  }

  // A band (with an end) or a marker line for each annotation in view, under the lines.
  function drawAnnotations(u, chart) {
    const notes = annotationsOf(chart);
    if (!notes.length) return;
    const ctx = u.ctx;
    const ratio = window.devicePixelRatio || 1;
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    const top = u.bbox.top;
    const height = u.bbox.height;
    ctx.save();
    ctx.fillStyle = COLORS.annotation;
    ctx.strokeStyle = COLORS.annotation;
    ctx.lineWidth = ratio;
    for (const note of notes) {
      const end = note.end === null ? note.time : note.end;
      if (end < min || note.time > max) continue;
      const left = u.valToPos(Math.max(note.time, min), "x", true);
      if (note.end !== null) {
        const right = u.valToPos(Math.min(end, max), "x", true);
        ctx.globalAlpha = 0.12;
        ctx.fillRect(left, top, Math.max(ratio, right - left), height);
      }
      if (note.time >= min) {
        // The start of a band, or the marker itself: a dashed line across the plot.
        const x = Math.round(left) + 0.5;
        ctx.globalAlpha = 0.8;
        ctx.setLineDash([3 * ratio, 3 * ratio]);
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + height);
        ctx.stroke();
      }
    }
    ctx.restore();
  }

  // The annotations under the cursor's x (in CSS pixels of the plot), as text.
  function annotationsAt(u, chart, left) {
    if (left === null || left === undefined || left < 0) return [];
    const ts = u.posToVal(left, "x");
    const slack = MARKER_HOVER_PX * ((u.scales.x.max - u.scales.x.min) / Math.max(1, u.bbox.width / (window.devicePixelRatio || 1)));
    return annotationsOf(chart).filter((note) =>
      note.end === null ? Math.abs(ts - note.time) <= slack : ts >= note.time - slack && ts <= note.end,
    );
  }

  // Hovering an annotation shows its text: as the plot's title (a tooltip) and in the readout.
  function showAnnotation(chart, u) {
    const notes = annotationsAt(u, chart, u.cursor.left);
    const text = notes.map(annotationText).join("\n");
    if (u.over.title !== text) u.over.title = text;
    let line = chart.dom.readout.querySelector(".chart-annotation");
    if (!notes.length) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = element("span", "chart-annotation");
      chart.dom.readout.append(line);
    }
    setText(line, " · " + notes.map((note) => note.text).join(" · "));
  }

  async function loadAnnotations() {
    if (!config.annotationsUrl) return;
    const generation = ++state.annotationsGeneration;
    const [start, end] = xRange();
    let answer;
    try {
      const query = "?start=" + start.toFixed(3) + "&end=" + end.toFixed(3);
      const response = await fetch(config.annotationsUrl + query, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      answer = await response.json();
    } catch (err) {
      return; // kept as they were; read again on the next round
    }
    if (generation !== state.annotationsGeneration || !Array.isArray(answer.annotations)) return;
    state.annotations = answer.annotations
      .filter((note) => typeof note.time === "number" && typeof note.text === "string")
      .map((note) => ({
        id: note.id,
        time: note.time,
        end: typeof note.end === "number" ? note.end : null,
        text: note.text,
        tags: Array.isArray(note.tags) ? note.tags : [],
        metric: annotationMetric(note.match),
      }));
    for (const chart of state.charts.values()) if (chart.plot) chart.plot.redraw(false);
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
    if (typeof chart.def.decimals === "number") return chart.def.decimals;
    return fmt.decimalsFor(chart.def.unit, chart.whole);
  }

  function hasPlot(chart) {
    return !chart.def.type || chart.def.type === "timeseries";
  }

  function plotHeight(chart) {
    return board ? board.plotHeight(chart.def.key) : PLOT_HEIGHT;
  }

  // The charts a series goes to: its metric's, or on a dashboard every panel taking it.
  function chartsFor(id) {
    if (!board) {
      const chart = state.charts.get(ids.nameOf(id));
      return chart ? [chart] : [];
    }
    return board.route(id).map((key) => state.charts.get(key)).filter(Boolean);
  }

  // ---- series and legend ------------------------------------------------------

  const NO_SERIES = { xs: [], ys: [], lows: [], highs: [] };

  // Per series, per point: time, average, min, max, and how many values it holds
  // (null when the server did not say), so live values fold into a bucket exactly.
  function seriesOf(chart, id, labels) {
    let series = chart.series.get(id);
    if (!series) {
      series = {
        id,
        labels: labels || ids.labelsOf(id),
        xs: [],
        ys: [],
        lows: [],
        highs: [],
        counts: [],
        current: null,
        currentAt: null, // server ts of the current value
      };
      chart.series.set(id, series);
      chart.legendBuilt = false;
    }
    return series;
  }

  // A chart's series, firing ones first (so a firing host among hundreds is drawn and
  // heads the legend), then in the order they came (history's sorted by id first).
  function orderedSeries(chart) {
    const all = Array.from(chart.series.values());
    if (!state.firingSeries.size) return all;
    return all.filter((series) => isFiring(series)).concat(all.filter((series) => !isFiring(series)));
  }

  function isFiring(series) {
    return state.firingSeries.has(series.id);
  }

  // The series a chart draws.
  function drawnSeries(chart) {
    return orderedSeries(chart).slice(0, MAX_LINES);
  }

  // What a plot was built for: a firing series drawn or not changes its lines.
  function plotKey(drawn) {
    return drawn.map((series) => (isFiring(series) ? "!" : "") + series.id).join("\n");
  }

  // One series keeps today's plot (its line and min-max band); several get a line each.
  function plotShape(drawn) {
    return Math.max(1, drawn.length);
  }

  // The highest current value of the chart's series (what its level is judged by),
  // and the newest of their times.
  function latest(chart) {
    let value = null;
    let at = null;
    for (const series of chart.series.values()) {
      if (series.current !== null && (value === null || series.current > value)) value = series.current;
      if (series.currentAt !== null && (at === null || series.currentAt > at)) at = series.currentAt;
    }
    return { value, at };
  }

  // How long a value counts as current: the same limit a card's age is shown after.
  function staleLimit(chart) {
    if (chart.dom.card.dataset.section === "custom") return STALE_CUSTOM_S;
    return Math.max(STALE_MIN_S, STALE_INTERVALS * state.interval);
  }

  // A series' value at `ts`: its point there, else the last one before it while that
  // is still current (hosts report at their own times); null when it has none.
  function valueAt(chart, series, ts) {
    const index = indexOf(series.xs, ts);
    if (series.xs[index] === ts) return series.ys[index];
    if (index === 0) return null;
    return ts - series.xs[index - 1] <= Math.max(state.step, staleLimit(chart)) ? series.ys[index - 1] : null;
  }

  function shownValue(chart, value) {
    return value === null || value === undefined ? "–" : fmt.joined(value, chart.def.unit, decimals(chart));
  }

  function moreText(count) {
    return interpolate(ngettext("%s more", "%s more", count), [count]);
  }

  function legendEntry(series, common, index) {
    const entry = element("li", "legend-entry");
    entry.dataset.series = series.id;
    entry.title = series.id;
    if (index !== null) {
      const swatch = element("span", "legend-swatch");
      swatch.setAttribute("aria-hidden", "true");
      swatch.dataset.index = String(index + 1);
      entry.append(swatch);
    }
    const name = element("span", "legend-name", ids.labelText(series.id, series.labels, common));
    const value = element("span", "legend-value", "–");
    // A series that stopped reporting says so in words, not by its muted value alone.
    const note = element("span", "sr-only", ", " + STATE_WORDS.stale);
    note.hidden = true;
    entry.append(name);
    // The series an alert fires for, in words beside its labels (and drawn thicker).
    if (isFiring(series)) {
      entry.classList.add("firing");
      entry.append(element("span", "legend-firing", gettext("firing")));
    }
    entry.append(value, note);
    return entry;
  }

  // The legend is built again only when the chart's series change (seriesOf and
  // clearSeries say so); values are written into it on every render and cursor move.
  function buildLegend(chart) {
    if (chart.legendBuilt) return;
    chart.legendBuilt = true;
    const all = orderedSeries(chart);
    const dom = chart.dom;
    const many = all.length > 1;
    dom.legend.hidden = !many;
    const folded = all.slice(MAX_LINES);
    dom.more.hidden = !many || folded.length === 0;
    chart.legendValues = [];
    chart.commonLabels = {};
    if (!many) {
      dom.legend.replaceChildren();
      dom.moreList.replaceChildren();
      return;
    }
    const common = ids.commonLabels(all.map((series) => series.labels));
    chart.commonLabels = common;
    const drawn = all.slice(0, MAX_LINES).map((series, i) => legendEntry(series, common, i));
    dom.legend.replaceChildren(...drawn);
    const listed = folded.slice(0, MAX_LISTED).map((series) => legendEntry(series, common, null));
    if (folded.length > MAX_LISTED) listed.push(element("li", "legend-entry muted", moreText(folded.length - MAX_LISTED)));
    dom.moreList.replaceChildren(...listed);
    setText(dom.moreSummary, moreText(folded.length));
    chart.legendValues = all.slice(0, MAX_LINES + MAX_LISTED).map((series, i) => {
      const entry = i < MAX_LINES ? drawn[i] : listed[i - MAX_LINES];
      return [series, entry, entry.querySelector(".legend-value"), entry.querySelector(".sr-only")];
    });
  }

  // Each entry's value: under the cursor while it is on the chart, else the current
  // one, marked when it is stale. Entries under a closed "N more" are written when it opens.
  function fillLegend(chart) {
    if (chart.dom.legend.hidden) return;
    const open = chart.dom.more.open;
    const hovered = chart.cursorTs !== null;
    chart.legendValues.forEach(([series, entry, node, note], i) => {
      if (i >= MAX_LINES && !open) return;
      const value = hovered ? valueAt(chart, series, chart.cursorTs) : series.current;
      setText(node, shownValue(chart, value));
      const stale = !hovered && staleAge(chart, series.currentAt) !== null;
      if (entry.classList.contains("stale") !== stale) {
        entry.classList.toggle("stale", stale);
        note.hidden = !stale;
      }
    });
  }

  // The value and time under the cursor, as text (also for assistive technology):
  // "12:03:04 · 4.6 %" for one series. For several, the time, each series' value in
  // its legend entry, and the whole list in the readout's text for screen readers.
  function showReadout(chart, u) {
    const index = u.cursor.idx;
    const ts = index !== null && index !== undefined ? u.data[0][index] : undefined;
    const readout = chart.dom.readout;
    if (chart.plotShape <= 1) {
      const text = ts === undefined ? "" : fmt.time(ts) + " · " + shownValue(chart, u.data[1][index]);
      if (readout.textContent !== text) readout.textContent = text;
      return;
    }
    chart.cursorTs = ts === undefined ? null : ts;
    fillLegend(chart);
    if (ts === undefined) {
      readout.replaceChildren();
      return;
    }
    buildLegend(chart);
    const values = drawnSeries(chart).map(
      (series) =>
        " · " + ids.labelText(series.id, series.labels, chart.commonLabels) + " " + shownValue(chart, valueAt(chart, series, ts)),
    );
    const listed = element("span", "sr-only", values.join(""));
    readout.replaceChildren(document.createTextNode(fmt.time(ts)), listed);
  }

  function axisWidth(u, values) {
    if (!values || !values.length) return 40;
    u.ctx.font = AXIS_FONT;
    const widest = Math.max(...values.map((v) => u.ctx.measureText(v || "").width));
    return Math.ceil(widest / (window.devicePixelRatio || 1) + 14);
  }

  // The plot's series: one line with its min-max band, or a line per drawn series.
  function plotSeries(drawn) {
    const ratio = window.devicePixelRatio || 1;
    if (drawn.length <= 1) {
      return {
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
      };
    }
    // Several lines: no fill and no bands, which would hide each other. Series report
    // at their own times; the gaps joining them leaves are spanned, not breaks.
    return {
      series: [
        {},
        ...drawn.map((series, i) => ({
          stroke: COLORS.series[i],
          width: isFiring(series) ? 3 : 1.5,
          dash: i >= DASHED_FROM ? [6 * ratio, 3 * ratio] : undefined,
          spanGaps: false,
        })),
      ],
      bands: [],
    };
  }

  function makePlot(chart) {
    const width = Math.max(200, chart.dom.plot.clientWidth || 320);
    const drawn = drawnSeries(chart);
    chart.plotShape = plotShape(drawn);
    chart.plotKey = plotKey(drawn);
    chart.cursorTs = null;
    const { series, bands } = plotSeries(drawn);
    const options = {
      width: width,
      height: plotHeight(chart),
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
          font: AXIS_FONT,
          size: AXIS_HEIGHT,
          values: axisTimes,
        },
        {
          stroke: COLORS.axis,
          grid: { stroke: COLORS.grid, width: 1 },
          ticks: { stroke: COLORS.grid, width: 1 },
          font: AXIS_FONT,
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
      series,
      bands,
      hooks: {
        drawClear: [(u) => drawAnnotations(u, chart)],
        draw: [(u) => drawThresholds(u, chart.def)],
        setCursor: [
          (u) => {
            showReadout(chart, u);
            showAnnotation(chart, u);
          },
        ],
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
    const drawn = drawnSeries(chart);
    if (drawn.length <= 1) {
      const series = drawn[0] || NO_SERIES;
      return [series.xs, series.ys, series.lows, series.highs];
    }
    return uPlot.join(drawn.map((series) => [series.xs, series.ys]));
  }

  function createChart(def) {
    const dom = makeCard(def);
    const chart = {
      def,
      dom,
      whole: true, // every value so far is an integer: shown without decimals
      firing: false,
      plot: null,
      plotShape: 1,
      legendBuilt: false,
      legendValues: [], // [series, its value's node] of each entry
      commonLabels: {}, // the labels every series of the chart shares, left out of the legend
      cursorTs: null, // time under the cursor, while it is on a chart of several series
      dirty: true,
      drawnAt: 0,
      summarisedAt: -Infinity,
      summarisedEmpty: true, // whether the text alternative says "no values"
    };
    clearSeries(chart);
    dom.csv.addEventListener("click", () => downloadCsv(chart));
    dom.more.addEventListener("toggle", () => fillLegend(chart));
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
    chart.dom.card.dataset.type = def.type || "timeseries";
    chart.dom.plot.hidden = !hasPlot(chart);
    chart.dom.gauge.hidden = def.type !== "gauge";
    chart.dom.table.hidden = def.type !== "table";
    chart.summarisedAt = -Infinity;
    chart.dirty = true;
    // A new unit or rule changes the axes and lines: build the plot again.
    if (redraw || (chart.plot && !hasPlot(chart))) {
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
    if (board) {
      for (const chart of charts) {
        board.place(chart.dom.card, chart.def.key);
        if (!chart.plot && hasPlot(chart)) chart.plot = makePlot(chart);
      }
      return;
    }
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

  function clearSeries(chart) {
    chart.series = new Map();
    chart.legendBuilt = false;
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

  function insertAt(series, index, ts, avg, low, high, count) {
    series.xs.splice(index, 0, ts);
    series.ys.splice(index, 0, avg);
    series.lows.splice(index, 0, low);
    series.highs.splice(index, 0, high);
    series.counts.splice(index, 0, count);
  }

  // A live value of one of the chart's series: its own point on raw windows (a point
  // at a time already charted is a duplicate), folded into its bucket on bucketed ones.
  function addPoint(chart, series, ts, value) {
    const xs = series.xs;
    const latest = xs.length === 0 || ts >= xs[xs.length - 1];
    if (latest) {
      series.current = value;
      series.currentAt = ts;
    }
    chart.dirty = true;
    if (chart.whole && !Number.isInteger(value)) chart.whole = false;
    if (state.zoom) return true; // a past range is shown; only the header follows live
    const at = state.step > 0 ? Math.floor(ts / state.step) * state.step : ts;
    const index = latest && (xs.length === 0 || at > xs[xs.length - 1]) ? xs.length : indexOf(xs, at);
    if (xs[index] === at) {
      if (state.step === 0) return false;
      const count = series.counts[index];
      if (count !== null) {
        series.ys[index] = (series.ys[index] * count + value) / (count + 1);
        series.counts[index] = count + 1;
      }
      series.lows[index] = Math.min(series.lows[index], value);
      series.highs[index] = Math.max(series.highs[index], value);
    } else {
      insertAt(series, index, at, value, value, value, 1);
    }
    trim(series);
    return true;
  }

  function trim(series) {
    const cutoff = serverNow() - windowSeconds() - Math.max(5, state.step);
    let drop = 0;
    while (drop < series.xs.length && series.xs[drop] < cutoff) drop += 1;
    const cap = state.step > 0 ? MAX_BUCKETS : state.windowMinutes * MAX_POINTS_PER_MINUTE;
    drop = Math.max(drop, series.xs.length - cap);
    if (drop > 0) {
      for (const list of [series.xs, series.ys, series.lows, series.highs, series.counts]) list.splice(0, drop);
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

  // How old a card's newest value is, in seconds, when that counts as stale; else null.
  function staleAge(chart, currentAt) {
    if (currentAt === null) return null;
    const age = serverNow() - currentAt;
    return age > staleLimit(chart) ? age : null;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  // The chart's text alternative: what it shows, its current value, its range in the
  // window and its state.
  // For a chart of several series, each drawn one's current value by its labels.
  function summary(chart, current, level, age) {
    const unit = chart.def.unit;
    const d = decimals(chart);
    const parts = [chart.def.label || chart.def.key];
    if (current === null) {
      parts.push(STATE_WORDS.empty);
    } else {
      const all = orderedSeries(chart);
      if (all.length === 1) {
        parts.push(interpolate(gettext("current value %s"), [fmt.joined(current, unit, d)]));
      } else {
        parts.push(interpolate(ngettext("%s series", "%s series", all.length), [all.length]));
        buildLegend(chart);
        for (const series of all.slice(0, MAX_LINES)) {
          const firing = isFiring(series) ? " (" + STATE_WORDS.firing + ")" : "";
          parts.push(ids.labelText(series.id, series.labels, chart.commonLabels) + " " + shownValue(chart, series.current) + firing);
        }
        if (all.length > MAX_LINES) parts.push(moreText(all.length - MAX_LINES));
      }
      let low = Infinity;
      let high = -Infinity;
      for (const series of all) {
        for (const y of series.ys) {
          if (y < low) low = y;
          if (y > high) high = y;
        }
      }
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
      const { value: current, at: currentAt } = latest(chart);
      // Several series: the legend holds their values, the head says how many.
      const count = chart.series.size;
      const shown =
        count > 1
          ? { text: "", unit: interpolate(ngettext("%s series", "%s series", count), [count]) }
          : fmt.withUnit(current, chart.def.unit, d);
      setText(chart.dom.value, shown.text);
      setText(chart.dom.unit, shown.unit);
      const level = levelFor(chart.def, current);
      const age = staleAge(chart, currentAt);
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
      if (now - chart.summarisedAt > SUMMARY_EVERY_MS || chart.summarisedEmpty !== (current === null)) {
        chart.summarisedAt = now;
        chart.summarisedEmpty = current === null;
        chart.dom.plot.setAttribute("aria-label", summary(chart, current, level, age));
      }
      buildLegend(chart);
      if (chart.cursorTs === null) fillLegend(chart);
      // A series more or less to draw, or one starting or stopping to fire, changes the
      // plot's series: build it again.
      const drawn = drawnSeries(chart);
      if (chart.plot && (chart.plotShape !== plotShape(drawn) || chart.plotKey !== plotKey(drawn))) {
        chart.plot.destroy();
        chart.plot = makePlot(chart);
      } else if (chart.plot) {
        chart.plot.setData(plotData(chart), true);
      }
      if (chart.def.type === "gauge") drawGauge(chart, current);
      if (chart.def.type === "table") drawTable(chart);
      chart.drawnAt = now;
    }
  }

  // A gauge runs from 0 to 100 for percentages, else to past its critical threshold
  // (or its highest value in the window).
  function drawGauge(chart, current) {
    let high = chart.def.unit === "%" ? 100 : null;
    if (high === null && typeof chart.def.critical === "number" && chart.def.critical > 0) high = chart.def.critical * 1.25;
    if (high === null) {
      high = 0;
      for (const series of chart.series.values()) for (const y of series.ys) high = Math.max(high, y);
      high = high > 0 ? high * 1.15 : 1;
    }
    const share = current === null ? 0 : Math.max(0, Math.min(1, current / high));
    chart.dom.gaugeBar.style.width = (share * 100).toFixed(1) + "%";
    chart.dom.gaugeBar.dataset.level = levelFor(chart.def, current);
    chart.dom.gauge.setAttribute("aria-valuemax", String(high));
    chart.dom.gauge.setAttribute("aria-valuenow", String(current === null ? 0 : current));
    chart.dom.gauge.setAttribute("aria-valuetext", shownValue(chart, current));
    chart.dom.gauge.setAttribute("aria-label", chart.def.label || chart.def.key);
  }

  // A row per series: its labels (or name) and its current value.
  function drawTable(chart) {
    const all = Array.from(chart.series.values());
    const common = ids.commonLabels(all.map((series) => series.labels));
    const body = chart.dom.tableBody;
    if (body.rows.length !== all.length) {
      body.replaceChildren(
        ...all.map(() => {
          const row = element("tr");
          row.append(element("th"), element("td"));
          row.firstChild.scope = "row";
          return row;
        }),
      );
    }
    all.forEach((series, i) => {
      const row = body.rows[i];
      row.dataset.series = series.id;
      setText(row.cells[0], all.length > 1 ? ids.labelText(series.id, series.labels, common) : series.id);
      setText(row.cells[1], shownValue(chart, series.current));
    });
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
    const host = typeof frame.host === "string" ? frame.host : "";
    const labels = host ? { host } : {};
    for (const [name, value] of Object.entries(frame.values || {})) {
      const id = ids.frameId(name, host);
      const charts = chartsFor(id);
      for (const chart of charts) addPoint(chart, seriesOf(chart, id, labels), frame.ts, value);
      if (!charts.length && !board && !state.hidden.has(name)) unknown = true;
    }
    setFiring(frame.firing);
    // A metric the page has no definition for yet (a collector started after
    // the page loaded): the history answer carries its label and thresholds.
    if (unknown && live) queueRefetch();
  }

  // A value of one series of a metric: its chart draws every series of the metric.
  function applyMetric(point) {
    if (typeof point.name !== "string" || typeof point.ts !== "number") return;
    if (state.hidden.has(point.name)) return;
    const labels = point.labels && typeof point.labels === "object" ? point.labels : {};
    // Stored before labels, an event has no `series`: its series is the bare name.
    const id = typeof point.series === "string" ? point.series : ids.formatId(point.name, labels);
    if (board) {
      for (const chart of chartsFor(id)) addPoint(chart, seriesOf(chart, id, labels), point.ts, point.value);
      return;
    }
    let chart = state.charts.get(point.name);
    if (!chart) {
      // Registered on its first publish; history will bring its definition later.
      chart = createChart({ key: point.name, label: point.name, unit: "", source: "custom", order: 100 });
      layout();
    }
    addPoint(chart, seriesOf(chart, id, labels), point.ts, point.value);
  }

  // A history answer: `series` {series id: [[ts, avg, min, max], ...]} with `step`
  // seconds per point (0: raw values), for the live window or a zoomed range. Each
  // series goes to the chart of its metric name, in id order.
  function applyHistory(history) {
    const definitions = board ? board.definitions() : history.metrics;
    const keys = new Set(definitions.map((def) => def.key));
    for (const key of Array.from(state.charts.keys())) {
      if (!keys.has(key)) removeChart(key);
    }
    // While a past range is shown, each card's head still follows live values.
    const live = new Map();
    for (const def of definitions) {
      const chart = state.charts.get(def.key) || createChart(def);
      applyDefinition(chart, def);
      if (state.zoom) live.set(def.key, chart.series);
      clearSeries(chart);
      chart.whole = true;
    }
    const seriesIds = Object.keys(history.series || {}).sort(ids.compareIds);
    // Whatever the server sends but does not list is disabled: ignore it live too.
    state.hidden = board ? new Set() : new Set(seriesIds.map(ids.nameOf).filter((name) => !keys.has(name)));
    state.step = history.step || 0;
    state.lastSeq = 0;
    state.lastFrameTs = 0;
    const lastCounts = history.last_counts || {};
    for (const id of seriesIds) {
      for (const chart of chartsFor(id)) takeHistory(chart, id, history.series[id], lastCounts, live);
    }
    layout();
    markAllDirty();
  }

  // One series' history into one chart (on a dashboard a series may feed several panels).
  function takeHistory(chart, id, points, lastCounts, live) {
    const series = seriesOf(chart, id);
    points.forEach(([ts, avg, low, high], i) => {
      const last = i === points.length - 1;
      const count = state.step === 0 ? 1 : last && id in lastCounts ? lastCounts[id] : null;
      insertAt(series, series.xs.length, ts, avg, low, high, count);
    });
    // Whole when every value is: a bucket's min and max are values, its average is not.
    if (!points.every(([, , low, high]) => Number.isInteger(low) && Number.isInteger(high))) chart.whole = false;
    const before = live.has(chart.def.key) ? live.get(chart.def.key).get(id) : undefined;
    if (before) {
      series.current = before.current;
      series.currentAt = before.currentAt;
    } else if (!state.zoom && points.length > 0) {
      const [ts, avg] = points[points.length - 1];
      series.current = avg;
      // A bucket starts before its last value: its end, at most now, is that value's age.
      series.currentAt = Math.min(ts + state.step, serverNow());
    }
  }

  // ---- zoom and CSV -------------------------------------------------------

  async function zoomTo(start, end) {
    if (!(end - start >= 10)) return;
    const generation = ++state.generation;
    state.zoom = { start, end };
    document.body.classList.add("zoomed");
    let response;
    try {
      const query = "?start=" + start.toFixed(3) + "&end=" + end.toFixed(3) + matchQuery();
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
    loadAnnotations();
  }

  // Back to the live window (double-click a chart, or pick a window).
  function unzoom() {
    if (!state.zoom) return;
    state.zoom = null;
    document.body.classList.remove("zoomed");
    loadHistory();
  }

  // A dashboard asks history for its panels' series only (the server takes at most
  // MAX_MATCH selectors: past that, every series comes and the panels keep theirs).
  const MAX_MATCH = 32;
  // A share link's page (share.js) reads history through its link.
  function matchQuery() {
    const share = config.share ? "&share=" + encodeURIComponent(config.share.token) : "";
    if (!board) return share;
    const matches = board.matches();
    if (!matches.length || matches.length > MAX_MATCH) return share;
    return share + matches.map((text) => "&match=" + encodeURIComponent(text)).join("");
  }

  function csvTime(ts) {
    return new Date(ts * 1000).toISOString();
  }

  // A CSV field: quoted when it holds a comma, a quote or a line break (series ids do).
  function csvField(text) {
    return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  // What the chart shows, a row per time and a column per series, headed by its id
  // (as history and the series API name it); bucketed windows add each series'
  // min and max beside its average. A series without a value at a time leaves it empty.
  function downloadCsv(chart) {
    const [start, end] = xRange();
    const all = Array.from(chart.series.values());
    const bucketed = state.step > 0;
    const width = bucketed ? 3 : 1;
    const header = ["time"];
    for (const series of all) {
      header.push(csvField(series.id));
      if (bucketed) header.push(csvField(series.id + " min"), csvField(series.id + " max"));
    }
    // Annotations in the range go in a last column, each on a row at its time.
    const notes = annotationsOf(chart).filter((note) => note.time <= end && (note.end === null ? note.time : note.end) >= start);
    const columns = all.length * width + (notes.length ? 1 : 0);
    if (notes.length) header.push("annotation");
    const texts = new Map();
    for (const note of notes) {
      const text = note.end === null ? note.text : note.text + " (until " + csvTime(note.end) + ")";
      texts.set(note.time, (texts.get(note.time) || []).concat(text));
    }
    const rows = new Map();
    for (const [ts, said] of texts) {
      rows.set(ts, new Array(columns).fill(""));
      rows.get(ts)[columns - 1] = csvField(said.join("; "));
    }
    all.forEach((series, column) => {
      series.xs.forEach((ts, i) => {
        if (ts < start - state.step || ts > end) return;
        if (!rows.has(ts)) rows.set(ts, new Array(columns).fill(""));
        const cells = bucketed ? [series.ys[i], series.lows[i], series.highs[i]] : [series.ys[i]];
        rows.get(ts).splice(column * width, width, ...cells);
      });
    });
    const times = Array.from(rows.keys()).sort((a, b) => a - b);
    const lines = [header.join(","), ...times.map((ts) => [csvTime(ts), ...rows.get(ts)].join(","))];
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = (chart.def.label || chart.def.key).replace(/[^A-Za-z0-9_.-]+/g, "_") + "-" + csvTime(start).slice(0, 19).replace(/:/g, "") + ".csv";
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
      response = await fetch(config.historyUrl + "?minutes=" + state.windowMinutes + matchQuery(), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
    } catch (err) {
      return retryHistory(generation, attempt, "offline");
    }
    if (generation !== state.generation) return;
    if (response.status === 401 || response.status === 403) {
      // A share link's page asks its link why (revoked, expired) and says so itself.
      if (config.share) ld.emit("share:refused", { status: response.status });
      else ld.stream.setStatus("offline", gettext("not allowed: sign in again"));
      return;
    }
    if (!response.ok) return retryHistory(generation, attempt, "reconnecting");
    const history = await response.json();
    if (generation !== state.generation) return;
    applyHistory(history);
    loadAnnotations();
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

  let annotationsReadAt = performance.now();
  function tick() {
    if (!state.zoom && performance.now() - annotationsReadAt > ANNOTATIONS_EVERY_MS) {
      annotationsReadAt = performance.now();
      loadAnnotations();
    }
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
      const height = plotHeight(chart);
      if (width > 0 && (Math.abs(width - chart.plot.width) > 1 || Math.abs(height - chart.plot.height) > 1)) {
        chart.plot.setSize({ width, height });
      }
    }
  }
  const resizes = new ResizeObserver(() => {
    if (resizeQueued) return;
    resizeQueued = true;
    requestAnimationFrame(resizePlots);
  });
  resizes.observe(root);
  // A panel resized on the grid changes its card, not the page.
  if (board) new MutationObserver(() => root.querySelectorAll(".grid-stack-item-content").forEach((node) => resizes.observe(node))).observe(root, { childList: true, subtree: true });

  // The WebSocket's `snapshot` (sent by control.js when the tab is shown again)
  // brings current values at once, before the stream has caught up.
  // The firing series, from the alert states the control socket carries: the whole set
  // in `hello` (again after each reconnect), a rule's in each `alert_state`.
  function keepFiring(rule) {
    if (!rule || typeof rule.id !== "number") return;
    const firing = (Array.isArray(rule.series) ? rule.series : [])
      .filter((alert) => alert && alert.firing && typeof alert.series === "string")
      .map((alert) => alert.series);
    if (firing.length) state.firingByRule.set(rule.id, firing);
    else state.firingByRule.delete(rule.id);
  }

  function firingChanged() {
    const now = new Set();
    for (const firing of state.firingByRule.values()) for (const id of firing) now.add(id);
    const before = state.firingSeries;
    state.firingSeries = now;
    for (const chart of state.charts.values()) {
      if (Array.from(chart.series.keys()).some((id) => before.has(id) !== now.has(id))) {
        chart.legendBuilt = false;
        chart.summarisedAt = -Infinity;
        chart.dirty = true;
      }
    }
    scheduleRender();
  }

  ld.on("ws:hello", (message) => {
    state.firingByRule.clear();
    for (const rule of message.alerts || []) keepFiring(rule);
    firingChanged();
  });
  ld.on("ws:alert_state", (message) => {
    keepFiring(message.rule);
    firingChanged();
  });

  ld.on("ws:snapshot", (message) => {
    if (!message || typeof message.values !== "object" || message.values === null) return;
    // Values of the latest frame, by metric name: the collector host's series.
    const host = config.collectorHost || "";
    for (const [name, value] of Object.entries(message.values)) {
      const id = ids.frameId(name, host);
      for (const chart of chartsFor(id)) {
        const series = chart.series.get(id);
        if (series && typeof value === "number") {
          series.current = value;
          chart.dirty = true;
        }
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

  function seriesFor(key, id) {
    const chart = state.charts.get(key);
    if (!chart) return null;
    if (id === undefined) return chart.series.values().next().value || null;
    return chart.series.get(id) || null;
  }

  function linesDrawn(key) {
    const chart = state.charts.get(key);
    if (!chart || !chart.plot) return 0;
    // One series: the line and its band's two edges (drawn transparent).
    return chart.plotShape <= 1 ? Math.min(1, chart.series.size) : chart.plot.series.length - 1;
  }

  // A read-only view for tests and the console.
  ld.charts = {
    windowMinutes: () => state.windowMinutes,
    lastSeq: () => state.lastSeq,
    keys: () => sortedCharts().map((chart) => chart.def.key),
    step: () => state.step,
    zoomed: () => (state.zoom ? { start: state.zoom.start, end: state.zoom.end } : null),
    // A chart's series by id; without one, its first (for a chart of one series, that one).
    points: (key, id) => (seriesFor(key, id) ? seriesFor(key, id).xs.length : 0),
    series: (key, id) => (seriesFor(key, id) ? [seriesFor(key, id).xs.slice(), seriesFor(key, id).ys.slice()] : null),
    bands: (key, id) => (seriesFor(key, id) ? [seriesFor(key, id).lows.slice(), seriesFor(key, id).highs.slice()] : null),
    seriesIds: (key) => (state.charts.has(key) ? Array.from(state.charts.get(key).series.keys()) : []),
    // The ids of a chart's series an alert fires for, and the line width of each drawn series.
    firing: (key) => (state.charts.has(key) ? Array.from(state.charts.get(key).series.keys()).filter((id) => state.firingSeries.has(id)) : []),
    lineWidths: (key) => {
      const chart = state.charts.get(key);
      return chart && chart.plot ? chart.plot.series.slice(1).map((series) => series.width) : [];
    },
    // Lines the chart's plot draws.
    lines: (key) => linesDrawn(key),
    reload: () => loadHistory(),
    // The texts of the annotations a chart draws, and the one under a point of its plot (CSS px from the left).
    annotations: (key) => (state.charts.has(key) ? annotationsOf(state.charts.get(key)).map((note) => note.text) : []),
    annotationsAt: (key, left) => {
      const chart = state.charts.get(key);
      return chart && chart.plot ? annotationsAt(chart.plot, chart, left).map((note) => note.text) : [];
    },
    xOf: (key, ts) => {
      const chart = state.charts.get(key);
      return chart && chart.plot ? chart.plot.valToPos(ts, "x") : null;
    },
    reloadAnnotations: () => loadAnnotations(),
    definition: (key) => (state.charts.has(key) ? Object.assign({}, state.charts.get(key).def) : null),
    // Flat: {line, fill, ..., series1, series2, ...}, each a resolved colour.
    colors: () => {
      const { series, ...rest } = COLORS;
      return Object.assign(rest, Object.fromEntries(series.map((colour, i) => ["series" + (i + 1), colour])));
    },
  };

  // The dashboard's panels or variables changed (a picker, the editor): its charts
  // follow the panels, and history is read again for the new selectors.
  if (board) {
    ld.on("board:changed", () => {
      const keys = new Set(board.definitions().map((def) => def.key));
      for (const key of Array.from(state.charts.keys())) if (!keys.has(key)) removeChart(key);
      for (const def of board.definitions()) {
        const chart = state.charts.get(def.key);
        if (chart) applyDefinition(chart, def);
      }
      loadHistory();
    });
  }

  showWindow();
  ld.stream.setStatus("connecting", gettext("loading history"));
  setInterval(tick, 1000);
  if (board) board.ready.then(() => loadHistory());
  else loadHistory();
})();
