// Editing a dashboard in its page (for those who may change it): panels moved and
// resized on the grid, added, removed, their title, type, series and unit changed in
// a dialog; undo of the last change; saved through the dashboards API as a new
// version (a stale version answers 409 and the page says so, keeping the edits).
// The version list (with restore) and the "updated by X" notice are here too.
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

  function csrfToken() {
    const found = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
    return found ? decodeURIComponent(found.slice("csrftoken=".length)) : "";
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, body: answer };
  }

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
    tools.append(edit);
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
    if (on) say(gettext("Drag a panel by its title to move it, by its corner to resize it."));
  }

  ld.on("board:changed", decorate);

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

  function removePanel() {
    const document = current();
    document.panels = document.panels.filter((panel) => panel.id !== state.panelId);
    change(document);
  }

  if (dialog) {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue === "apply") applyPanel();
      if (dialog.returnValue === "remove") removePanel();
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

  // ---- someone else saved ------------------------------------------------------------------

  ld.on("sse:dashboard-changed", (event) => {
    if (!event || event.uid !== state.saved.uid) return;
    // This page's own save, or one it has already loaded.
    if (event.version !== null && event.version <= state.saved.version) return;
    if (state.saving && event.by === (ld.config.user || {}).username) return;
    if (!notice) return;
    notice.textContent =
      event.version === null
        ? interpolate(gettext("deleted by %s"), [event.by || "?"])
        : interpolate(gettext("updated by %s: reload to see it"), [event.by || "?"]);
  });

  if (config.edit) setEditing(true);
})();
