// Live updates: the server's event stream (GET /api/events) says what changed and the page
// refreshes the fragment concerned (queue list, thread, panel) through htmx. While the stream is
// not open (not there yet, or reconnecting) the fragments are polled every few seconds instead.
(function () {
  "use strict";
  var POLL_MS = 4000, open = false, source = null;
  var me = document.body && document.body.getAttribute("data-me");
  function fire(name) { if (window.htmx) htmx.trigger(document.body, name); }
  function state() {
    var el = document.getElementById("live-state");
    if (el) el.textContent = el.getAttribute(open ? "data-live" : "data-polling");
  }
  function notify(body) {
    if (!window.Notification || Notification.permission !== "granted") return;
    new Notification(document.body.getAttribute("data-notify-title"), { body: body || "" });
  }
  function labelsOfThisPage(data) {
    // A conversation page refreshes its panel for its own contact's labels only.
    var panel = document.getElementById("panel");
    return !panel || (data && panel.getAttribute("data-contact") === String(data.contact_id));
  }
  function connect() {
    if (!window.EventSource) return;
    source = new EventSource("/api/events");
    source.onopen = function () { open = true; state(); };
    source.onerror = function () { open = false; state(); };  // EventSource retries by itself
    ["message", "status", "conversation", "queue", "label"].forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        var data = null;
        try { data = JSON.parse(e.data); } catch (ignored) { /* not JSON: nothing more to read */ }
        if (kind === "label" && !labelsOfThisPage(data)) return;
        fire("live-" + kind);
        if (kind === "conversation" && data && me && data.assigned_agent === me && !data.closed) {
          notify("#" + data.conversation_id);
        }
      });
    });
  }
  // Polling: the fragments listen to live-poll; a conversation newly mine on the queue notifies.
  var mine = null;
  function mineNow() {
    var list = document.querySelector(".queue[data-mine]");
    return list ? list.getAttribute("data-mine").split(",").filter(Boolean) : null;
  }
  document.addEventListener("htmx:afterSettle", function () {
    var now = mineNow();
    if (now && mine) now.filter(function (id) { return mine.indexOf(id) < 0; }).forEach(function (id) { notify("#" + id); });
    if (now) mine = now;
  });
  document.addEventListener("DOMContentLoaded", function () {
    mine = mineNow();
    connect();
    state();
    setInterval(function () {
      if (open || document.hidden) return;
      // Not while someone is typing in a form of the refreshed fragment.
      fire("live-poll");
    }, POLL_MS);
  });
})();
