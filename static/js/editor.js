// Editing a dashboard in its page (for those who may change it): panels moved and
// resized on the grid (by pointer, or by the keyboard from each panel's Move button),
// added, duplicated, removed, their title, type, series and unit changed in a dialog
// whose series come from what exists (with a preview of what they match); undo of
// the last change; saved through the dashboards API as a new version (a stale version
// answers 409 and the page says so, keeping the edits). The version list (with
// restore), export, import, "save a copy" and the "updated by X" notice are here too:
// import and copy go through the same API, so a file is refused with its errors.
(function () {
  "use strict";
  const ld = window.livedash;
  const board = ld && ld.board;
  const config = ld && ld.config.board;
  if (!board || !config) return;
  const editButton = document.getElementById("edit-button");
  const bar = document.getElementById("editor-bar");
  const status = document.getElementById("editor-status");
  const dialog = document.getElementById("panel-dialog");
  const notice = document.getElementById("board-notice");
  const NEW_PANEL_SIZE = { w: 6, h: 4 };

  const state = {
    editing: false,
    saved: structuredClone(board.document()), // the stored document, at its version
    undo: [], // documents before each change, newest last
    panelId: null, // the panel the dialog edits (null: a new one)
  };

  const api = ld.api;

  function say(text, level) {
    if (!status) return;
    status.textContent = text;
    status.dataset.level = level || "info";
  }

  // ---- the working document ------------------------------------------------------

  // The grid's places written into a copy of the document.
  function current() {
    const document = structuredClone(board.document());
    const places = board.layout();
    for (const panel of document.panels) {
      if (places[panel.id]) panel.grid = places[panel.id];
    }
    return document;
  }

  function change(document) {
    state.undo.push(current());
    board.setDocument(document);
    showUndo();
  }

  function showUndo() {
    const undo = window.document.getElementById("undo-edit");
    if (undo) undo.disabled = state.undo.length === 0;
  }

  // A move or resize on the grid is a change too (undoable); the grid already shows it.
  board.grid.on("dragstart resizestart", () => {
    state.before = current();
  });
  board.grid.on("dragstop resizestop", () => {
    if (state.before) state.undo.push(state.before);
    state.before = null;
    showUndo();
  });

  // ---- edit mode -------------------------------------------------------------------

  function panelButtons(item, panel) {
    const tools = window.document.createElement("div");
    tools.className = "panel-tools";
    const edit = window.document.createElement("button");
    edit.type = "button";
    edit.className = "button small panel-edit";
    edit.textContent = gettext("Edit panel");
    edit.setAttribute("aria-label", interpolate(gettext("Edit panel %s"), [panel.title || panel.id]));
    edit.addEventListener("click", () => openPanel(panel.id));
    // gridstack moves and resizes by pointer only: a focusable handle takes the arrow keys.
    const move = window.document.createElement("button");
    move.type = "button";
    move.className = "button small panel-move";
    move.textContent = gettext("Move");
    move.setAttribute("aria-label", interpolate(gettext("Move or resize panel %s"), [panel.title || panel.id]));
    move.setAttribute("aria-describedby", "move-help");
    move.addEventListener("keydown", (event) => moveByKey(event, item));
    tools.append(move, edit);
    item.querySelector(".grid-stack-item-content").append(tools);
  }

  function decorate() {
    for (const node of window.document.querySelectorAll(".panel-tools")) node.remove();
    if (!state.editing) return;
    for (const panel of board.document().panels) {
      const item = board.itemOf(board.keyOf(panel));
      if (item) panelButtons(item, panel);
    }
  }

  function setEditing(on) {
    if (on && board.grid.getColumn() !== 12) {
      ld.toast(gettext("Editing needs a wider window"), gettext("Panels are placed on 12 columns; this window shows one."), "warning");
      return;
    }
    state.editing = on;
    board.grid.setStatic(!on);
    window.document.body.classList.toggle("editing", on);
    if (editButton) {
      editButton.setAttribute("aria-pressed", String(on));
      editButton.hidden = on;
    }
    if (bar) bar.hidden = !on;
    decorate();
    if (on) say(gettext("Drag a panel by its title to move it, by its corner to resize it; or use the arrow keys on its Move button."));
  }

  ld.on("board:changed", decorate);

  // ---- the keyboard ------------------------------------------------------------------

  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  const COLUMNS = 12;
  const MAX_ROWS = 100;

  function placeOf(node) {
    return { x: node.x, y: node.y, w: node.w, h: node.h };
  }

  // An arrow moves the panel a cell, Shift and an arrow resize it. The grid packs panels
  // upwards, so a step down (or up) that lands where the packing undoes it goes on past
  // the neighbour, as a drag would.
  function moveByKey(event, item) {
    const arrow = ARROWS[event.key];
    const node = item.gridstackNode;
    if (!arrow || !node || !state.editing || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    const [dx, dy] = arrow;
    const was = placeOf(node);
    const before = current();
    if (event.shiftKey) {
      const w = Math.min(COLUMNS - node.x, Math.max(1, node.w + dx));
      const h = Math.min(MAX_ROWS, Math.max(1, node.h + dy));
      board.grid.update(item, { w, h });
    } else if (dx) {
      board.grid.update(item, { x: Math.min(COLUMNS - node.w, Math.max(0, node.x + dx)) });
    } else {
      const bottom = Math.max(0, ...board.grid.engine.nodes.map((other) => other.y + other.h));
      for (let y = was.y + dy; y >= 0 && y <= bottom; y += dy) {
        board.grid.update(item, { y });
        if (node.y !== was.y) break;
      }
    }
    const now = placeOf(node);
    if (JSON.stringify(now) === JSON.stringify(was)) return;
    state.undo.push(before);
    showUndo();
    item.classList.add("keyboard-moving");
    say(interpolate(gettext("Column %(x)s, row %(y)s, %(w)s wide, %(h)s high"), {
      x: now.x + 1, y: now.y + 1, w: now.w, h: now.h,
    }, true));
  }

  window.document.addEventListener("focusout", (event) => {
    const item = event.target.closest && event.target.closest(".grid-stack-item");
    if (item) item.classList.remove("keyboard-moving");
  });

  // ---- picking series from what exists --------------------------------------------------

  const PREVIEW_NAMES = 5;
  const PREVIEW_DELAY_MS = 300;
  const metricSelect = window.document.getElementById("pick-metric");
  const labelsNode = window.document.getElementById("pick-labels");
  const pickedNode = window.document.getElementById("pick-selector");
  const pickAdd = window.document.getElementById("pick-add");

  function escapeString(text) {
    return text.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
  }

  function escapeRegex(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  async function getJSON(url) {
    return api("GET", url).catch(() => ({ ok: false, status: 0, body: {} }));
  }

  async function loadMetrics() {
    if (!metricSelect) return;
    const answer = await getJSON(config.labelsUrl + "__name__/values");
    const names = answer.ok ? answer.body.values || [] : [];
    const keep = metricSelect.value;
    metricSelect.replaceChildren(new Option(gettext("Choose a metric"), ""), ...names.map((name) => new Option(name, name)));
    metricSelect.value = names.includes(keep) ? keep : "";
  }

  // The dashboard's variables over a label are offered as its first values (`$host`).
  function variablesOf(label) {
    return (board.document().variables || []).filter((variable) => variable.label_of === label);
  }

  async function pickMetric() {
    const name = metricSelect.value;
    labelsNode.replaceChildren();
    if (name) {
      const answer = await getJSON(config.seriesUrl + "?match=" + encodeURIComponent(name));
      if (metricSelect.value !== name) return;
      const values = new Map();
      for (const found of answer.ok ? answer.body.series || [] : []) {
        for (const [label, value] of Object.entries(found.labels || {})) {
          if (!values.has(label)) values.set(label, new Set());
          values.get(label).add(value);
        }
      }
      for (const label of Array.from(values.keys()).sort()) {
        const box = window.document.createElement("label");
        const select = window.document.createElement("select");
        select.multiple = true;
        select.id = "pick-label-" + label;
        select.dataset.label = label;
        const options = variablesOf(label).map((variable) => new Option("$" + variable.name, "$" + variable.name));
        for (const value of Array.from(values.get(label)).sort()) options.push(new Option(value, value));
        select.size = Math.min(4, options.length);
        select.replaceChildren(...options);
        select.addEventListener("change", showPicked);
        box.append(interpolate(gettext("%s (none chosen: any)"), [label]), select);
        labelsNode.append(box);
      }
    }
    showPicked();
  }

  function pickedSelector() {
    const name = metricSelect.value;
    if (!name) return "";
    const matchers = [];
    for (const select of labelsNode.querySelectorAll("select")) {
      const chosen = Array.from(select.selectedOptions).map((option) => option.value);
      if (!chosen.length) continue;
      const variable = chosen.find((value) => value.startsWith("$"));
      const label = select.dataset.label;
      if (variable) matchers.push(label + '=~"' + variable + '"');
      else if (chosen.length === 1) matchers.push(label + '="' + escapeString(chosen[0]) + '"');
      else matchers.push(label + '=~"' + escapeString(chosen.map(escapeRegex).join("|")) + '"');
    }
    return matchers.length ? name + "{" + matchers.join(",") + "}" : name;
  }

  function showPicked() {
    const selector = pickedSelector();
    pickedNode.textContent = selector;
    pickAdd.disabled = !selector;
    preview(window.document.getElementById("pick-preview"), selector ? [selector] : []);
  }

  function seriesLines() {
    return field("series")
      .value.split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
  }

  // How many series the selectors (with the variables' values in them) match now, and a few of their names.
  async function preview(node, texts) {
    if (!node) return;
    const token = (node.dataset.token = String(Number(node.dataset.token || 0) + 1));
    if (!texts.length) {
      node.textContent = "";
      return;
    }
    const query = texts.map((text) => "match=" + encodeURIComponent(board.substitute(text))).join("&");
    const answer = await getJSON(config.seriesUrl + "?" + query);
    if (node.dataset.token !== token) return;
    if (!answer.ok) {
      node.dataset.level = "error";
      node.textContent = interpolate(gettext("Not a selector: %s"), [answer.body.detail || answer.status]);
      return;
    }
    const found = answer.body.series || [];
    node.dataset.level = "info";
    node.dataset.count = String(found.length);
    let text = interpolate(ngettext("%s series matches now", "%s series match now", found.length), [found.length]);
    if (answer.body.truncated) text += " " + gettext("(and more)");
    const names = found.slice(0, PREVIEW_NAMES).map((series) => series.id);
    if (names.length) text += ": " + names.join(", ") + (found.length > PREVIEW_NAMES ? ", …" : "");
    node.textContent = text;
  }

  let previewTimer = null;
  function previewTyped() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(() => preview(window.document.getElementById("panel-preview"), seriesLines()), PREVIEW_DELAY_MS);
  }

  if (metricSelect) {
    metricSelect.addEventListener("change", pickMetric);
    field("series").addEventListener("input", previewTyped);
    pickAdd.addEventListener("click", () => {
      const selector = pickedSelector();
      if (!selector) return;
      const lines = seriesLines();
      if (!lines.includes(selector)) lines.push(selector);
      field("series").value = lines.join("\n");
      preview(window.document.getElementById("panel-preview"), lines);
    });
  }

  // ---- the panel dialog --------------------------------------------------------------

  function field(name) {
    return window.document.getElementById("panel-" + name);
  }

  function openPanel(id) {
    const panel = board.document().panels.find((candidate) => candidate.id === id);
    state.panelId = panel ? panel.id : null;
    field("title").value = panel ? panel.title : "";
    field("type").value = panel ? panel.type : "timeseries";
    field("series").value = panel ? panel.series.join("\n") : "";
    field("unit").value = panel ? panel.unit || "" : "";
    field("remove").hidden = !panel;
    field("duplicate").hidden = !panel;
    if (metricSelect) {
      metricSelect.value = "";
      labelsNode.replaceChildren();
      showPicked();
      loadMetrics();
      preview(window.document.getElementById("panel-preview"), seriesLines());
    }
    dialog.showModal();
  }

  function applyPanel() {
    const document = current();
    const series = field("series")
      .value.split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    if (!series.length) return;
    let panel = document.panels.find((candidate) => candidate.id === state.panelId);
    if (!panel) {
      const bottom = Math.max(0, ...document.panels.map((p) => p.grid.y + p.grid.h));
      panel = { id: Math.max(0, ...document.panels.map((p) => p.id)) + 1, title: "", type: "timeseries", series: [] };
      panel.grid = { x: 0, y: bottom, w: NEW_PANEL_SIZE.w, h: NEW_PANEL_SIZE.h };
      document.panels.push(panel);
    }
    panel.title = field("title").value.trim();
    panel.type = field("type").value;
    panel.series = series;
    const unit = field("unit").value.trim();
    if (unit) panel.unit = unit;
    else delete panel.unit;
    // The document's key order, which the server keeps as sent.
    const ordered = {};
    for (const key of ["id", "title", "type", "series", "unit", "decimals", "thresholds", "grid"]) {
      if (key in panel) ordered[key] = panel[key];
    }
    document.panels[document.panels.indexOf(panel)] = ordered;
    change(document);
  }

  // The panel as it is (not the dialog's unapplied edits), right below itself.
  function duplicatePanel() {
    const document = current();
    const original = document.panels.find((panel) => panel.id === state.panelId);
    if (!original) return;
    const copy = structuredClone(original);
    copy.id = Math.max(0, ...document.panels.map((panel) => panel.id)) + 1;
    copy.grid = Object.assign({}, original.grid, { y: original.grid.y + original.grid.h });
    document.panels.push(copy);
    change(document);
  }

  function removePanel() {
    const document = current();
    document.panels = document.panels.filter((panel) => panel.id !== state.panelId);
    change(document);
  }

  if (dialog) {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "apply") applyPanel();
      if (dialog.returnValue === "remove") removePanel();
      if (dialog.returnValue === "duplicate") duplicatePanel();
      dialog.returnValue = "";
    });
  }

  // ---- save --------------------------------------------------------------------------

  async function save() {
    const document = current();
    const message = window.document.getElementById("save-message");
    say(gettext("Saving…"));
    const url = config.apiUrl + "?message=" + encodeURIComponent(message ? message.value : "");
    let answer;
    state.saving = true;
    try {
      answer = await api("PUT", url, document);
    } catch (err) {
      say(gettext("Could not reach the server; your changes are kept here. Try again."), "error");
      return;
    } finally {
      state.saving = false;
    }
    if (answer.ok) {
      state.saved = answer.body;
      state.undo = [];
      showUndo();
      board.setDocument(answer.body);
      if (message) message.value = "";
      setEditing(false);
      say("");
      ld.toast(interpolate(gettext("Saved as version %s"), [answer.body.version]), "", "success");
      return;
    }
    const detail = answer.body.detail || "";
    if (answer.status === 409 && answer.body.error === "conflict") {
      say(
        gettext("Someone saved this dashboard after you opened it. Your changes are still here: reload to see theirs (yours will be lost), or copy what you need first.") + " (" + detail + ")",
        "error",
      );
    } else if (answer.status === 409) {
      say(gettext("This dashboard follows a file: change the file, or save a copy.") + " (" + detail + ")", "error");
    } else {
      say(interpolate(gettext("Not saved: %s"), [detail || answer.status]), "error");
    }
  }

  function cancel() {
    board.setDocument(structuredClone(state.saved));
    state.undo = [];
    showUndo();
    setEditing(false);
    say("");
  }

  function undo() {
    const previous = state.undo.pop();
    if (previous) board.setDocument(previous);
    showUndo();
  }

  const on = (id, handler) => {
    const node = window.document.getElementById(id);
    if (node) node.addEventListener("click", handler);
  };
  on("edit-button", () => setEditing(true));
  on("add-panel", () => openPanel(null));
  on("save-board", save);
  on("cancel-edit", cancel);
  on("undo-edit", undo);

  // ---- versions -----------------------------------------------------------------------

  const versionsDialog = window.document.getElementById("versions-dialog");
  const versionsList = window.document.getElementById("versions-list");

  async function showVersions() {
    versionsList.replaceChildren();
    const answer = await api("GET", config.apiUrl + "/versions").catch(() => ({ ok: false, body: {} }));
    const versions = answer.ok ? answer.body.versions || [] : [];
    for (const version of versions) {
      const item = window.document.createElement("li");
      item.dataset.version = String(version.version);
      const when = new Date(version.created_at * 1000).toLocaleString(ld.lang);
      const text = window.document.createElement("span");
      text.textContent = interpolate(gettext("Version %(version)s, %(when)s, by %(author)s"), {
        version: version.version,
        when: when,
        author: version.author || gettext("the system"),
      }, true) + (version.message ? " · " + version.message : "");
      item.append(text);
      if (config.editable && version.version !== state.saved.version) {
        const restore = window.document.createElement("button");
        restore.type = "button";
        restore.className = "button small";
        restore.textContent = gettext("Restore");
        restore.setAttribute("aria-label", interpolate(gettext("Restore version %s"), [version.version]));
        restore.addEventListener("click", () => restoreVersion(version.version));
        item.append(" ", restore);
      }
      versionsList.append(item);
    }
    versionsDialog.showModal();
  }

  async function restoreVersion(version) {
    const url = config.apiUrl + "/versions/" + version + "/restore?current=" + state.saved.version;
    const answer = await api("POST", url).catch(() => ({ ok: false, status: 0, body: {} }));
    if (answer.ok) {
      state.saved = answer.body;
      board.setDocument(structuredClone(answer.body));
      versionsDialog.close();
      ld.toast(interpolate(gettext("Version %(old)s restored as version %(new)s"), { old: version, new: answer.body.version }, true), "", "success");
      return;
    }
    ld.toast(gettext("Not restored"), answer.body.detail || String(answer.status), "error");
  }

  on("versions-button", showVersions);
  on("versions-close", () => versionsDialog.close());

  // ---- export, import, save a copy ----------------------------------------------------------

  function download(name, text) {
    const link = window.document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    link.download = name;
    window.document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  // The stored document, as the API and `export_dashboard` give it.
  async function exportBoard() {
    const answer = await getJSON(config.apiUrl);
    const document = answer.ok ? answer.body : state.saved;
    download(document.uid + ".json", JSON.stringify(document, null, 2) + "\n");
  }

  const copyDialog = window.document.getElementById("copy-dialog");
  const copy = { mode: "copy", source: null };
  const UID_MAX_LENGTH = 40;

  function copyField(name) {
    return window.document.getElementById("copy-" + name);
  }

  function copySay(text, level) {
    copyField("status").textContent = text;
    copyField("status").dataset.level = level || "info";
  }

  function openCopy(mode) {
    copy.mode = mode;
    const heading = copyField("dialog-title");
    heading.textContent = heading.dataset[mode];
    window.document.getElementById("import-file-row").hidden = mode !== "import";
    window.document.getElementById("import-file").value = "";
    copySay("");
    if (mode === "copy") {
      copy.source = state.editing ? current() : structuredClone(state.saved);
      copyField("title").value = interpolate(gettext("Copy of %s"), [copy.source.title]);
      copyField("uid").value = (copy.source.uid + "-copy").slice(0, UID_MAX_LENGTH);
    } else {
      copy.source = null;
      copyField("title").value = "";
      copyField("uid").value = "";
    }
    copyDialog.showModal();
  }

  async function readFile() {
    const file = window.document.getElementById("import-file").files[0];
    copy.source = null;
    if (!file) return;
    let parsed;
    try {
      parsed = JSON.parse(await file.text());
    } catch (err) {
      copySay(interpolate(gettext("Not JSON: %s"), [err.message]), "error");
      return;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      copySay(gettext("Not a dashboard: the file must hold one JSON object."), "error");
      return;
    }
    copy.source = parsed;
    copyField("title").value = typeof parsed.title === "string" ? parsed.title : "";
    copyField("uid").value = typeof parsed.uid === "string" ? parsed.uid : "";
    copySay("");
  }

  // A new dashboard under the uid given (an existing one answers 409 and stays as it was).
  // A copy is its maker's and private; an import keeps the file's visibility.
  async function saveCopy() {
    if (!copy.source) {
      copySay(gettext("Choose a dashboard file first."), "error");
      return;
    }
    const uid = copyField("uid").value.trim();
    const document = Object.assign({}, copy.source, { uid: uid, title: copyField("title").value.trim() });
    delete document.version;
    if (copy.mode === "copy") document.visibility = "private";
    const message = copy.mode === "copy" ? interpolate(gettext("copy of %s"), [state.saved.uid]) : gettext("imported");
    const url = config.listUrl + "/" + encodeURIComponent(uid) + "?message=" + encodeURIComponent(message);
    copySay(gettext("Saving…"));
    const answer = await api("PUT", url, document).catch(() => ({ ok: false, status: 0, body: {} }));
    if (!answer.ok) {
      copySay(interpolate(gettext("Not saved: %s"), [answer.body.detail || answer.status]), "error");
      return;
    }
    window.location.assign(config.pageUrl.replace(/[^/]+\/$/, encodeURIComponent(answer.body.uid) + "/"));
  }

  on("export-board", exportBoard);
  on("copy-board", () => openCopy("copy"));
  on("import-board", () => openCopy("import"));
  on("copy-save", saveCopy);
  const importFile = window.document.getElementById("import-file");
  if (importFile) importFile.addEventListener("change", readFile);

  // ---- someone else saved ------------------------------------------------------------------

  function heard(event) {
    if (!event || event.uid !== state.saved.uid) return;
    // This page's own save, or one it has already loaded.
    if (event.version !== null && event.version <= state.saved.version) return;
    if (state.saving && event.by === (ld.config.user || {}).username) return;
    if (!notice) return;
    notice.textContent =
      event.version === null
        ? interpolate(gettext("deleted by %s"), [event.by || "?"])
        : interpolate(gettext("updated by %s: reload to see it"), [event.by || "?"]);
  }
  ld.on("sse:dashboard-changed", heard);

  // The stream is closed while history is read again (a variable, a window, an edit)
  // and resumes where that history ends: for the metrics channel only, so a save that
  // went out meanwhile would never arrive. Each time the stream opens, the stored
  // version is asked for once; anything later comes on the stream.
  async function checkStored() {
    const url = config.listUrl + "?q=" + encodeURIComponent(state.saved.uid);
    const answer = await api("GET", url).catch(() => ({ ok: false }));
    if (!answer.ok || state.saving) return;
    const found = (answer.body.dashboards || []).find((row) => row.uid === state.saved.uid);
    heard(found ? { uid: found.uid, version: found.version, by: found.updated_by } : { uid: state.saved.uid, version: null });
  }
  ld.on("sse:open", checkStored);

  if (config.edit) setEditing(true);
})();
