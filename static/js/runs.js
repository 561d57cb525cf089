// Run page charts: drawn once from the json_script data, then extended in place.
// While the run is active, polls metrics.json?after=<last step> every POLL_MS and appends
// only the new points with Plotly.extendTraces (no redraw, no flicker). Stops when the
// endpoint reports the run is no longer active.
(function () {
  "use strict";
  const POLL_MS = 2000;
  const COLORS = ["#2f5bea", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c", "#5f3dc4"];
  let CRITERIA_NAMES = {};  // criterion key -> the name its author gave it (from the page's data)
  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

  function layout(extra) {
    return Object.assign({
      height: 260, margin: { l: 48, r: 12, t: 28, b: 40 }, showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
      xaxis: { zeroline: false, hoverformat: ".0f", title: { text: "step", standoff: 4, font: { size: 11 } } }, yaxis: { zeroline: false }, hovermode: "x unified",
      font: { family: "system-ui, sans-serif", size: 12 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    }, extra || {});
  }

  function rgba(hex, a) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
  }

  // A chart is a list of traces, each reading one series key of the metrics payload.
  function line(key, name, color, extra) {
    return Object.assign({ key, name, type: "scatter", mode: "lines", line: { color, width: 2 } }, extra || {});
  }

  function band(prefix, color, name) {  // lower edge (invisible), then upper edge filled down to it
    return [
      line(`${prefix}_lo`, "", color, { line: { width: 0, color }, showlegend: false, hoverinfo: "skip" }),
      line(`${prefix}_hi`, name, color,
        { line: { width: 0, color }, fill: "tonexty", fillcolor: rgba(color, 0.15), hoverinfo: "skip" }),
    ];
  }

  function chartSpecs(series) {
    const criteria = Object.keys(series).filter((k) => /^train\/grader\/.+_mean$/.test(k)).sort();
    const specs = {
      "chart-reward": [...band("train/reward", COLORS[0], "spread of answers"),
        line("train/reward_mean", "training", COLORS[0]),
        ...band("valid/reward", COLORS[1], "validation 95 % range"),
        line("valid/reward_mean", "validation", COLORS[1], { mode: "lines+markers", marker: { size: 6 } })],
      "chart-criteria": criteria.map((k, i) => {
        const key = k.slice("train/grader/".length, -"_mean".length);
        return line(k, CRITERIA_NAMES[key] || key, COLORS[i % COLORS.length]);
      }),
      "chart-kl": [line("train/kl", "drift (KL)", COLORS[2])],
      "chart-entropy": [line("train/entropy", "variety (entropy)", COLORS[3])],
      "chart-length": [line("train/completion_tokens_mean", "mean", COLORS[4]),
        line("train/completion_tokens_max", "longest", COLORS[5], { line: { color: COLORS[5], width: 1, dash: "dot" } })],
      "chart-time": [["sampling", "writing answers"], ["grading", "grading"], ["training", "updating the model"]].map(
        ([k, name], i) => line(`time/${k}`, name, COLORS[i + 5],
        { stackgroup: "time", line: { width: 1, color: COLORS[i + 5] } })),
    };
    return specs;
  }

  function tracesFor(spec, series) {
    return spec.map((t) => {
      const s = series[t.key] || { x: [], y: [] };
      const trace = Object.assign({}, t, { x: s.x.slice(), y: s.y.slice() });
      delete trace.key;
      return trace;
    });
  }

  const SCORE_CHARTS = new Set(["chart-reward", "chart-criteria"]);

  function drawAll(root, series, react) {
    const specs = chartSpecs(series);
    for (const [id, spec] of Object.entries(specs)) {
      const el = document.getElementById(id);
      if (!el) continue;
      el._specKeys = spec.map((t) => t.key);
      const points = Math.max(0, ...spec.map((t) => (series[t.key] ? series[t.key].x.length : 0)));
      const empty = points === 0;
      // scores live in [0, 1]: a fixed axis, so a band or a dip never rescales the chart
      const yaxis = SCORE_CHARTS.has(id) ? { zeroline: false, range: [-0.02, 1.02], fixedrange: true } : { zeroline: false };
      const extra = { yaxis };
      if (empty) {  // no axes and no grid before there is anything to draw
        extra.xaxis = { visible: false };
        extra.yaxis = { visible: false };
        extra.showlegend = false;
        extra.annotations = [{ text: el.dataset.emptyText || "appears after the first step", showarrow: false,
          xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#6b7280" } }];
      }
      const traces = tracesFor(spec, series);
      if (points < 2) traces.forEach((t) => { if (t.mode === "lines") t.mode = "lines+markers"; });  // one point: a dot
      (react ? Plotly.react : Plotly.newPlot)(el, traces, layout(extra), PLOT_CONFIG);
      el._empty = empty;
      el._sparse = points < 2;
    }
    root._series = series;
  }

  function mergeSeries(all, fresh) {
    for (const [key, s] of Object.entries(fresh)) {
      const into = all[key] || (all[key] = { x: [], y: [] });
      into.x.push(...s.x);
      into.y.push(...s.y);
    }
  }

  function extendAll(root, fresh) {
    const known = new Set();
    const specs = chartSpecs(root._series);
    for (const id of Object.keys(specs)) {
      const el = document.getElementById(id);
      if (el && el._specKeys) el._specKeys.forEach((k) => known.add(k));
    }
    mergeSeries(root._series, fresh);
    // A key no chart has a trace for yet (a criterion's first score, or any first point of
    // an empty chart): rebuild from the merged data, once.
    const novel = Object.keys(fresh).some((k) => !known.has(k) && Object.values(chartSpecs(root._series)).some((spec) => spec.some((t) => t.key === k)));
    // a chart that was empty or a single dot is drawn afresh (axes, lines instead of dots)
    const sparse = Object.keys(specs).some((id) => { const el = document.getElementById(id); return el && el._sparse; });
    if (novel || sparse) { drawAll(root, root._series, true); return; }
    for (const id of Object.keys(specs)) {
      const el = document.getElementById(id);
      if (!el || !el._specKeys) continue;
      const idx = [], xs = [], ys = [];
      el._specKeys.forEach((k, i) => {
        if (fresh[k] && fresh[k].x.length) { idx.push(i); xs.push(fresh[k].x); ys.push(fresh[k].y); }
      });
      if (!idx.length) continue;
      if (el._empty) { Plotly.relayout(el, { annotations: [] }); el._empty = false; }
      Plotly.extendTraces(el, { x: xs, y: ys }, idx);
    }
  }

  function updateProgress(data) {
    const bar = document.getElementById("run-progress");
    if (bar) bar.value = data.progress_percent;
    const step = document.getElementById("run-step");
    if (step) step.textContent = `step ${data.current_step} of ${data.total_steps || "?"} (${data.progress_percent}%)`;
  }

  function startRunPage() {
    const root = document.getElementById("run-charts");
    const dataEl = document.getElementById("run-chart-data");
    if (!root || !dataEl || typeof Plotly === "undefined") return;
    const initial = JSON.parse(dataEl.textContent);
    CRITERIA_NAMES = initial.criteria || {};
    drawAll(root, initial.series, false);
    let last = initial.last_step;
    root.dataset.lastStep = String(last);
    if (!initial.active) return;

    let busy = false;
    const timer = setInterval(async () => {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const url = new URL(initial.metrics_url, window.location.href);
        url.searchParams.set("after", String(last));
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.redirected && window.studioSession && window.studioSession.isLoginUrl(response.url)) {
          clearInterval(timer);  // the session ended: say so instead of failing silently
          window.studioSession.ended();
          return;
        }
        if (!response.ok) return;
        const data = await response.json();
        if (data.reset) drawAll(root, data.series, true);
        else extendAll(root, data.series);
        last = data.last_step;
        root.dataset.lastStep = String(last);
        updateProgress(data);
        if (!data.active) {
          clearInterval(timer);
          root.dataset.active = "0";
        }
      } catch (err) {
        // A network blip: try again at the next tick.
      } finally {
        busy = false;
      }
    }, POLL_MS);
  }

  function startComparePage() {
    const el = document.getElementById("compare-chart");
    const dataEl = document.getElementById("compare-data");
    if (!el || !dataEl || typeof Plotly === "undefined") return;
    const runs = JSON.parse(dataEl.textContent);
    const traces = [];
    runs.forEach((r, i) => {
      const color = COLORS[i % COLORS.length];
      traces.push({ type: "scatter", mode: "lines", name: `${r.name} training`, x: r.train.x, y: r.train.y, line: { color, width: 2 } });
      if (r.valid.x.length) {
        traces.push({ type: "scatter", mode: "lines+markers", name: `${r.name} validation`, x: r.valid.x, y: r.valid.y,
          line: { color, width: 1.5, dash: "dot" }, marker: { size: 4 } });
      }
    });
    Plotly.newPlot(el, traces, layout({ height: 380, yaxis: { title: { text: "score" }, range: [-0.02, 1.02] } }), PLOT_CONFIG);
  }

  function start() {
    startRunPage();
    startComparePage();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
