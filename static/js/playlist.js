// A playlist on a wall screen: each dashboard in kiosk mode, in turn, every `interval`
// seconds (boards/playlist_views.py). Two iframes: the next dashboard loads in the
// hidden one and is shown only once it has loaded as a page of this site, so a worker
// restarting or the network going away leaves the last dashboard on screen and the
// next turn simply tries again. Every turn is a fresh page, so nothing builds up over
// a week; the host page reloads itself after a full turn once an hour, and only when
// its own address answers (a share revoked meanwhile then shows as gone).
// Space pauses and resumes, the arrow keys go back and forth; the state is announced.
(function () {
  "use strict";
  const configNode = document.getElementById("playlist-config");
  const status = document.getElementById("playlist-status");
  if (!configNode || !status) return;
  const config = JSON.parse(configNode.textContent);
  const entries = config.entries || [];
  const frames = [document.getElementById("playlist-frame-a"), document.getElementById("playlist-frame-b")];
  if (!entries.length || !frames[0] || !frames[1]) return;
  const t = window.gettext || ((text) => text);
  const fill = window.interpolate || ((text) => text);
  // A page that has not loaded by then is given up for this turn.
  const LOAD_TIMEOUT_MS = Math.max(30000, config.interval * 1000);
  const SHOWN_FOR_MS = 5000;
  const startedAt = Date.now();

  let current = -1; // index of the entry on screen
  let front = 0; // the frame on screen
  let paused = false;
  let turn = null; // timer of the next turn
  let loading = null; // {index, frame, url, watchdog}
  let hideStatus = null;

  function describe(index) {
    return fill(t("%(title)s (%(n)s of %(total)s)"), {
      title: entries[index].title, n: index + 1, total: entries.length,
    }, true);
  }

  function announce(text) {
    status.textContent = text;
    status.classList.toggle("is-paused", paused);
    status.classList.add("is-visible");
    clearTimeout(hideStatus);
    hideStatus = setTimeout(() => status.classList.remove("is-visible"), SHOWN_FOR_MS);
  }

  function announceState(index) {
    const what = describe(index);
    announce(paused ? fill(t("Paused: %(what)s"), { what }, true) : fill(t("Showing %(what)s"), { what }, true));
  }

  function schedule() {
    clearTimeout(turn);
    turn = null;
    if (!paused) turn = setTimeout(() => go(1), config.interval * 1000);
  }

  // The frame holds the page asked for, from this site, answered with a 2xx: not an
  // error page, not a sign-in page it was redirected to.
  function loadedWell(frame, url) {
    try {
      const win = frame.contentWindow;
      if (!win || !frame.contentDocument || !frame.contentDocument.body) return false;
      if (win.location.pathname !== new URL(url, window.location.href).pathname) return false;
      const navigation = win.performance.getEntriesByType("navigation")[0];
      const code = navigation && navigation.responseStatus;
      return !code || (code >= 200 && code < 300);
    } catch (error) {
      return false; // another origin: a browser error page
    }
  }

  function blank(frame) {
    frame.removeAttribute("src");
    frame.src = "about:blank"; // ends the old page, its stream and socket with it
  }

  function finished(frame, ok) {
    if (!loading || loading.frame !== frame) return;
    const { index } = loading;
    clearTimeout(loading.watchdog);
    loading = null;
    if (!ok) {
      blank(frame);
      announce(fill(t("%(title)s could not be loaded; it is tried again on its next turn"), {
        title: entries[index].title,
      }, true));
      if (current < 0) current = index; // nothing on screen yet: go on from here
      schedule();
      return;
    }
    const old = frames[front];
    front = frames.indexOf(frame);
    frame.classList.add("is-current");
    old.classList.remove("is-current");
    blank(old);
    const wrapped = index <= current;
    current = index;
    listenTo(frame);
    announceState(index);
    schedule();
    if (wrapped) refreshIfDue();
  }

  function load(index) {
    if (loading) {
      clearTimeout(loading.watchdog);
      blank(loading.frame);
    }
    const frame = frames[1 - front];
    const url = entries[index].url;
    frame.title = entries[index].title;
    loading = { index, frame, url, watchdog: setTimeout(() => finished(frame, false), LOAD_TIMEOUT_MS) };
    frame.src = url;
  }

  function go(step) {
    const from = loading ? loading.index : current;
    const base = from < 0 ? -1 : from;
    const index = (((base + step) % entries.length) + entries.length) % entries.length;
    clearTimeout(turn);
    turn = null;
    load(index);
  }

  function togglePause() {
    paused = !paused;
    if (paused) {
      clearTimeout(turn);
      turn = null;
    } else if (!loading) {
      schedule();
    }
    announceState(current < 0 ? 0 : current);
  }

  function onKey(event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === " " || event.key === "Spacebar") togglePause();
    else if (event.key === "ArrowRight") go(1);
    else if (event.key === "ArrowLeft") go(-1);
    else return;
    event.preventDefault();
  }

  // Keys pressed while a dashboard's frame has the focus reach its own document.
  function listenTo(frame) {
    try {
      frame.contentWindow.addEventListener("keydown", onKey);
    } catch (error) {
      // not a page of this site: nothing to listen to
    }
  }

  function refreshIfDue() {
    if (Date.now() - startedAt < config.refreshSeconds * 1000) return;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then((response) => {
        // 404: the playlist or its share is gone, which the reloaded page says.
        if (response.ok || response.status === 404) window.location.reload();
      })
      .catch(() => {}); // not answering: keep showing what there is
  }

  frames.forEach((frame) => {
    frame.addEventListener("load", () => {
      if (loading && loading.frame === frame && frame.getAttribute("src") === loading.url) {
        finished(frame, loadedWell(frame, loading.url));
      }
    });
  });
  document.addEventListener("keydown", onKey);
  load(0);
})();
