// Kiosk mode (`?kiosk=1` on /d/UID/ and /s/TOKEN/): a wall screen. The stylesheet hides
// everything but the panels (body.kiosk); this module fits the panels' rows to the
// screen (again when it is resized), hides the pointer while it is still, and keeps the
// screen awake where the browser allows. Staying live needs nothing here: stream.js
// reconnects with the last event id after a drop or a worker restart, and charts.js reads
// history again when the stream says it cannot resume (stream-reset).
(function () {
  "use strict";
  const ld = window.livedash;
  if (!document.body.classList.contains("kiosk")) return;
  // The pointer hides after this long without moving.
  const IDLE_MS = 3000;
  // Rows are never shorter than this, whatever the screen: below it the page scrolls.
  const MIN_CELL = 40;
  const body = document.body;

  // ---- the pointer -------------------------------------------------------------------
  let idleTimer = null;
  function awake() {
    body.classList.remove("kiosk-idle");
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => body.classList.add("kiosk-idle"), IDLE_MS);
  }
  body.classList.add("kiosk-idle");
  for (const type of ["mousemove", "pointerdown", "keydown"]) document.addEventListener(type, awake, { passive: true });

  // ---- the panels fill the screen ---------------------------------------------------
  const board = ld && ld.board;
  function fit() {
    if (!board || !board.grid) return;
    const grid = board.grid;
    if (grid.getColumn() === 1) return; // a phone: one panel under another, scrolled
    const rows = grid.getRow();
    if (!rows) return;
    const node = document.getElementById("board-grid");
    const top = node.getBoundingClientRect().top + window.scrollY;
    const cell = Math.max(MIN_CELL, Math.floor((window.innerHeight - top - 8) / rows));
    if (Math.abs(grid.getCellHeight() - cell) >= 1) grid.cellHeight(cell);
  }
  let fitQueued = false;
  function queueFit() {
    if (fitQueued) return;
    fitQueued = true;
    requestAnimationFrame(() => {
      fitQueued = false;
      fit();
    });
  }
  window.addEventListener("resize", queueFit);
  // The page's own size changes too (a scrollbar coming or going, the ended-link notice).
  new ResizeObserver(queueFit).observe(document.body);
  if (ld) ld.on("board:changed", queueFit);
  fit();

  // ---- the screen stays on ----------------------------------------------------------
  async function keepAwake() {
    if (!navigator.wakeLock || document.visibilityState !== "visible") return;
    try {
      await navigator.wakeLock.request("screen");
    } catch (err) {
      /* refused (power saving, no secure context): the screen's own settings apply */
    }
  }
  // A wake lock is let go whenever the tab is hidden: asked again when it is shown.
  document.addEventListener("visibilitychange", keepAwake);
  keepAwake();

  if (ld) ld.kiosk = { fit, cellHeight: () => (board && board.grid ? board.grid.getCellHeight() : null) };
})();
