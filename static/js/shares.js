// Share links from the dashboard's page (for whoever may edit it, as the API allows):
// a link is made with an optional expiry and note, its address shown once to copy (the
// server keeps only the token's hash), and the live links listed with who made them,
// when, when last used and how many viewers they have now, each revoked in one click.
// Everything goes through the shares API with the session; its answer is what is shown.
(function () {
  "use strict";
  const ld = window.livedash;
  const shares = ld && ld.config.shares;
  const dialog = document.getElementById("share-dialog");
  const openButton = document.getElementById("share-button");
  if (!shares || !dialog || !openButton) return;
  // While the dialog is open its viewer counts are read again this often.
  const REFRESH_MS = 5000;
  const form = document.getElementById("share-form");
  const status = document.getElementById("share-status");
  const expiry = document.getElementById("share-expiry");
  const dateRow = document.getElementById("share-date-row");
  const dateInput = document.getElementById("share-date");
  const made = document.getElementById("share-made");
  const urlInput = document.getElementById("share-url");
  const rows = document.getElementById("share-rows");
  const table = document.getElementById("share-table");
  const none = document.getElementById("share-none");
  let refreshTimer = null;

  const api = ld.api;

  function say(text, level) {
    status.textContent = text;
    status.dataset.level = level || "info";
  }

  function problem(answer) {
    const detail = answer.body && (answer.body.detail || answer.body.error || answer.body.message);
    return typeof detail === "string" ? detail : interpolate(gettext("the server answered %s"), [answer.status]);
  }

  function when(ts) {
    return typeof ts === "number" ? ld.format.dateTime(ts) : null;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function row(link) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(link.id);
    const note = cell(link.note || gettext("(no note)"), link.note ? "" : "muted");
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "button small share-revoke";
    revoke.textContent = gettext("Revoke");
    revoke.setAttribute("aria-label", interpolate(gettext("Revoke the link “%s”"), [link.note || "#" + link.id]));
    revoke.addEventListener("click", () => revokeLink(link, revoke));
    const action = document.createElement("td");
    action.append(revoke);
    tr.append(
      note,
      cell(link.created_by || gettext("(a deleted user)")),
      cell(when(link.created_at)),
      cell(when(link.expires) || gettext("never")),
      cell(when(link.last_used_at) || gettext("not yet")),
      cell(link.viewers === null || link.viewers === undefined ? "–" : String(link.viewers), "share-viewers"),
      action,
    );
    return tr;
  }

  async function load() {
    const answer = await api("GET", shares.url).catch(() => null);
    if (!answer || !answer.ok) {
      if (answer) say(interpolate(gettext("Could not list the links: %s"), [problem(answer)]), "error");
      return;
    }
    const links = Array.isArray(answer.body.shares) ? answer.body.shares : [];
    rows.replaceChildren(...links.map(row));
    table.hidden = links.length === 0;
    none.hidden = links.length > 0;
  }

  async function revokeLink(link, button) {
    button.disabled = true;
    const answer = await api("DELETE", shares.url + "/" + link.id).catch(() => null);
    if (answer && (answer.ok || answer.status === 404)) {
      say(gettext("Link revoked: its viewers stop seeing the dashboard now."));
    } else {
      button.disabled = false;
      say(interpolate(gettext("Not revoked: %s"), [answer ? problem(answer) : gettext("offline")]), "error");
    }
    load();
  }

  function expiresAt() {
    if (expiry.value === "") return null;
    if (expiry.value === "date") {
      const picked = dateInput.value ? new Date(dateInput.value).getTime() : NaN;
      return isFinite(picked) ? Math.floor(picked / 1000) : undefined;
    }
    return Math.floor(Date.now() / 1000) + parseInt(expiry.value, 10);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const expires = expiresAt();
    if (expires === undefined) {
      say(gettext("Pick the date and time the link expires."), "error");
      dateInput.focus();
      return;
    }
    const body = { note: document.getElementById("share-note").value.trim() };
    if (expires !== null) body.expires = expires;
    const answer = await api("POST", shares.url, body).catch(() => null);
    if (!answer || !answer.ok) {
      say(interpolate(gettext("No link made: %s"), [answer ? problem(answer) : gettext("offline")]), "error");
      return;
    }
    urlInput.value = new URL(answer.body.url, window.location.origin).href;
    made.hidden = false;
    say(gettext("Link made. Copy it now: it is not shown again."));
    urlInput.focus();
    urlInput.select();
    form.reset();
    dateRow.hidden = true;
    load();
  });

  document.getElementById("share-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(urlInput.value);
      say(gettext("Link copied."));
    } catch (err) {
      urlInput.select();
      say(gettext("Select the address and copy it (Ctrl+C)."));
    }
  });

  expiry.addEventListener("change", () => {
    dateRow.hidden = expiry.value !== "date";
  });

  openButton.addEventListener("click", () => {
    made.hidden = true;
    urlInput.value = "";
    say("");
    dialog.showModal();
    load();
    clearInterval(refreshTimer);
    refreshTimer = setInterval(load, REFRESH_MS);
  });
  dialog.addEventListener("close", () => {
    clearInterval(refreshTimer);
    // The address is not kept once the dialog is closed: it was shown once.
    urlInput.value = "";
    made.hidden = true;
  });
  document.getElementById("share-close").addEventListener("click", () => dialog.close());

  ld.shares = { reload: load };
})();
