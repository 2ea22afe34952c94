// Live staff notifications: the console's own session cookie authenticates the socket
// (staff join the "admin" room); each admin.notification shows as a toast with a link.
(function () {
  "use strict";
  if (typeof io === "undefined") { return; }
  var box = document.getElementById("live-toasts");
  if (!box) { return; }

  var LINKS = {
    withdrawal_requested: "/admin/withdrawals",
    payout_failed: "/admin/withdrawals",
    kyc_submitted: "/admin/kyc",
    support_chat: "/admin/support",
    support_ticket: "/admin/support"
  };

  function describe(n) {
    if (n.type === "withdrawal_requested") {
      return "New withdrawal: " + (n.username || ("player " + n.user_id)) + " asks for " +
        n.amount + " " + n.currency;
    }
    if (n.type === "payout_failed") { return "Payout failed for player " + n.user_id; }
    return n.message || n.title || String(n.type || "Notification").replace(/_/g, " ");
  }

  function toast(n) {
    var el = document.createElement("div");
    el.className = "toast";
    el.setAttribute("role", "status");
    el.setAttribute("data-type", n.type || "");
    var text = document.createElement("span");
    text.textContent = describe(n);
    el.appendChild(text);
    var href = LINKS[n.type];
    if (href) {
      var link = document.createElement("a");
      link.href = href;
      link.textContent = "Open";
      el.appendChild(link);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn btn-ghost btn-small";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { el.remove(); });
    el.appendChild(close);
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 30000);
  }

  var socket = io({ withCredentials: true });
  socket.on("connect", function () { box.setAttribute("data-live", "connected"); });
  socket.on("disconnect", function () { box.setAttribute("data-live", "disconnected"); });
  socket.on("admin.notification", function (n) {
    toast(n || {});
    document.body.dispatchEvent(new CustomEvent("jx:admin-notification", { detail: n }));
  });
  // Support: a player's chat line or a new ticket refreshes the inbox and open conversations
  // (panels listening for jx:support); a new conversation also shows a toast.
  socket.on("support.chat.message", function (m) {
    if (m && m.new_conversation) {
      toast({ type: "support_chat", message: "New chat from " + (m.username || "a player") });
    }
    document.body.dispatchEvent(new CustomEvent("jx:support", { detail: m }));
  });
  socket.on("support.ticket.new", function (t) {
    toast({ type: "support_ticket", message: "New ticket: " + ((t && t.subject) || "") });
    document.body.dispatchEvent(new CustomEvent("jx:support", { detail: t }));
  });
  socket.on("session.logout", function () { window.location.assign("/admin/login"); });

  // Maintenance switched on or off (by anyone, anywhere): show or drop the banner at once,
  // as the server renders it on the next page load.
  socket.on("platform.maintenance", function (state) {
    var banner = document.getElementById("maintenance-banner");
    if (!state || !state.enabled) {
      if (banner) { banner.remove(); }
      return;
    }
    if (!banner) {
      banner = document.createElement("div");
      banner.className = "maintenance-banner";
      banner.id = "maintenance-banner";
      banner.setAttribute("role", "status");
      var topbar = document.querySelector(".topbar");
      if (topbar) { topbar.after(banner); } else { document.body.prepend(banner); }
    }
    var text = document.createElement("span");
    text.textContent = "Maintenance mode is ON: players get 503" +
      (state.message ? " (\u201c" + state.message + "\u201d)" : "") + ".";
    banner.replaceChildren(text);
  });
})();
