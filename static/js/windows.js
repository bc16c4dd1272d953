// Maintenance windows, managed from the dashboard by those who may silence alerts: the
// list (with the occurrence on now), a form to add one-off or recurring windows, and a
// delete button each. Everything goes through the maintenance windows API
// (`windowsUrl`, the session's CSRF token); the server's answer is the truth shown.
(function () {
  "use strict";
  const ld = window.livedash;
  const panel = document.getElementById("windows");
  if (!ld || !panel || !ld.config.windowsUrl) return;

  const url = ld.config.windowsUrl;
  const list = document.getElementById("windows-list");
  const empty = panel.querySelector(".windows-empty");
  const form = document.getElementById("window-form");
  const problem = form.querySelector(".form-error");
  let loaded = false;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // An error carries the API's code and, for a refused window, its English detail
  // naming the field (`cron: a cron expression has five fields ...`).
  async function request(path, options) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": ld.csrfToken() },
      ...options,
    });
    const answer = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(answer.error || String(response.status));
      error.detail = answer.detail || "";
      throw error;
    }
    return answer;
  }

  function when(ts) {
    return ld.format.dateTime(ts);
  }

  function schedule(spec) {
    const minutes = Math.round(spec.duration / 60);
    const zone = spec.timezone || "UTC";
    const from = when(spec.start);
    if (spec.rrule) {
      return interpolate(gettext("%(rule)s in %(zone)s from %(start)s, %(minutes)s min each"), { rule: spec.rrule, zone, start: from, minutes }, true);
    }
    if (spec.cron) {
      return interpolate(gettext("cron %(cron)s in %(zone)s from %(start)s, %(minutes)s min each"), { cron: spec.cron, zone, start: from, minutes }, true);
    }
    return interpolate(gettext("once, %(start)s for %(minutes)s min"), { start: from, minutes }, true);
  }

  function row(spec) {
    const item = element("li", "window-item");
    item.dataset.window = spec.id;
    item.appendChild(element("span", "window-name", spec.name));
    item.appendChild(element("code", "window-match", spec.match || gettext("every series")));
    const parts = [schedule(spec)];
    if (!spec.enabled) parts.push(gettext("disabled"));
    item.appendChild(element("span", "window-when", parts.join(" · ")));
    if (spec.active) {
      item.appendChild(element("span", "window-on", interpolate(gettext("on now until %s"), [ld.format.times([spec.active.end])[0]])));
    }
    const remove = element("button", "button small", gettext("Delete"));
    remove.type = "button";
    remove.dataset.action = "delete";
    remove.setAttribute("aria-label", interpolate(gettext("Delete window %s"), [spec.name]));
    item.appendChild(remove);
    return item;
  }

  function show(windows) {
    list.replaceChildren(...windows.map(row));
    empty.hidden = windows.length > 0;
  }

  async function load() {
    try {
      const answer = await request(url, { method: "GET" });
      show(Array.isArray(answer.windows) ? answer.windows : []);
      loaded = true;
    } catch (error) {
      ld.toast(gettext("Maintenance windows"), gettext("Could not read the maintenance windows."), "warning");
    }
  }

  // Read when first opened, and again on each opening (another operator may have changed them).
  panel.addEventListener("toggle", () => {
    if (panel.open) load();
  });

  list.addEventListener("click", async (event) => {
    const target = event.target.closest("[data-action='delete']");
    if (!target) return;
    const item = target.closest("[data-window]");
    target.disabled = true;
    try {
      await request(url + "/" + encodeURIComponent(item.dataset.window), { method: "DELETE" });
    } catch (error) {
      ld.toast(gettext("Window not deleted"), ld.errorText ? ld.errorText(error.message) : error.message, "warning");
    }
    load();
  });

  function say(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }

  function body() {
    const data = new FormData(form);
    const text = (name) => String(data.get(name) || "").trim();
    const start = new Date(text("start")).getTime();
    const minutes = Number(text("minutes"));
    if (!text("name")) return { error: gettext("Give the window a name.") };
    if (!Number.isFinite(start)) return { error: gettext("Say when the window starts.") };
    if (!Number.isInteger(minutes) || minutes < 1) return { error: gettext("The length is a whole number of minutes.") };
    const spec = {
      name: text("name"),
      match: text("match"),
      start: Math.round(start / 1000),
      duration: minutes * 60,
      timezone: text("timezone") || "UTC",
    };
    const repeat = text("repeat");
    if (repeat) {
      if (!text("expression")) return { error: gettext("Write the rule or cron expression it repeats by.") };
      spec[repeat] = text("expression");
    }
    return { spec };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { spec, error } = body();
    if (error) {
      say(error);
      return;
    }
    const button = form.querySelector("button[type='submit']");
    button.disabled = true;
    try {
      await request(url, { method: "POST", body: JSON.stringify(spec) });
      say("");
      form.reset();
      defaults();
      repeatChanged();
      load();
    } catch (failure) {
      // The server names the field and the problem (in English): shown after our words.
      const why = failure.detail || (ld.errorText ? ld.errorText(failure.message) : failure.message);
      say(interpolate(gettext("Window not added: %s"), [why]));
    } finally {
      button.disabled = false;
    }
  });

  // The browser's own zone, and the next whole hour, as a start to edit.
  function defaults() {
    form.elements.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const next = new Date();
    next.setMinutes(60, 0, 0);
    const local = new Date(next.getTime() - next.getTimezoneOffset() * 60000);
    form.elements.start.value = local.toISOString().slice(0, 16);
  }

  // The expression field means something only for a recurring window.
  function repeatChanged() {
    form.elements.expression.disabled = !form.elements.repeat.value;
  }
  form.elements.repeat.addEventListener("change", repeatChanged);

  defaults();
  repeatChanged();
  ld.windows = { loaded: () => loaded, reload: load };
})();
