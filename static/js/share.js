// A share link's page (/s/TOKEN/): board.js and charts.js draw the dashboard from the
// link's stream and history (stream.js and charts.js add `share=` to what they read);
// this module watches the link itself. When the stream drops or history is refused it
// asks the link's state (`stateUrl`); a revoked or expired link ends the page's stream
// and says so, in words, over the panels. It never opens a WebSocket: the page has none.
(function () {
  "use strict";
  const ld = window.livedash;
  const share = ld && ld.config.share;
  if (!share) return;
  // While the stream is down, the link's state is asked this often (a link revoked
  // while this page could not hear it still ends here).
  const PROBE_EVERY_MS = 15000;
  // Several drops in a moment are one question; a drop is asked about after a random
  // moment up to PROBE_SPREAD_MS, so a link's many viewers do not all ask at once.
  const PROBE_GAP_MS = 1000;
  const PROBE_SPREAD_MS = 2000;
  const banner = document.getElementById("share-ended");
  const state = { ended: false, probing: false, lastProbe: 0 };

  function end(why) {
    if (state.ended) return;
    state.ended = true;
    ld.stream.close();
    const title = banner.querySelector(".share-ended-title");
    title.textContent = title.dataset[why] || title.dataset.unknown;
    banner.hidden = false;
    banner.dataset.why = why;
    document.body.classList.add("link-ended");
    ld.stream.setStatus("offline", why === "expired" ? gettext("link expired") : gettext("link revoked"));
    ld.emit("share:ended", { why });
  }

  async function probe() {
    if (state.ended || state.probing || Date.now() - state.lastProbe < PROBE_GAP_MS) return;
    state.probing = true;
    state.lastProbe = Date.now();
    try {
      const response = await fetch(share.stateUrl, { headers: { Accept: "application/json" }, credentials: "omit" });
      if (response.status === 404 || response.status === 410) {
        const body = await response.json().catch(() => ({}));
        end(body.state === "revoked" || body.state === "expired" ? body.state : "unknown");
      }
    } catch (err) {
      /* the server is away: the stream's own reconnects go on, and so do these questions */
    } finally {
      state.probing = false;
    }
  }

  function probeSoon() {
    setTimeout(probe, Math.random() * PROBE_SPREAD_MS);
  }

  // The stream's states while it is not open (stream.js): a quiet but open stream is
  // no reason to ask.
  const DOWN = ["connecting", "reconnecting", "offline"];
  ld.on("sse:error", probeSoon);
  ld.on("share:refused", probeSoon);
  setInterval(() => {
    if (DOWN.includes(document.getElementById("sse-status").dataset.state)) probe();
  }, PROBE_EVERY_MS);
  // At its expiry the server ends the stream; asking then says why at once.
  if (typeof share.expires === "number") {
    const wait = share.expires * 1000 - Date.now() + PROBE_GAP_MS;
    // setTimeout takes at most about 24 days: a later expiry is met by the stream's end.
    if (wait > 0 && wait < 2 ** 31 - 1) setTimeout(probe, wait);
    const expiresNode = document.getElementById("share-expires");
    if (expiresNode && ld.format) expiresNode.textContent = ld.format.dateTime(share.expires);
  }

  ld.share = { ended: () => state.ended, probe };
})();
