/* meterbridge dashboard: live overview (server-sent events), plots (uPlot), energy bars, CSV links.
   Pages are complete without this script; it adds live values and plots. State for tests and debugging
   is kept on window.meterbridge. */
(function () {
  "use strict";

  var MB = (window.meterbridge = { charts: {}, series: {}, energy: {}, live: { events: 0 } });

  function iso(ms) {
    if (ms === null || ms === undefined) return "never";
    return new Date(ms).toISOString().replace(".000Z", "Z");
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) {
        return r.json().then(
          function (b) { throw new Error(b.error || r.status + " " + r.statusText); },
          function () { throw new Error(r.status + " " + r.statusText); }
        );
      }
      return r.json();
    });
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var a = Math.abs(v);
    if (digits === undefined) digits = a >= 1000 ? 1 : a >= 10 ? 2 : 3;
    return v.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  /* ------------------------------------------------------------------ overview: live rows */

  function renderRow(tr, m) {
    var cells = tr.children;
    var values = tr.querySelector("dl.values");
    if (values) {
      var old = {};
      values.querySelectorAll("div[data-key]").forEach(function (d) {
        old[d.getAttribute("data-key")] = d.querySelector(".v").textContent;
      });
      values.textContent = "";
      m.values.forEach(function (v) {
        var div = el("div", { "data-key": v.key });
        div.appendChild(el("dt", null, v.name));
        var dd = el("dd");
        dd.appendChild(el("span", { class: "v" }, v.text));
        if (v.unit) { dd.appendChild(document.createTextNode(" ")); dd.appendChild(el("span", { class: "u" }, v.unit)); }
        div.appendChild(dd);
        if (old[v.key] !== undefined && old[v.key] !== v.text) div.classList.add("flash");
        values.appendChild(div);
      });
      var more = tr.querySelector("p.more");
      if (!more) {
        more = el("p", { class: "more" });
        more.appendChild(el("a", { href: "/meters/" + encodeURIComponent(m.id) }));
        values.parentNode.appendChild(more);
      }
      var n = m.more_values || 0;
      more.hidden = n === 0;
      more.querySelector("a").textContent = n + " more value" + (n === 1 ? "" : "s") + " on the meter page";
    }
    var seen = tr.querySelector(".seen");
    if (seen) {
      seen.textContent = "";
      if (m.last_seen) seen.appendChild(el("time", { datetime: iso(m.last_seen) }, iso(m.last_seen)));
      else seen.textContent = "never";
    }
    var state = tr.querySelector(".state-cell");
    if (state) {
      state.textContent = "";
      state.appendChild(el("span", { class: "state state-" + m.state }, m.state));
      state.appendChild(document.createTextNode(" "));
      state.appendChild(el("span", { class: "detail" }, m.state_detail));
    }
    return cells;
  }

  function newRow(m) {
    var tr = el("tr", { "data-meter": m.id });
    var th = el("th", { scope: "row" });
    th.appendChild(el("a", { href: "/meters/" + encodeURIComponent(m.id) }, m.name));
    tr.appendChild(th);
    tr.appendChild(el("td", { "data-label": "Kind" }, (m.kind || "–") + (m.protocol ? " (" + m.protocol + ")" : "")));
    var td = el("td", { "data-label": "Values" });
    td.appendChild(el("dl", { class: "values" }));
    tr.appendChild(td);
    tr.appendChild(el("td", { "data-label": "Last seen", class: "seen" }));
    tr.appendChild(el("td", { "data-label": "State", class: "state-cell" }));
    return tr;
  }

  function initOverview() {
    var status = document.getElementById("live-status");
    if (!window.EventSource) { status.textContent = "Live updates: not supported by this browser."; return; }
    var source = new EventSource("/api/stream");
    MB.live.source = source;
    source.onopen = function () { status.textContent = "Live updates: connected."; };
    source.onerror = function () { status.textContent = "Live updates: reconnecting…"; };
    source.addEventListener("meter", function (e) {
      var m = JSON.parse(e.data);
      MB.live.events += 1;
      MB.live.last = m;
      var table = document.getElementById("meters");
      if (!table) { location.reload(); return; }
      var tr = table.querySelector('tr[data-meter="' + CSS.escape(m.id) + '"]');
      if (!tr) { tr = newRow(m); table.tBodies[0].appendChild(tr); }
      renderRow(tr, m);
    });
  }

  /* ------------------------------------------------------------------ meter page: plots */

  var PRESETS = { hour: 3600e3, day: 86400e3, week: 7 * 86400e3, month: 31 * 86400e3 };

  function chartWidth(node) {
    return Math.max(240, Math.floor(node.getBoundingClientRect().width || node.parentNode.clientWidth || 600));
  }

  function seriesQuery(cfg, key, range, points) {
    var q = "key=" + encodeURIComponent(key) + "&start=" + range.start + "&end=" + range.end + "&points=" + points;
    var flagged = document.getElementById("show-flagged");
    if (flagged && flagged.checked) q += "&flagged=1";
    return "/api/meters/" + encodeURIComponent(cfg.meter_id) + "/series?" + q;
  }

  function summarise(p, name, unit) {
    var n = p.t.length;
    if (!n) return name + ": no reading between " + iso(p.start) + " and " + iso(p.end) + ".";
    var lo = Math.min.apply(null, p.raw ? p.value : p.min);
    var hi = Math.max.apply(null, p.raw ? p.value : p.max);
    var sum = 0, cnt = 0;
    if (p.raw) { p.value.forEach(function (v) { sum += v; cnt += 1; }); }
    else { p.avg.forEach(function (v, i) { sum += v * p.count[i]; cnt += p.count[i]; }); }
    var u = unit ? " " + unit : "";
    return name + " from " + iso(p.start) + " to " + iso(p.end) + ": " +
      (p.raw ? n + " readings" : p.total + " readings in " + n + " intervals of " + Math.round(p.bucket_ms / 1000) + " s") +
      "; minimum " + fmt(lo) + u + ", average " + fmt(sum / cnt) + u + ", maximum " + fmt(hi) + u + ".";
  }

  function plotData(p) {
    var xs = p.t.map(function (t) { return t / 1000; });
    return p.raw ? [xs, p.value] : [xs, p.min, p.avg, p.max];
  }

  function plotOptions(p, width, unit, onZoom) {
    var series = [{}];
    var bands;
    if (p.raw) {
      series.push({ label: unit || "value", stroke: "#0b5cad", width: 2, points: { show: p.t.length < 200 } });
    } else {
      series.push({ label: "min", stroke: "#7aa3cc", width: 1 });
      series.push({ label: "avg", stroke: "#0b5cad", width: 2 });
      series.push({ label: "max", stroke: "#7aa3cc", width: 1 });
      bands = [{ series: [3, 1], fill: "rgba(11,92,173,0.12)" }];
    }
    var opts = {
      width: width, height: 220, series: series,
      scales: { x: { time: true } },
      axes: [{}, { size: 60, label: unit || undefined }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: { setSelect: [function (u) {
        if (u.select.width < 5) return;
        var a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        onZoom(Math.floor(a * 1000), Math.ceil(b * 1000));
      }] },
    };
    if (bands) opts.bands = bands;
    return opts;
  }

  function initMeter() {
    var cfg = JSON.parse(document.getElementById("page-config").textContent);
    var state = { preset: "day", start: 0, end: 0, zoomed: false };
    var status = document.getElementById("range-status");
    var reset = document.getElementById("zoom-reset");
    var presetButtons = document.querySelectorAll("[data-range]");

    function setPreset(name) {
      var now = Date.now();
      state.preset = name; state.end = now; state.start = now - PRESETS[name]; state.zoomed = false;
      presetButtons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-range") === name)); });
      reset.hidden = true;
      loadPlots();
    }

    function zoomTo(a, b) {
      state.start = a; state.end = b; state.zoomed = true; state.preset = null;
      presetButtons.forEach(function (btn) { btn.setAttribute("aria-pressed", "false"); });
      reset.hidden = false;
      loadPlots();
    }

    function loadPlots() {
      var range = { start: state.start, end: state.end };
      status.textContent = "Showing " + iso(range.start) + " to " + iso(range.end) + ".";
      document.getElementById("range-from").value = iso(range.start).slice(0, 16);
      document.getElementById("range-to").value = iso(range.end).slice(0, 16);
      var jobs = [];
      document.querySelectorAll("figure.plot").forEach(function (fig) {
        var key = fig.getAttribute("data-key");
        var unit = fig.getAttribute("data-unit");
        var name = fig.querySelector("figcaption strong").textContent;
        var chart = fig.querySelector(".chart");
        var summary = fig.querySelector(".summary");
        var points = Math.min(2000, Math.max(100, chartWidth(chart)));
        var url = seriesQuery(cfg, key, range, points);
        fig.querySelector("a.csv").href = url.replace("/series?", "/series.csv?");
        jobs.push(getJSON(url).then(function (p) {
          MB.series[key] = p;
          var old = MB.charts[key];
          if (old && old.__raw === p.raw) {
            old.setData(plotData(p));
          } else {
            if (old) old.destroy();
            chart.textContent = "";
            var u = new uPlot(plotOptions(p, chartWidth(chart), unit, zoomTo), plotData(p), chart);
            u.__raw = p.raw;
            MB.charts[key] = u;
          }
          summary.textContent = summarise(p, name, unit);
        }, function (err) { summary.textContent = name + ": could not load the data (" + err.message + ")."; }));
      });
      return Promise.all(jobs).then(function () { MB.ready = (MB.ready || 0) + 1; });
    }

    presetButtons.forEach(function (b) {
      b.addEventListener("click", function () { setPreset(b.getAttribute("data-range")); });
    });
    reset.addEventListener("click", function () { setPreset("day"); });
    document.getElementById("show-flagged").addEventListener("change", loadPlots);
    document.getElementById("custom-range").addEventListener("submit", function (e) {
      e.preventDefault();
      var a = Date.parse(document.getElementById("range-from").value + ":00Z");
      var b = Date.parse(document.getElementById("range-to").value + ":00Z");
      if (!(b > a)) { status.textContent = "The end of the range must be after its start."; return; }
      zoomTo(a, b);
    });
    window.addEventListener("resize", function () {
      Object.keys(MB.charts).forEach(function (k) {
        var u = MB.charts[k];
        u.setSize({ width: chartWidth(u.root.parentNode), height: u.height });
      });
    });
    setPreset("day");
    document.querySelectorAll("section.energy").forEach(function (sec) { loadEnergy(cfg, sec); });
  }

  /* ------------------------------------------------------------------ energy bars */

  var ENERGY_UNITS = { Wh: 1e-3, kWh: 1, MWh: 1e3 };

  function scaled(value, unit) {
    if (value === null || value === undefined) return null;
    return unit in ENERGY_UNITS ? value * ENERGY_UNITS[unit] : value;
  }

  function loadEnergy(cfg, sec) {
    var period = sec.getAttribute("data-period");
    var key = sec.getAttribute("data-key");
    var url = "/api/meters/" + encodeURIComponent(cfg.meter_id) + "/energy?period=" + period +
      (key ? "&key=" + encodeURIComponent(key) : "");
    var tbody = sec.querySelector("tbody");
    getJSON(url).then(function (e) {
      MB.energy[period] = e;
      var shown = e.unit in ENERGY_UNITS ? "kWh" : (e.unit || "");
      var head = sec.querySelector(".unit-head");
      if (head) head.textContent = "Consumption" + (shown ? " (" + shown + ")" : "");
      var split = "t1" in e.keys;
      tbody.textContent = "";
      var xs = [], t1 = [], tot = [];
      e.buckets.forEach(function (b) {
        var row = el("tr", { "data-label": b.label });
        row.appendChild(el("th", { scope: "row" }, b.label));
        var a = scaled(b.t1, e.unit), c = scaled(b.t2, e.unit), t = scaled(b.total, e.unit);
        if (split) {
          row.appendChild(el("td", { "data-role": "t1" }, a === null ? "–" : fmt(a, 3)));
          row.appendChild(el("td", { "data-role": "t2" }, c === null ? "–" : fmt(c, 3)));
        }
        row.appendChild(el("td", { "data-role": "total" }, t === null ? "–" : fmt(t, 3)));
        tbody.appendChild(row);
        xs.push(b.start / 1000); t1.push(a); tot.push(t);
      });
      if (!e.buckets.length) tbody.appendChild(el("tr")).appendChild(el("td", { colspan: "4" }, "No data."));
      var chart = sec.querySelector(".chart");
      chart.textContent = "";
      var bars = uPlot.paths.bars({ size: [0.7, 80], align: 1 });
      var last = e.buckets[e.buckets.length - 1];
      var lastWidth = last ? (last.end - last.start) / 1000 : 86400;
      var series = [{}, { label: split ? "T1 + T2 (kWh)" : "Total" + (shown ? " (" + shown + ")" : ""),
        fill: split ? "#f4a77a" : "#7aa3cc", stroke: split ? "#c2410c" : "#0b5cad", paths: bars,
        points: { show: false } }];
      var data = [xs, tot];
      if (split) {
        series.push({ label: "T1 (kWh)", fill: "#7aa3cc", stroke: "#0b5cad", paths: bars, points: { show: false } });
        data.push(t1);
      }
      var u = new uPlot({
        width: chartWidth(chart), height: 240, series: series,
        scales: {
          // each bar starts at its bucket's start: the scale ends with the last bucket's end
          x: { time: true, range: function (u, lo, hi) { return [lo, hi + lastWidth]; } },
          y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } },
        },
        axes: [{}, { size: 60, label: shown || undefined }],
      }, data, chart);
      MB.charts["energy-" + period] = u;
    }, function (err) {
      tbody.textContent = "";
      tbody.appendChild(el("tr")).appendChild(el("td", { colspan: "4" }, "Could not load: " + err.message));
    });
  }

  /* ------------------------------------------------------------------ start */

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.getAttribute("data-page");
    if (page === "overview") initOverview();
    else if (page === "meter" && window.uPlot) initMeter();
  });
})();
