// tally admin console: one card per metric, a trend and a breakdown for the chosen one.
// The URL holds the whole state, so a view can be shared and back/forward work. Every number comes
// from the metrics API (/v1) of the same origin: one request per card, one for the breakdown, one
// per filterable dimension for its values.
"use strict";

(function () {
  const PRESETS = ["today", "yesterday", "last_7_days", "last_30_days", "last_90_days", "this_month", "last_month", "custom"];
  const COMPARES = ["previous_period", "previous_year"];
  const INTERVALS = ["", "hour", "day", "week", "month"];
  // Zones offered besides the reporting zone and the browser's; the API serves whole-hour offsets only.
  const ZONES = ["UTC", "Asia/Seoul", "Asia/Tokyo", "Asia/Singapore", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo"];
  const STALE_AFTER_HOURS = 3; // the rollup runs hourly: three missed runs earn a warning
  const TOKEN_KEY = "tally-api-token";
  const PKCE_KEY = "tally-sign-in";
  const locale = navigator.language || "en-US";
  const $ = (id) => document.getElementById(id);

  let config = { sign_in: null }; // /console/config.json: how to sign in, when the server says
  let catalog = null; // {reporting_tz, metrics: [{name, title, description, unit, dimensions}]}
  let generation = 0; // answers for an older state are dropped
  let chart = null;
  let detailAnswer = null;
  let breakdownRows = [];
  let breakdownSort = { key: "current_total", desc: true };

  // ---- state <-> URL -------------------------------------------------------------------------

  function readState() {
    const q = new URLSearchParams(location.search);
    const filters = {};
    for (const [k, v] of q) if (k.startsWith("f.") && v !== "") filters[k.slice(2)] = v;
    const pick = (value, allowed, fallback) => (allowed.includes(value) ? value : fallback);
    return {
      range: pick(q.get("range"), PRESETS, "last_7_days"),
      from: q.get("from") || "",
      to: q.get("to") || "",
      compare: pick(q.get("compare"), COMPARES, "previous_period"),
      tz: q.get("tz") || "",
      interval: pick(q.get("interval") || "", INTERVALS, ""),
      metric: q.get("metric") || "",
      group_by: q.get("group_by") || "",
      filters,
    };
  }

  function stateQuery(s) {
    const q = new URLSearchParams();
    q.set("range", s.range);
    if (s.range === "custom") {
      q.set("from", s.from);
      q.set("to", s.to);
    }
    if (s.compare !== "previous_period") q.set("compare", s.compare);
    if (s.tz) q.set("tz", s.tz);
    if (s.interval) q.set("interval", s.interval);
    if (s.metric) q.set("metric", s.metric);
    if (s.group_by) q.set("group_by", s.group_by);
    for (const k of Object.keys(s.filters).sort()) q.set("f." + k, s.filters[k]);
    return "?" + q.toString();
  }

  function go(change) {
    const next = Object.assign(readState(), change);
    history.pushState(null, "", stateQuery(next));
    render();
  }

  // ---- dates in a zone -----------------------------------------------------------------------

  function todayIn(tz) {
    // en-CA writes dates as YYYY-MM-DD.
    return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  }
  function addDays(ymd, n) {
    const d = new Date(ymd + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }
  function addMonths(ymd, n) {
    const d = new Date(ymd.slice(0, 8) + "01T00:00:00Z");
    d.setUTCMonth(d.getUTCMonth() + n);
    return d.toISOString().slice(0, 10);
  }

  /** The API range [from, to) of a state, as dates in its zone; null with a message when invalid. */
  function apiRange(s, tz) {
    const today = todayIn(tz);
    const month = today.slice(0, 8) + "01";
    switch (s.range) {
      case "today": return { from: today, to: addDays(today, 1) };
      case "yesterday": return { from: addDays(today, -1), to: today };
      // Whole days before today: the comparison is never of a half day.
      case "last_7_days": return { from: addDays(today, -7), to: today };
      case "last_30_days": return { from: addDays(today, -30), to: today };
      case "last_90_days": return { from: addDays(today, -90), to: today };
      case "this_month": return { from: month, to: addMonths(month, 1) };
      case "last_month": return { from: addMonths(month, -1), to: month };
      default: {
        const ok = /^\d{4}-\d{2}-\d{2}$/;
        if (!ok.test(s.from) || !ok.test(s.to)) return { error: "Choose both dates of the custom range." };
        if (s.to < s.from) return { error: "The custom range ends before it starts." };
        return { from: s.from, to: addDays(s.to, 1) };
      }
    }
  }

  /** Whether the API can answer in this zone now (whole-hour offsets only). */
  function servable(tz) {
    try {
      const name = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "longOffset" })
        .formatToParts(new Date()).find((p) => p.type === "timeZoneName").value;
      return !/:(?!00)\d\d$/.test(name);
    } catch (e) {
      return false;
    }
  }

  // ---- formatting ----------------------------------------------------------------------------

  function formatNumber(value, unit) {
    // A ratio over a zero denominator has no value (null), which is not zero.
    if (value === null || value === undefined) return "–";
    const money = unit === "currency";
    return new Intl.NumberFormat(locale, {
      minimumFractionDigits: money ? 2 : 0,
      maximumFractionDigits: 2,
    }).format(value);
  }
  function unitLabel(unit) {
    return unit === "currency" ? "" : unit;
  }
  function formatRate(rate) {
    return new Intl.NumberFormat(locale, { maximumFractionDigits: 1, signDisplay: "exceptZero" }).format(rate) + "%";
  }

  const dayFmt = (tz, opts) => new Intl.DateTimeFormat(locale, Object.assign({ timeZone: tz }, opts));

  /** A range [from, to) in words: "20–23 Aug", "28 Jul – 3 Aug 2025", "24 Nov, 00:00–05:00". */
  function rangeWords(range, tz) {
    const from = new Date(range.from);
    const to = new Date(range.to);
    const thisYear = new Date().getUTCFullYear();
    const midnight = (d) => dayFmt(tz, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(d) === "00:00";
    const withYear = (d) => dayFmt(tz, { year: "numeric" }).format(d) !== String(thisYear);
    if (midnight(from) && midnight(to)) {
      const last = new Date(to.getTime() - 3600e3); // inside the range's last day
      const opts = { day: "numeric", month: "short" };
      if (withYear(from) || withYear(last)) opts.year = "numeric";
      const f = dayFmt(tz, opts);
      if (f.format(from) === f.format(last)) return f.format(from);
      return f.formatRange ? f.formatRange(from, last) : f.format(from) + " – " + f.format(last);
    }
    const opts = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (withYear(from)) opts.year = "numeric";
    const f = dayFmt(tz, opts);
    return f.formatRange ? f.formatRange(from, to) : f.format(from) + " – " + f.format(to);
  }

  // ---- the API -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, params) {
    const url = path + (params ? "?" + params.toString() : "");
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    let response;
    try {
      response = await fetch(url, { headers });
    } catch (e) {
      throw new ApiError(0, "network", "The metrics API did not answer (" + e.message + ").");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      // an answer that is not JSON is reported below by its status
    }
    if (!response.ok) {
      const err = body && body.error;
      throw new ApiError(response.status, err ? err.code : "http_" + response.status,
        err ? err.message : "The metrics API answered " + response.status + ".");
    }
    return body;
  }

  function queryParams(s, range, tz, metric, extra) {
    const p = new URLSearchParams({ from: range.from, to: range.to, tz });
    if (s.interval) p.set("interval", s.interval);
    if (s.compare !== "previous_period") p.set("compare", s.compare);
    for (const [k, v] of Object.entries(s.filters)) if (metric.dimensions.includes(k)) p.set(k, v);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  }

  // ---- rendering -----------------------------------------------------------------------------

  function showMessage(text) {
    const m = $("message");
    m.textContent = text || "";
    m.hidden = !text;
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function syncControls(s, tz) {
    $("preset").value = s.range;
    $("custom-from").hidden = $("custom-to").hidden = s.range !== "custom";
    $("from").value = s.from;
    $("to").value = s.to;
    $("compare").value = s.compare;
    $("interval").value = s.interval;
    const zones = [catalog.reporting_tz];
    const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (browser && servable(browser)) zones.push(browser);
    for (const z of ZONES.concat([tz])) if (!zones.includes(z) && servable(z)) zones.push(z);
    const select = $("tz");
    select.replaceChildren(...zones.map((z, i) => el("option", { value: z, text: z + (i === 0 ? " (reporting zone)" : z === browser ? " (this browser)" : "") })));
    select.value = tz;
  }

  function dimensionsOfCatalog() {
    const dims = [];
    for (const m of catalog.metrics) for (const d of m.dimensions) if (!dims.includes(d)) dims.push(d);
    return dims;
  }

  function renderFilters(s) {
    const box = $("filters");
    box.replaceChildren(...dimensionsOfCatalog().map((d) => {
      const id = "filter-" + d;
      const select = el("select", { id, "data-dimension": d },
        el("option", { value: "", text: "All" }));
      if (s.filters[d]) select.append(el("option", { value: s.filters[d], text: s.filters[d] }));
      select.value = s.filters[d] || "";
      select.addEventListener("change", () => {
        const filters = Object.assign({}, readState().filters);
        if (select.value) filters[d] = select.value; else delete filters[d];
        go({ filters });
      });
      return el("div", { class: "field" }, el("label", { for: id, text: "Filter: " + d.replace(/_/g, " ") }), select);
    }));
  }

  /** Fills each filter's choices with the values seen in the range, largest first. */
  async function loadFilterValues(s, range, tz, gen) {
    for (const d of dimensionsOfCatalog()) {
      const metric = catalog.metrics.find((m) => m.name === s.metric && m.dimensions.includes(d)) ||
        catalog.metrics.find((m) => m.dimensions.includes(d));
      const others = Object.assign({}, s.filters);
      delete others[d]; // the choices of a filter ignore its own value
      const params = queryParams(Object.assign({}, s, { filters: others, compare: "previous_period", interval: "" }), range, tz, metric, { limit: "100" });
      params.delete("interval");
      let answer;
      try {
        answer = await api("/v1/metrics/" + encodeURIComponent(metric.name) + "/dimensions/" + encodeURIComponent(d), params);
      } catch (e) {
        continue; // the filter keeps its current choice; the cards report errors
      }
      if (gen !== generation) return;
      const select = $("filter-" + d);
      if (!select) continue;
      const current = select.value;
      const options = [el("option", { value: "", text: "All" })];
      for (const v of answer.values) {
        if (v.value === null) continue;
        options.push(el("option", { value: v.value, text: v.value + " (" + formatNumber(v.total, metric.unit) + ")" }));
      }
      if (current && !answer.values.some((v) => v.value === current)) options.push(el("option", { value: current, text: current }));
      select.replaceChildren(...options);
      select.value = current;
    }
  }

  function cardLink(s, name) {
    return stateQuery(Object.assign({}, s, { metric: name, group_by: s.metric === name ? s.group_by : "" }));
  }

  function cardFor(metric, s) {
    const link = el("a", { href: cardLink(s, metric.name), text: metric.title || metric.name });
    link.addEventListener("click", (ev) => {
      if (ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
      ev.preventDefault();
      go({ metric: metric.name, group_by: readState().metric === metric.name ? readState().group_by : "" });
    });
    return el("li", { class: "card", "data-metric": metric.name, "aria-current": s.metric === metric.name ? "true" : null },
      el("h3", {}, link),
      el("p", { class: "note", text: "Loading…" }));
  }

  function fillCard(li, metric, a) {
    const approx = a.approximate
      ? el("abbr", { class: "approx", title: "Approximate: distinct counts over large sets are estimated", text: "≈" })
      : null;
    const rate = a.change_rate;
    const direction = rate === null ? "none" : rate > 0 ? "up" : rate < 0 ? "down" : "flat";
    const arrow = { up: "▲", down: "▼", flat: "■", none: "" }[direction];
    const words = { up: "up", down: "down", flat: "unchanged", none: "" }[direction];
    const change = el("p", { class: "change " + direction, "data-direction": direction },
      rate === null
        ? el("span", { class: "rate", "data-field": "change_rate", text: "no comparison value" })
        : el("span", { class: "rate" },
          el("span", { "aria-hidden": "true", text: arrow + " " }),
          el("span", { class: "visually-hidden", text: words + " " }),
          el("span", { "data-field": "change_rate", text: formatRate(rate) })),
      " vs ", el("span", { "data-field": "previous_total", text: formatNumber(a.previous_total, metric.unit) }));
    const empty = Number(a.current_total) === 0 && a.series.every((p) => Number(p.value) === 0)
      ? el("p", { class: "note", text: "No events in this range." }) : null;
    li.replaceChildren(...[li.firstChild,
      el("p", { class: "value" }, approx,
        el("span", { "data-field": "current_total", text: formatNumber(a.current_total, metric.unit) }),
        " ", el("span", { class: "unit", text: unitLabel(metric.unit) })),
      change, empty,
      el("dl", {},
        el("dt", { text: "All time" }),
        el("dd", { "data-field": "total", text: formatNumber(a.total, metric.unit) }))].filter(Boolean));
    if (metric.description) li.title = metric.description;
  }

  function cardNote(li, text) {
    li.replaceChildren(li.firstChild, el("p", { class: "note", text }));
  }

  function renderAsOf(asOf, tz) {
    const p = $("as-of");
    if (!asOf) {
      p.textContent = "No data rolled up yet.";
      p.classList.add("stale");
      return;
    }
    const t = new Date(asOf);
    const words = dayFmt(tz, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(t);
    const hours = Math.floor((Date.now() - t.getTime()) / 3600e3);
    const stale = hours >= STALE_AFTER_HOURS;
    p.textContent = "Data up to " + words + " (" + tz + ")" +
      (stale ? " — " + hours + " hours old: the rollup may not be running." : "");
    p.classList.toggle("stale", stale);
  }

  function renderDetail(s, metric, a, tz) {
    detailAnswer = { metric, a, tz };
    $("detail").hidden = false;
    $("detail-title").textContent = (metric.title || metric.name) + ": trend";
    const words = rangeWords(a.range, tz) + " vs " + rangeWords(a.previous_range, tz);
    $("chart").setAttribute("aria-label", "Chart of " + (metric.title || metric.name) + " per " + a.interval + ", " + words +
      (a.clipped ? "; the last interval is still open" : "") + ". The same values are in the table below.");
    drawChart(a, tz);
    const body = $("series").tBodies[0];
    const n = Math.max(a.series.length, a.previous_series.length);
    const rows = [];
    for (let i = 0; i < n; i++) {
      const c = a.series[i];
      const p = a.previous_series[i];
      rows.push(el("tr", {},
        el("td", { text: c ? pointLabel(c.start, a.interval, tz) : "" }),
        el("td", { text: c ? formatNumber(c.value, metric.unit) : "" }),
        el("td", { text: p ? pointLabel(p.start, a.interval, tz) : "" }),
        el("td", { text: p ? formatNumber(p.value, metric.unit) : "" })));
    }
    body.replaceChildren(...rows);
    const groupBy = $("group-by");
    groupBy.replaceChildren(el("option", { value: "", text: "Nothing" }),
      ...metric.dimensions.map((d) => el("option", { value: d, text: d.replace(/_/g, " ") })));
    groupBy.value = metric.dimensions.includes(s.group_by) ? s.group_by : "";
  }

  function pointLabel(start, interval, tz) {
    const opts = interval === "hour"
      ? { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
      : interval === "month" ? { month: "short", year: "numeric" } : { day: "numeric", month: "short", year: "numeric" };
    return dayFmt(tz, opts).format(new Date(start));
  }

  function drawChart(a, tz) {
    const box = $("chart");
    if (chart) { chart.destroy(); chart = null; }
    if (typeof uPlot === "undefined") { box.textContent = "The chart library did not load."; return; }
    const xs = a.series.map((p) => Date.parse(p.start) / 1000);
    const cur = a.series.map((p) => Number(p.value));
    const prev = xs.map((_, i) => (a.previous_series[i] ? Number(a.previous_series[i].value) : null));
    // The last interval of a clipped range is still open (only part of it has happened): draw it dashed.
    const open = a.clipped && a.interval !== "hour" && cur.length > 0;
    const solid = cur.slice();
    const partial = cur.map(() => null);
    if (open) {
      partial[cur.length - 1] = cur[cur.length - 1];
      if (cur.length > 1) { partial[cur.length - 2] = cur[cur.length - 2]; solid[cur.length - 1] = null; }
    }
    const label = rangeWords(a.range, tz);
    const width = Math.max(280, box.clientWidth || 600);
    const series = [{}, { label, stroke: "#1f56b3", width: 2, points: { show: xs.length < 60 } }];
    const data = [xs, solid];
    if (open) {
      series.push({ label: "still open", stroke: "#1f56b3", width: 2, dash: [6, 5], points: { show: true } });
      data.push(partial);
    }
    series.push({ label: "vs " + rangeWords(a.previous_range, tz), stroke: "#6b7480", width: 1.5 });
    data.push(prev);
    chart = new uPlot({
      width, height: 280,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      scales: { x: { time: true } },
      series,
      axes: [{}, { size: 70, values: (u, vals) => vals.map((v) => formatNumber(v, a.unit)) }],
    }, data, box);
  }

  async function renderBreakdown(s, metric, range, tz, gen) {
    const box = $("breakdown-box");
    if (!s.group_by || !metric.dimensions.includes(s.group_by)) { box.hidden = true; breakdownRows = []; return; }
    let a;
    try {
      a = await api("/v1/metrics/" + encodeURIComponent(metric.name), queryParams(s, range, tz, metric, { group_by: s.group_by, limit: "100" }));
    } catch (e) {
      if (gen === generation) showMessage(e.message);
      return;
    }
    if (gen !== generation) return;
    breakdownRows = a.groups || [];
    $("breakdown-caption").textContent = (metric.title || metric.name) + " by " + s.group_by.replace(/_/g, " ") + ", " +
      rangeWords(a.range, tz) + " vs " + rangeWords(a.previous_range, tz);
    box.hidden = false;
    drawBreakdown(metric);
  }

  function drawBreakdown(metric) {
    const cols = [
      { key: "group", label: detailAnswer ? readState().group_by.replace(/_/g, " ") : "group" },
      { key: "current_total", label: "This range" },
      { key: "previous_total", label: "Comparison" },
      { key: "change_rate", label: "Change" },
    ];
    const { key, desc } = breakdownSort;
    const rows = breakdownRows.slice().sort((x, y) => {
      const a = x[key], b = y[key];
      if (a === b) return 0;
      if (a === null) return 1; // missing values last either way
      if (b === null) return -1;
      const c = key === "group" ? String(a).localeCompare(String(b), locale) : Number(a) - Number(b);
      return desc ? -c : c;
    });
    const head = $("breakdown").tHead.rows[0];
    head.replaceChildren(...cols.map((c) => {
      const sorted = c.key === key;
      const button = el("button", { type: "button", text: c.label + (sorted ? (desc ? " ↓" : " ↑") : "") });
      button.addEventListener("click", () => {
        breakdownSort = { key: c.key, desc: sorted ? !desc : c.key !== "group" };
        drawBreakdown(metric);
        head.querySelector("[data-key='" + c.key + "'] button").focus();
      });
      return el("th", { scope: "col", "data-key": c.key, "aria-sort": sorted ? (desc ? "descending" : "ascending") : "none" }, button);
    }));
    $("breakdown").tBodies[0].replaceChildren(...rows.map((g) => el("tr", {},
      el("th", { scope: "row", text: g.group === null ? "(none)" : g.group }),
      el("td", { text: (g.approximate ? "≈ " : "") + formatNumber(g.current_total, metric.unit) }),
      el("td", { text: formatNumber(g.previous_total, metric.unit) }),
      el("td", { text: g.change_rate === null ? "–" : formatRate(g.change_rate) }))));
  }

  function download(name, rows) {
    const quote = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : String(v));
    const text = rows.map((r) => r.map(quote).join(",")).join("\n") + "\n";
    const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: name });
    document.body.append(a);
    a.click();
    a.remove();
  }

  async function render() {
    const gen = ++generation;
    const s = readState();
    showMessage("");
    if (!catalog) {
      try {
        catalog = await api("/v1/metrics");
      } catch (e) {
        if (gen !== generation) return;
        if (e.status === 401) return askToken(e.message);
        $("cards").setAttribute("aria-busy", "false");
        return showMessage(e.message);
      }
    }
    $("token-form").hidden = true;
    $("sign-in").hidden = true;
    $("numbers").hidden = false;
    const tz = s.tz || catalog.reporting_tz;
    syncControls(s, tz);
    renderFilters(s);
    const range = apiRange(s, tz);
    const cards = $("cards");
    if (catalog.metrics.length === 0) {
      cards.replaceChildren(el("li", { class: "note", text: "The catalog has no metrics yet: the data team adds them in sql/." }));
      cards.setAttribute("aria-busy", "false");
      $("detail").hidden = true;
      return;
    }
    if (range.error) {
      showMessage(range.error);
      return;
    }
    const focus = catalog.metrics.find((m) => m.name === s.metric) || catalog.metrics[0];
    s.metric = focus.name;
    cards.setAttribute("aria-busy", "true");
    const items = catalog.metrics.map((m) => cardFor(m, s));
    cards.replaceChildren(...items);
    $("range-label").textContent = "";
    let asOf = null;
    let firstError = null;
    await Promise.all(catalog.metrics.map(async (m, i) => {
      const unfiltered = Object.keys(s.filters).filter((d) => !m.dimensions.includes(d));
      if (unfiltered.length) return cardNote(items[i], "Not split by " + unfiltered.join(", ") + ": clear that filter to see it.");
      let a;
      try {
        a = await api("/v1/metrics/" + encodeURIComponent(m.name), queryParams(s, range, tz, m));
      } catch (e) {
        if (gen !== generation) return;
        if (e.status === 401) { catalog = null; return askToken(e.message); }
        firstError = firstError || e;
        return cardNote(items[i], "Error: " + e.message);
      }
      if (gen !== generation) return;
      fillCard(items[i], m, a);
      if (a.as_of && (!asOf || a.as_of > asOf)) asOf = a.as_of;
      if (m === focus) {
        $("range-label").textContent = rangeWords(a.range, tz) + (a.clipped ? " so far" : "") + " vs " + rangeWords(a.previous_range, tz) +
          (s.compare === "previous_year" ? " (a year earlier)" : "") + " · " + tz;
        renderDetail(s, m, a, tz);
      }
    }));
    if (gen !== generation) return;
    if (firstError) showMessage(firstError.message);
    renderAsOf(asOf, tz);
    cards.setAttribute("aria-busy", "false");
    document.body.dataset.ready = String(gen);
    performance.mark("tally:cards-drawn");
    await renderBreakdown(s, focus, range, tz, gen);
    await loadFilterValues(s, range, tz, gen);
    if (gen === generation) document.body.dataset.settled = String(gen);
  }

  function askToken(message) {
    $("numbers").hidden = true;
    $("detail").hidden = true;
    if (sessionStorage.getItem(TOKEN_KEY)) showMessage(message);
    if (config.sign_in) {
      $("sign-in").hidden = false;
      $("sign-in-button").focus();
    } else {
      $("token-form").hidden = false;
      $("token").focus();
    }
  }

  // ---- sign-in: authorization code with PKCE (RFC 7636) --------------------------------------

  function base64url(bytes) {
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function signIn() {
    const s = config.sign_in;
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
    const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
    sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, back: location.search }));
    const url = new URL(s.authorize_url);
    url.search = new URLSearchParams({
      response_type: "code", client_id: s.client_id, redirect_uri: location.origin + "/", scope: s.scope,
      state, code_challenge: base64url(new Uint8Array(digest)), code_challenge_method: "S256",
    }).toString();
    location.assign(url.toString());
  }

  /** Back from the provider with ?code=&state= (or ?error=): trades the code for a token; a failure's message. */
  async function finishSignIn() {
    const q = new URLSearchParams(location.search);
    if (!q.has("state") || !(q.has("code") || q.has("error"))) return;
    const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
    sessionStorage.removeItem(PKCE_KEY);
    history.replaceState(null, "", (saved && saved.back) || "/");
    if (q.has("error")) return "Sign-in failed: " + (q.get("error_description") || q.get("error"));
    if (!saved || saved.state !== q.get("state") || !config.sign_in) {
      return "Sign-in failed: the answer does not belong to this tab's request. Sign in again.";
    }
    let body;
    try {
      const response = await fetch(config.sign_in.token_url, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "authorization_code", code: q.get("code"), redirect_uri: location.origin + "/",
          client_id: config.sign_in.client_id, code_verifier: saved.verifier,
        }),
      });
      body = await response.json();
      if (!response.ok) throw new Error(body.error_description || body.error || "status " + response.status);
    } catch (e) {
      return "Sign-in failed: " + e.message;
    }
    // The access token is meant for APIs; API Gateway's JWT authorizer accepts either.
    const token = body.access_token || body.id_token;
    if (!token) return "Sign-in failed: the provider answered without a token.";
    sessionStorage.setItem(TOKEN_KEY, token);
    return null;
  }

  // ---- wiring --------------------------------------------------------------------------------

  $("preset").addEventListener("change", (e) => {
    const s = readState();
    if (e.target.value === "custom") {
      // Start the custom range from what was shown.
      const r = apiRange(s, s.tz || catalog.reporting_tz);
      go({ range: "custom", from: r.from || "", to: r.to ? addDays(r.to, -1) : "" });
    } else go({ range: e.target.value });
  });
  for (const id of ["from", "to"]) $(id).addEventListener("change", (e) => go({ [id]: e.target.value }));
  $("compare").addEventListener("change", (e) => go({ compare: e.target.value }));
  $("tz").addEventListener("change", (e) => go({ tz: e.target.value === catalog.reporting_tz ? "" : e.target.value }));
  $("interval").addEventListener("change", (e) => go({ interval: e.target.value }));
  $("group-by").addEventListener("change", (e) => go({ group_by: e.target.value }));
  $("controls").addEventListener("submit", (e) => e.preventDefault());
  $("sign-in-button").addEventListener("click", () => signIn());
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    render();
  });
  $("series-csv").addEventListener("click", () => {
    if (!detailAnswer) return;
    const { metric, a } = detailAnswer;
    const rows = [["start", "value", "comparison_start", "comparison_value"]];
    const n = Math.max(a.series.length, a.previous_series.length);
    for (let i = 0; i < n; i++) {
      const c = a.series[i] || {};
      const p = a.previous_series[i] || {};
      rows.push([c.start, c.value, p.start, p.value]);
    }
    download(metric.name + "-trend.csv", rows);
  });
  $("breakdown-csv").addEventListener("click", () => {
    const s = readState();
    const rows = [[s.group_by, "current_total", "previous_total", "change_rate"]];
    for (const g of breakdownRows) rows.push([g.group, g.current_total, g.previous_total, g.change_rate]);
    download(s.metric + "-by-" + s.group_by + ".csv", rows);
  });
  window.addEventListener("popstate", () => render());
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (chart) chart.setSize({ width: Math.max(280, $("chart").clientWidth), height: 280 }); }, 150);
  });
  (async () => {
    try {
      const r = await fetch("/console/config.json");
      if (r.ok) config = await r.json();
    } catch (e) {
      // no configuration: the console asks for a token when the API wants one
    }
    const failure = await finishSignIn();
    await render();
    if (failure) showMessage(failure);
  })();
})();
