// Small progressive enhancements; every page also works without them.
document.addEventListener("htmx:xhr:progress", (evt) => {
  const form = evt.target.closest ? evt.target.closest("#upload-form") : null;
  if (!form || !evt.detail.lengthComputable) return;
  const bar = form.querySelector("#upload-progress");
  const label = form.querySelector("#upload-progress-label");
  const pct = Math.round((evt.detail.loaded / evt.detail.total) * 100);
  bar.hidden = false;
  bar.value = pct;
  label.textContent = pct < 100 ? `Uploading… ${pct}%` : "Checking every task…";
});
document.addEventListener("htmx:beforeRequest", (evt) => {
  const btn = evt.target.querySelector && evt.target.querySelector("button[type=submit]");
  if (btn && evt.target.id === "upload-form") btn.disabled = true;
});
