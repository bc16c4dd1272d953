// One dashboard people built (/d/UID/): its panels placed on the 12-column grid
// (gridstack), its variables as pickers, and what charts.js needs to draw its panels
// with the same code as every other chart: the panel definitions, the selectors with
// the variables' values in them (history's and routing's), and which panels a series
// belongs to. editor.js changes the document through `ld.board.setDocument`.
//
// The variables' values live in the address (`?var-host=a&var-host=b`), so a view can
// be shared and reloaded as it is.
(function () {
  "use strict";
  const ld = window.livedash;
  const config = ld && ld.config.board;
  if (!config) return;
  const ids = ld.series;
  const gridNode = document.getElementById("board-grid");
  const variablesNode = document.getElementById("board-variables");
  // Grid rows are this many pixels; a panel's plot takes what its card leaves.
  const CELL_HEIGHT = 64;
  // Kiosk mode's larger titles and values take more of the card.
  const CARD_CHROME = document.body.classList.contains("kiosk") ? 110 : 78;
  const MIN_PLOT_HEIGHT = 50;
  // Narrower than this, panels stand in one column (a phone).
  const ONE_COLUMN_BELOW = 700;
  const ALL = "$__all";
  const VARIABLE = /\$([a-zA-Z_][a-zA-Z0-9_]*)/g;

  const state = {
    document: config.document,
    values: {}, // variable name -> {values: [...], all: bool}
    options: {}, // variable name -> the values its label has
    routes: new Map(), // series id -> panel keys
    resolved: new Map(), // panel key -> [parsed selector, ...]
  };

  function keyOf(panel) {
    return "panel-" + panel.id;
  }

  // ---- variables ---------------------------------------------------------------

  function escapeString(text) {
    return text.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
  }

  function escapeRegex(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  // `$name` replaced by the variable's value: after `=~` or `!~` its values as
  // alternatives (`a|b`, or `.*` for all), anywhere else its first value.
  function substitute(text) {
    return text.replace(VARIABLE, (whole, name, offset) => {
      const chosen = state.values[name];
      if (!chosen) return whole;
      const inRegex = /(=~|!~)\s*"[^"]*$/.test(text.slice(0, offset));
      if (inRegex) return escapeString(chosen.all ? ".*" : chosen.values.map(escapeRegex).join("|"));
      const first = chosen.all ? state.options[name] && state.options[name][0] : chosen.values[0];
      return escapeString(first || "");
    });
  }

  async function fetchValues(variable) {
    // A share link's page is given what its pickers may offer: the labels API is not anonymous.
    if (config.options) return (config.options[variable.name] || []).slice();
    let url = config.labelsUrl + encodeURIComponent(variable.label_of) + "/values";
    if (variable.match) url += "?match=" + encodeURIComponent(substitute(variable.match));
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return [];
      const body = await response.json();
      return Array.isArray(body.values) ? body.values : [];
    } catch (err) {
      return [];
    }
  }

  // The choice in the address while its values exist, else all (when offered), else the first value.
  function initialChoice(variable, values) {
    const asked = config.variables[variable.name] || [];
    if (asked.includes(ALL) && variable.include_all) return { values: [], all: true };
    const kept = asked.filter((value) => values.includes(value)).slice(0, variable.multi ? undefined : 1);
    if (kept.length) return { values: kept, all: false };
    if (variable.include_all) return { values: [], all: true };
    return { values: values.slice(0, 1), all: false };
  }

  function writeAddress() {
    const params = new URLSearchParams(window.location.search);
    for (const key of Array.from(params.keys())) if (key.startsWith("var-")) params.delete(key);
    for (const variable of state.document.variables || []) {
      const chosen = state.values[variable.name];
      if (!chosen) continue;
      for (const value of chosen.all ? [ALL] : chosen.values) params.append("var-" + variable.name, value);
    }
    const query = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  }

  function picker(variable) {
    const box = document.createElement("span");
    box.className = "board-variable";
    const id = "var-" + variable.name;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.className = "muted";
    label.textContent = variable.label || variable.name;
    const select = document.createElement("select");
    select.id = id;
    select.name = id;
    select.multiple = Boolean(variable.multi);
    if (select.multiple) select.size = Math.min(4, (state.options[variable.name] || []).length + 1);
    fillPicker(select, variable);
    select.addEventListener("change", () => choose(variable, select));
    box.append(label, select);
    return box;
  }

  function fillPicker(select, variable) {
    const chosen = state.values[variable.name];
    const options = [];
    if (variable.include_all) options.push(new Option(gettext("All"), ALL, false, chosen.all));
    for (const value of state.options[variable.name]) {
      options.push(new Option(value, value, false, !chosen.all && chosen.values.includes(value)));
    }
    if (!options.length) options.push(new Option(gettext("no values"), "", false, true));
    select.replaceChildren(...options);
  }

  async function choose(variable, select) {
    const picked = Array.from(select.selectedOptions).map((option) => option.value);
    state.values[variable.name] =
      picked.includes(ALL) || (!picked.length && variable.include_all)
        ? { values: [], all: true }
        : { values: picked.filter(Boolean), all: false };
    // The variables after this one may narrow by it: their values are read again.
    const variables = state.document.variables || [];
    for (const later of variables.slice(variables.indexOf(variable) + 1)) {
      const values = await fetchValues(later);
      state.options[later.name] = values;
      const before = state.values[later.name];
      const kept = before.all ? before : { values: before.values.filter((v) => values.includes(v)), all: false };
      state.values[later.name] = kept.all || kept.values.length ? kept : initialChoice(later, values);
      const node = document.getElementById("var-" + later.name);
      if (node) fillPicker(node, later);
    }
    writeAddress();
    changed();
  }

  async function loadVariables() {
    for (const variable of state.document.variables || []) {
      const values = await fetchValues(variable);
      state.options[variable.name] = values;
      state.values[variable.name] = initialChoice(variable, values);
    }
    if (variablesNode) {
      variablesNode.replaceChildren(...(state.document.variables || []).map(picker));
      variablesNode.hidden = !(state.document.variables || []).length;
    }
    writeAddress();
  }

  // ---- panels --------------------------------------------------------------------

  function resolve() {
    state.routes = new Map();
    state.resolved = new Map();
    for (const panel of state.document.panels) {
      const parsed = panel.series.map((text) => ids.parseSelector(substitute(text))).filter(Boolean);
      state.resolved.set(keyOf(panel), parsed);
    }
  }

  function definition(panel, order) {
    const thresholds = panel.thresholds || {};
    return {
      key: keyOf(panel),
      label: panel.title,
      unit: panel.unit || "",
      type: panel.type,
      decimals: panel.decimals,
      warning: thresholds.warning ?? null,
      critical: thresholds.critical ?? null,
      source: "board",
      order: order,
    };
  }

  function newItem(panel) {
    const node = document.createElement("div");
    node.className = "grid-stack-item";
    node.dataset.panel = String(panel.id);
    node.setAttribute("gs-id", keyOf(panel));
    for (const side of ["x", "y", "w", "h"]) node.setAttribute("gs-" + side, String(panel.grid[side]));
    const content = document.createElement("div");
    content.className = "grid-stack-item-content";
    node.append(content);
    return node;
  }

  function itemOf(key) {
    return gridNode.querySelector('.grid-stack-item[gs-id="' + key + '"]');
  }

  // The grid's items follow the document's panels: new ones added, gone ones removed,
  // the others moved to their place.
  function placeItems() {
    const keys = new Set(state.document.panels.map(keyOf));
    for (const item of Array.from(gridNode.querySelectorAll(".grid-stack-item"))) {
      if (!keys.has(item.getAttribute("gs-id"))) grid.removeWidget(item, true);
    }
    grid.batchUpdate();
    for (const panel of state.document.panels) {
      const key = keyOf(panel);
      const place = { x: panel.grid.x, y: panel.grid.y, w: panel.grid.w, h: panel.grid.h };
      const item = itemOf(key);
      if (item) {
        grid.update(item, place);
        continue;
      }
      const node = newItem(panel);
      gridNode.append(node);
      grid.makeWidget(node, Object.assign({ id: key }, place));
    }
    grid.batchUpdate(false);
    const empty = document.getElementById("board-empty");
    if (empty) empty.hidden = state.document.panels.length > 0;
  }

  function changed() {
    resolve();
    ld.emit("board:changed", {});
  }

  function setDocument(next) {
    state.document = next;
    placeItems();
    changed();
  }

  // {panel id: {x, y, w, h}} as the grid has them now (after a drag or a resize).
  function layout() {
    const places = {};
    for (const node of grid.engine.nodes) {
      const panel = node.el && node.el.dataset.panel;
      if (panel) places[panel] = { x: node.x, y: node.y, w: node.w, h: node.h };
    }
    return places;
  }

  // A matcher that takes the empty string ("", or `.*`) selects nothing on its own.
  function narrows([, op, value]) {
    if (op === "=") return value !== "";
    if (op === "!=") return value === "";
    if (op === "=~") return !value.test("");
    return value.test("");
  }

  // The panels' selectors with the variables in them, for history and the stream to
  // send only those series; none (everything comes, the panels keep theirs) when one
  // of them would be refused, as `{host=~".*"}` for "All" is.
  function matches() {
    const texts = Array.from(new Set(state.document.panels.flatMap((panel) => panel.series.map(substitute))));
    for (const text of texts) {
      const parsed = ids.parseSelector(text);
      if (!parsed || !parsed.some(narrows)) return [];
    }
    return texts;
  }

  function windowMinutes() {
    const found = /^([0-9]+)([mhd])$/.exec(state.document.window || "");
    if (!found) return null;
    return parseInt(found[1], 10) * { m: 1, h: 60, d: 1440 }[found[2]];
  }

  // The items are in the page before the grid starts: it reads their 12-column places
  // first, and only then stacks them in one column on a phone, in their order.
  for (const panel of state.document.panels) gridNode.append(newItem(panel));
  const grid = GridStack.init(
    {
      column: 12,
      cellHeight: CELL_HEIGHT,
      margin: 6,
      float: false,
      staticGrid: true,
      // Panels are moved by their head, so a drag on a plot still zooms.
      handle: ".chart-head",
      columnOpts: { breakpointForWindow: true, breakpoints: [{ w: ONE_COLUMN_BELOW, c: 1 }] },
    },
    gridNode,
  );

  ld.board = {
    // What charts.js asks.
    definitions: () => state.document.panels.map((panel, i) => definition(panel, i)),
    route: (id) => {
      let keys = state.routes.get(id);
      if (keys === undefined) {
        keys = [];
        for (const [key, parsed] of state.resolved) if (parsed.some((m) => ids.selects(m, id))) keys.push(key);
        state.routes.set(id, keys);
      }
      return keys;
    },
    matches,
    place: (card, key) => {
      const item = itemOf(key);
      const content = item && item.querySelector(".grid-stack-item-content");
      if (content && card.parentNode !== content) content.prepend(card);
    },
    plotHeight: (key) => {
      const item = itemOf(key);
      const content = item && item.querySelector(".grid-stack-item-content");
      const height = content ? content.clientHeight : 0;
      return Math.max(MIN_PLOT_HEIGHT, height - CARD_CHROME);
    },
    windowMinutes,
    // What editor.js asks.
    substitute,
    grid,
    document: () => state.document,
    setDocument,
    layout,
    itemOf,
    keyOf,
    ready: null,
  };

  resolve();
  const empty = document.getElementById("board-empty");
  if (empty) empty.hidden = state.document.panels.length > 0;
  ld.board.ready = loadVariables().then(() => resolve());
})();
