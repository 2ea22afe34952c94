/* JackpotX back office: the only script besides htmx (CSP: script-src 'self', no inline code).
 * - sends the CSRF token (from <meta name="csrf-token">) on every htmx request;
 * - opens the shared modal when htmx loads it into #modal-root, closes it on Cancel / Esc.
 * Everything else works without JavaScript: plain links and forms. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function modalRoot() {
    return document.getElementById("modal-root");
  }

  function closeModal() {
    var root = modalRoot();
    if (!root) return;
    var dialog = root.querySelector("dialog");
    if (dialog && dialog.open) dialog.close();
    root.innerHTML = "";
  }

  function openModal(root) {
    var dialog = root.querySelector("dialog");
    if (!dialog) return;
    if (!dialog.open) dialog.showModal();
    var first = dialog.querySelector("textarea, input:not([type=hidden]), select");
    if (first) first.focus();
  }

  // htmx inherits hx-headers from <body>: every htmx request carries the token.
  document.addEventListener("DOMContentLoaded", function () {
    document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRFToken": csrfToken() }));
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "modal-root") openModal(target);
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss-modal]");
    if (button) {
      event.preventDefault();
      closeModal();
    }
  });

  // Esc closes a modal dialog natively; clear it so the next action loads a fresh form.
  document.addEventListener(
    "close",
    function (event) {
      var root = modalRoot();
      if (root && event.target.parentElement === root) root.innerHTML = "";
    },
    true
  );

  // A failed request (network, 5xx) must not fail silently.
  document.addEventListener("htmx:responseError", function (event) {
    var region = document.getElementById("flash-region");
    if (!region) return;
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var note = document.createElement("div");
    note.className = "flash flash-error";
    note.setAttribute("role", "alert");
    note.textContent =
      status === 403
        ? "Your role does not allow this action."
        : "The request failed (" + status + "). Reload the page and try again.";
    region.replaceChildren(note);
    closeModal();
  });
})();
