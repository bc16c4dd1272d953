// How numbers, units and times read on the page. Pure functions, no DOM: the
// charts, the connection indicators and the notification menu all call these.
(function () {
  "use strict";
  const ld = window.livedash;
  if (!ld) return;

  function number(value) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    const abs = Math.abs(value);
    if (abs >= 1e6) return (value / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
    if (abs >= 1e4) return (value / 1e3).toFixed(abs >= 1e5 ? 0 : 1) + "k";
    if (Number.isInteger(value)) return String(value);
    return value.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : 2);
  }

  // Rates in bytes read better scaled: "1.2 MB/s" rather than "1.2M B/s".
  function withUnit(value, unit) {
    if (unit === "B/s" && isFinite(value) && value !== null) {
      const steps = ["B/s", "KB/s", "MB/s", "GB/s"];
      let scaled = value;
      let step = 0;
      while (Math.abs(scaled) >= 1024 && step < steps.length - 1) {
        scaled /= 1024;
        step += 1;
      }
      return { text: number(Math.round(scaled * 10) / 10), unit: steps[step] };
    }
    return { text: number(value), unit: unit || "" };
  }

  // Axis labels have ~45 px: "195K" rather than "195 KB/s"; bytes scale by 1024.
  function axis(value, unit) {
    if (unit !== "B/s") {
      const text = number(value);
      return /^-?\d+\.\d+$/.test(text) ? text.replace(/\.?0+$/, "") : text;
    }
    const steps = ["", "K", "M", "G"];
    let scaled = value;
    let step = 0;
    while (Math.abs(scaled) >= 1024 && step < steps.length - 1) {
      scaled /= 1024;
      step += 1;
    }
    const text = number(Math.round(scaled * 10) / 10);
    return (text.includes(".") ? text.replace(/\.?0+$/, "") : text) + steps[step];
  }

  function pad2(n) {
    return n < 10 ? "0" + n : String(n);
  }

  // Local wall-clock times; seconds only when the ticks are less than a minute apart.
  function times(splits) {
    const withSeconds = splits.length > 1 && splits[1] - splits[0] < 60;
    return splits.map((ts) => {
      const d = new Date(ts * 1000);
      const hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
      return withSeconds ? hm + ":" + pad2(d.getSeconds()) : hm;
    });
  }

  function age(seconds) {
    if (seconds < 1) return "just now";
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    return Math.floor(seconds / 3600) + " h ago";
  }

  ld.format = { number, withUnit, axis, times, age };
})();
