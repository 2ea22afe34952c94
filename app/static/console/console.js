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

  // Phone layout: the sidebar is off-canvas; the Menu button opens it, the backdrop, Esc or a
  // link closes it.
  function setMenu(open) {
    document.body.classList.toggle("nav-open", open);
    var toggle = document.querySelector("[data-menu-toggle]");
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
    var backdrop = document.querySelector("[data-menu-close]");
    if (backdrop) backdrop.hidden = !open;
    if (open) {
      var first = document.querySelector("#sidebar .nav a");
      if (first) first.focus();
    }
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-menu-toggle]")) {
      setMenu(!document.body.classList.contains("nav-open"));
      return;
    }
    if (event.target.closest("[data-menu-close]")) {
      setMenu(false);
      return;
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("nav-open")) setMenu(false);
  });

  // A dangerous one-click action (form[data-confirm]) asks first. HTMX forms use hx-confirm;
  // this covers the plain forms (and no-htmx fallbacks) with the same wording.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!form.matches || !form.matches("form[data-confirm]")) return;
      if (form.hasAttribute("hx-post")) return; // htmx asks through hx-confirm
      var question = form.getAttribute("data-confirm");
      var check = form.querySelector("[data-confirm-when]");
      if (check && !check.checked) return; // e.g. maintenance: only switching it on is dangerous
      if (!window.confirm(question)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // Forms whose fields depend on a type (promotions): show only the fields of the chosen
  // type. form[data-type-switch="<select name>"], fields wrapped in [data-for-types="a b"].
  function applyTypeSwitch(form) {
    var select = form.querySelector('[name="' + form.getAttribute("data-type-switch") + '"]');
    if (!select) return;
    form.querySelectorAll("[data-for-types]").forEach(function (wrapper) {
      var types = wrapper.getAttribute("data-for-types").split(" ");
      wrapper.hidden = types.indexOf(select.value) === -1;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-type-switch]").forEach(applyTypeSwitch);
  });
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form[data-type-switch]");
    if (form) applyTypeSwitch(form);
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
