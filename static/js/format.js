// How numbers, units and times read on the page, in the page's language
// (<html lang>, Intl): "4,6 %" in Spanish, "4.6 %" in English. Pure functions,
// no DOM: the charts, the connection indicators and the notification menu all
// call these.
//
// Numbers keep a fixed number of decimals per unit, so a value does not change
// width as decimals come and go (4.6 %, 7.0 %, 6.9 %). Byte units step by 1024
// (KiB, MiB: binary prefixes, so the axis says what it does); every other unit
// steps by 10.
(function () {
  "use strict";
  const ld = window.livedash;
  if (!ld) return;
  const lang = ld.lang || document.documentElement.lang || "en";
  const formatters = new Map();
  const BINARY_PREFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];

  function numberFormat(decimals) {
    if (!formatters.has(decimals)) {
      formatters.set(
        decimals,
        new Intl.NumberFormat(lang, { minimumFractionDigits: decimals, maximumFractionDigits: decimals }),
      );
    }
    return formatters.get(decimals);
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function isBytes(unit) {
    return typeof unit === "string" && /^B(\/s)?$/.test(unit);
  }

  // Decimals a unit is always shown with; `whole` when every value seen is an integer.
  function decimalsFor(unit, whole) {
    if (unit === "%" || unit === "/s") return 1;
    if (isBytes(unit)) return 1;
    return whole ? 0 : 2;
  }

  function number(value, decimals) {
    if (!isNumber(value)) return "–";
    return numberFormat(decimals === undefined ? (Number.isInteger(value) ? 0 : 2) : decimals).format(value);
  }

  // The binary scale (a power of 1024) that suits a byte value.
  function byteStep(value) {
    let step = 0;
    let scaled = Math.abs(value);
    while (scaled >= 1024 && step < BINARY_PREFIXES.length - 1) {
      scaled /= 1024;
      step += 1;
    }
    return step;
  }

  function byteUnit(unit, step) {
    return BINARY_PREFIXES[step] + unit;
  }

  // { text, unit } for the big number on a card: "1,5" + "MiB/s".
  function withUnit(value, unit, decimals) {
    if (!isNumber(value)) return { text: "–", unit: unit || "" };
    if (isBytes(unit)) {
      const step = byteStep(value);
      return { text: number(value / 1024 ** step, step === 0 ? 0 : 1), unit: byteUnit(unit, step) };
    }
    return { text: number(value, decimals === undefined ? decimalsFor(unit, Number.isInteger(value)) : decimals), unit: unit || "" };
  }

  function joined(value, unit, decimals) {
    const shown = withUnit(value, unit, decimals);
    return shown.unit ? shown.text + " " + shown.unit : shown.text;
  }

  // Axis tick labels with their unit, all on one scale ("0 KiB/s, 256 KiB/s, 512 KiB/s"),
  // with as many decimals as the tick spacing needs.
  function axis(splits, unit, increment) {
    if (isBytes(unit)) {
      const top = Math.max(...splits.map(Math.abs));
      const step = byteStep(top);
      const scale = 1024 ** step;
      const decimals = decimalsForIncrement((increment || top) / scale);
      return splits.map((v) => number(v / scale, decimals) + " " + byteUnit(unit, step));
    }
    const decimals = decimalsForIncrement(increment || 1);
    return splits.map((v) => number(v, decimals) + (unit ? " " + unit : ""));
  }

  function decimalsForIncrement(increment) {
    if (!(increment > 0) || increment >= 1) return 0;
    return Math.min(4, Math.ceil(-Math.log10(increment) - 1e-9));
  }

  // Tick sizes for byte axes: powers of two times powers of 1024 (64 KiB, 128 KiB, 256 KiB...).
  const BINARY_INCREMENTS = (() => {
    const out = [];
    for (let power = 0; power < 5; power++) {
      for (let m = 1; m < 1024; m *= 2) out.push(m * 1024 ** power);
    }
    return out;
  })();

  const timeFormats = {
    minutes: new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
    seconds: new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }),
    full: new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" }),
  };

  // Wall-clock times in the browser's time zone (shown on the page); seconds only
  // when the ticks are less than a minute apart.
  function times(splits) {
    const withSeconds = splits.length > 1 && splits[1] - splits[0] < 60;
    const format = withSeconds ? timeFormats.seconds : timeFormats.minutes;
    return splits.map((ts) => format.format(new Date(ts * 1000)));
  }

  function time(ts) {
    return timeFormats.seconds.format(new Date(ts * 1000));
  }

  function dateTime(ts) {
    return timeFormats.full.format(new Date(ts * 1000));
  }

  // "Europe/Madrid (UTC+1)": the zone the charts' times are in.
  function timeZone() {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const minutes = -new Date().getTimezoneOffset();
    const sign = minutes < 0 ? "−" : "+";
    const abs = Math.abs(minutes);
    const offset = "UTC" + sign + Math.floor(abs / 60) + (abs % 60 ? ":" + String(abs % 60).padStart(2, "0") : "");
    return zone === "UTC" ? "UTC" : zone + " (" + offset + ")";
  }

  function age(seconds) {
    if (seconds < 1) return gettext("just now");
    let n;
    if (seconds < 60) {
      n = Math.floor(seconds);
      return interpolate(ngettext("%s s ago", "%s s ago", n), [n]);
    }
    if (seconds < 3600) {
      n = Math.floor(seconds / 60);
      return interpolate(ngettext("%s min ago", "%s min ago", n), [n]);
    }
    if (seconds < 86400) {
      n = Math.floor(seconds / 3600);
      return interpolate(ngettext("%s h ago", "%s h ago", n), [n]);
    }
    n = Math.floor(seconds / 86400);
    return interpolate(ngettext("%s day ago", "%s days ago", n), [n]);
  }

  ld.format = {
    number,
    decimalsFor,
    isBytes,
    withUnit,
    joined,
    axis,
    binaryIncrements: BINARY_INCREMENTS,
    times,
    time,
    dateTime,
    timeZone,
    age,
  };
})();
