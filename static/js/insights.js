// Re-grade overlays in the run page's findings panel: the run's own grader and another
// grader version, over the same kept answers, per step. Safe to load twice (htmx swaps).
(function () {
  "use strict";
  if (window.__insightsLoaded) return;
  window.__insightsLoaded = true;

  function draw(root) {
    if (typeof Plotly === "undefined") return;
    (root || document).querySelectorAll(".regrade-chart[data-curve]").forEach(function (el) {
      const data = document.getElementById(el.dataset.curve);
      if (!data || el.dataset.drawn) return;
      const curve = JSON.parse(data.textContent);
      const traces = [];
      [["original", "the run's grader", "#2f5bea"], ["regraded", el.dataset.label, "#c2410c"]].forEach(function (spec) {
        ["train", "valid"].forEach(function (split) {
          const s = (curve[spec[0]] || {})[split];
          if (!s || !s.x.length) return;
          traces.push({ x: s.x, y: s.y, name: spec[1] + (split === "valid" ? " (validation)" : ""), mode: "lines+markers",
                        line: { color: spec[2], dash: split === "valid" ? "dot" : "solid" }, marker: { size: 4 } });
        });
      });
      el.dataset.drawn = "1";
      Plotly.newPlot(el, traces, {
        height: 260, margin: { l: 48, r: 12, t: 28, b: 30 }, showlegend: true,
        legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
        xaxis: { title: { text: "step" } }, yaxis: { title: { text: "mean score" }, range: [0, 1.05] },
        font: { family: "system-ui, sans-serif", size: 12 },
      }, { displaylogo: false, responsive: true });
    });
  }
  function ready() { draw(document); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready); else ready();
  window.addEventListener("load", ready);
  document.body.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
})();
