// The playground: stream each chosen model's answer (server-sent events read with fetch),
// then have the answer graded when a task and a grader are picked. Text goes in with
// textContent: the model's output is never parsed as HTML.
(function () {
  "use strict";

  async function streamInto(form, slot, model) {
    const out = slot.querySelector(".streaming");
    const meta = slot.querySelector(".pg-meta");
    const grade = slot.querySelector(".pg-grade");
    slot.querySelector(".pg-title").textContent = form.querySelector(`option[value="${CSS.escape(model)}"]`).textContent;
    out.textContent = "";
    meta.textContent = "answering…";
    grade.textContent = "";
    slot.dataset.state = "streaming";
    const data = new FormData(form);
    data.set("model", model);
    const response = await fetch(form.getAttribute("data-stream-url"), {
      method: "POST", body: data, headers: {"X-CSRFToken": data.get("csrfmiddlewaretoken")},
    });
    if (!response.ok && !(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
      meta.textContent = `The studio answered HTTP ${response.status}.`;
      slot.dataset.state = "error";
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", answer = "", done = null, error = null;
    for (;;) {
      const {value, done: finished} = await reader.read();
      if (finished) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data:")) continue;
        const event = JSON.parse(line.slice(5));
        if (event.text) { answer += event.text; out.textContent = answer; }
        if (event.done) done = event;
        if (event.error) error = event.error;
      }
    }
    if (error) {
      meta.textContent = error;
      meta.classList.add("error");
      slot.dataset.state = "error";
      return;
    }
    meta.classList.remove("error");
    const tokens = done && done.usage && done.usage.completion_tokens;
    meta.textContent = (tokens ? `${tokens} tokens` : "") +
      (done && done.finish_reason === "length" ? " · cut at the longest answer" : "");
    slot.dataset.state = "done";
    if (data.get("task") && data.get("grader")) {
      const g = new FormData();
      g.set("task", data.get("task"));
      g.set("grader", data.get("grader"));
      g.set("answer", answer);
      const r = await fetch(form.getAttribute("data-grade-url"), {
        method: "POST", body: g, headers: {"X-CSRFToken": data.get("csrfmiddlewaretoken")},
      });
      grade.innerHTML = await r.text();  // server-rendered and escaped
      slot.dataset.graded = "1";
    }
  }

  // (form.dataset would be the form's "dataset" field, hence getAttribute above)
  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("playground-form");
    if (!form) return;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const slots = document.querySelectorAll("#pg-answers [data-slot]");
      const models = [form.elements.model.value, form.elements.compare.value];
      slots.forEach((slot, i) => {
        slot.hidden = !models[i];
        delete slot.dataset.graded;
        if (models[i]) streamInto(form, slot, models[i]).catch((e) => {
          slot.querySelector(".pg-meta").textContent = "The answer could not be read: " + e;
          slot.dataset.state = "error";
        });
      });
    });
  });
})();
