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
// "Copy" buttons: <button data-copy="#element-id"> copies that element's text.
document.addEventListener("click", async (evt) => {
  const button = evt.target.closest && evt.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  const status = button.nextElementSibling && button.nextElementSibling.classList.contains("copy-status")
    ? button.nextElementSibling : null;
  const text = source ? source.textContent : "";
  try {
    await navigator.clipboard.writeText(text);
    if (status) status.textContent = "Copied.";
  } catch (err) {  // no clipboard permission (plain http on another host): select it instead
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (status) status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
  }
});
// When the session ends (logged out in another tab, expired), a polling request is answered
// with the login page: say so once and stop polling, never swap the login form into the page.
(function () {
  let ended = false;
  const loginPath = () => document.body.dataset.loginUrl || "/accounts/login/";
  function isLoginUrl(url) {
    try { return Boolean(url) && new URL(url, window.location.href).pathname === loginPath(); } catch (err) { return false; }
  }
  function sessionEnded() {
    if (ended) return;
    ended = true;
    const note = document.createElement("div");
    note.className = "errors session-ended";
    note.id = "session-ended";
    note.setAttribute("role", "alert");
    const link = document.createElement("a");
    link.href = `${loginPath()}?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
    link.textContent = "Log in again";
    note.append("Your session has ended, so this page stopped updating. ", link, " to carry on.");
    (document.querySelector("main") || document.body).prepend(note);
  }
  window.studioSession = { isLoginUrl, ended: sessionEnded };
  document.addEventListener("htmx:beforeRequest", (evt) => { if (ended) evt.preventDefault(); });
  document.addEventListener("htmx:beforeSwap", (evt) => {
    if (isLoginUrl(evt.detail.xhr && evt.detail.xhr.responseURL)) {
      evt.detail.shouldSwap = false;
      sessionEnded();
    }
  });
})();
