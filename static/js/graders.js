// Rubric builder and grader page helpers; every form also works without them.
(() => {
  // Insert a {{item.*}} chip at the cursor of its field's input.
  document.addEventListener("click", (evt) => {
    const chip = evt.target.closest && evt.target.closest("button.chip[data-insert]");
    if (chip) {
      const input = chip.closest(".field").querySelector("[data-chip-target]");
      if (!input) return;
      const text = chip.dataset.insert;
      const start = input.selectionStart ?? input.value.length;
      const end = input.selectionEnd ?? input.value.length;
      input.value = input.value.slice(0, start) + text + input.value.slice(end);
      input.focus();
      input.setSelectionRange(start + text.length, start + text.length);
      input.dispatchEvent(new Event("input", { bubbles: true }));
      return;
    }
    const remove = evt.target.closest && evt.target.closest("[data-remove-row]");
    if (remove) {
      evt.preventDefault();
      remove.closest(".criterion").remove();
      return;
    }
    const copy = evt.target.closest && evt.target.closest("[data-copy-target]");
    if (copy) {
      const text = document.getElementById(copy.dataset.copyTarget).textContent;
      const done = () => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy JSON"; }, 2000); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
      } else {
        fallbackCopy(text, done);
      }
    }
  });

  function fallbackCopy(text, done) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }

  // The reference check's histogram: data comes from a json_script element, never from markup.
  function drawHistograms(root) {
    root.querySelectorAll(".histogram[data-rewards-id]").forEach((div) => {
      const source = document.getElementById(div.dataset.rewardsId);
      if (!source || !window.Plotly) return;
      const rewards = JSON.parse(source.textContent);
      window.Plotly.newPlot(div, [{ type: "histogram", x: rewards, xbins: { start: 0, end: 1.0001, size: 0.05 },
        marker: { color: "#3b6fd8" } }], {
        height: 260, margin: { t: 10, r: 10, b: 40, l: 50 },
        xaxis: { title: { text: "score of the reference answer" }, range: [0, 1.05] },
        yaxis: { title: { text: "tasks" } }, bargap: 0.05,
      }, { displayModeBar: false, responsive: true });
    });
  }
  // The agreement report links here with ?criterion=<key>: bring that (highlighted) row into view.
  function focusCriterion() {
    const row = document.querySelector("#criteria .criterion.focused");
    if (!row) return;
    row.scrollIntoView({ block: "center" });
    const name = row.querySelector("input[type=text]");
    if (name) name.focus({ preventScroll: true });
  }
  document.addEventListener("DOMContentLoaded", focusCriterion);
  document.addEventListener("DOMContentLoaded", () => drawHistograms(document));
  document.addEventListener("htmx:afterSettle", (evt) => drawHistograms(evt.detail.elt || document));
})();
