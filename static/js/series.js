// Series ids in their Prometheus text form, as the server writes them: `name` for a
// series without labels, `name{a="x",b="y"}` (label names sorted, values escaped
// \\, \" and \n) otherwise. Ids are the keys of history, CSV and the `metric` event;
// a `frame`'s values are the series `name{host="<frame host>"}`. Pure functions, no
// DOM: the charts (and any page that draws series) read and write ids here only.
(function () {
  "use strict";
  const ld = window.livedash;
  if (!ld) return;

  function escapeValue(value) {
    return String(value).replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : "\\" + c));
  }

  function formatId(name, labels) {
    const names = Object.keys(labels || {}).sort();
    if (!names.length) return name;
    return name + "{" + names.map((label) => label + '="' + escapeValue(labels[label]) + '"').join(",") + "}";
  }

  function nameOf(id) {
    const brace = id.indexOf("{");
    return brace < 0 ? id : id.slice(0, brace);
  }

  // {label: value} of an id; an id that does not parse has no labels (its text still
  // names it wherever it is shown).
  function labelsOf(id) {
    const brace = id.indexOf("{");
    if (brace < 0 || !id.endsWith("}")) return {};
    const labels = {};
    let i = brace + 1;
    const end = id.length - 1;
    while (i < end) {
      const equals = id.indexOf('="', i);
      if (equals < 0) return {};
      const label = id.slice(i, equals);
      let value = "";
      let j = equals + 2;
      for (; j < end && id[j] !== '"'; j += 1) {
        if (id[j] === "\\" && j + 1 < end) {
          j += 1;
          value += id[j] === "n" ? "\n" : id[j];
        } else {
          value += id[j];
        }
      }
      if (id[j] !== '"') return {};
      labels[label] = value;
      i = j + 1;
      if (id[i] === ",") i += 1;
    }
    return labels;
  }

  // The series of a frame's value: the collector's host labels it (frames stored
  // before hosts were named have none: the bare name).
  function frameId(name, host) {
    return host ? formatId(name, { host: host }) : name;
  }

  // How a legend names a series among others: its labels as `k=v`, leaving out
  // those every series of the chart shares (`common`); a series without labels of
  // its own goes by all its labels, one without any by the metric's name.
  function labelText(id, labels, common) {
    const all = Object.keys(labels).sort();
    const own = all.filter((label) => !common || common[label] !== labels[label]);
    const shown = own.length ? own : all;
    return shown.length ? shown.map((label) => label + "=" + labels[label]).join(", ") : nameOf(id);
  }

  // {label: value} every one of `labelSets` has.
  function commonLabels(labelSets) {
    if (labelSets.length < 2) return {};
    const common = Object.assign({}, labelSets[0]);
    for (const labels of labelSets.slice(1)) {
      for (const label of Object.keys(common)) if (labels[label] !== common[label]) delete common[label];
    }
    return common;
  }

  // Unlabelled first, then by id, numbers in order (web2 before web10).
  function compareIds(a, b) {
    const aBare = a.indexOf("{") < 0;
    const bBare = b.indexOf("{") < 0;
    if (aBare !== bBare) return aBare ? -1 : 1;
    return a.localeCompare(b, "en", { numeric: true });
  }

  // ---- selectors ------------------------------------------------------------
  // A Prometheus vector selector (`name`, `name{a="x",b=~"re"}`, `{__name__=~"re"}`),
  // read the way dashboard/selectors.py reads it, to tell which of a page's selectors
  // a series id (from history or the stream) belongs to. The server decides what it
  // sends; this only sorts what arrived. null when the text does not parse.
  const NAME_START = /[a-zA-Z_:]/;
  const NAME_CHAR = /[a-zA-Z0-9_:]/;
  const OPERATORS = ["=~", "!~", "!=", "="];

  function parseSelector(text) {
    let i = 0;
    const skip = () => {
      while (i < text.length && /\s/.test(text[i])) i += 1;
    };
    const word = (start) => {
      if (i >= text.length || !start.test(text[i])) return null;
      const from = i;
      i += 1;
      while (i < text.length && NAME_CHAR.test(text[i])) i += 1;
      return text.slice(from, i);
    };
    const matchers = [];
    skip();
    const name = word(NAME_START);
    if (name !== null) matchers.push(["__name__", "=", name]);
    skip();
    if (text[i] === "{") {
      i += 1;
      skip();
      while (text[i] !== "}") {
        const label = word(/[a-zA-Z_]/);
        if (label === null) return null;
        skip();
        const op = OPERATORS.find((candidate) => text.startsWith(candidate, i));
        if (!op) return null;
        i += op.length;
        skip();
        const quote = text[i];
        if (quote !== '"' && quote !== "'" && quote !== "`") return null;
        i += 1;
        let value = "";
        while (i < text.length && text[i] !== quote) {
          if (text[i] === "\\" && quote !== "`" && i + 1 < text.length) {
            i += 1;
            value += { n: "\n", t: "\t", r: "\r" }[text[i]] || text[i];
          } else {
            value += text[i];
          }
          i += 1;
        }
        if (text[i] !== quote) return null;
        i += 1;
        let matcher = [label, op, value];
        if (op === "=~" || op === "!~") {
          try {
            // Anchored, and `.` takes newlines too, as the server's RE2 reads it.
            matcher = [label, op, new RegExp("^(?:" + value + ")$", "s")];
          } catch (err) {
            return null;
          }
        }
        matchers.push(matcher);
        skip();
        if (text[i] === ",") {
          i += 1;
          skip();
        } else if (text[i] !== "}") {
          return null;
        }
      }
      i += 1;
      skip();
    }
    return i === text.length && matchers.length ? matchers : null;
  }

  // Whether the parsed selector takes the series `id`; a label it lacks is "".
  function selects(matchers, id) {
    const labels = labelsOf(id);
    const name = nameOf(id);
    return matchers.every(([label, op, value]) => {
      const actual = label === "__name__" ? name : labels[label] || "";
      if (op === "=") return actual === value;
      if (op === "!=") return actual !== value;
      if (op === "=~") return value.test(actual);
      return !value.test(actual);
    });
  }

  ld.series = { formatId, nameOf, labelsOf, frameId, labelText, commonLabels, compareIds, parseSelector, selects };
})();
