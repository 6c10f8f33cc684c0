// The inbox's small behaviours: countdowns ticking from an ISO time, the reply's length, quick
// replies put into the box, and a notification permission asked on a click. No framework.
(function () {
  "use strict";
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function left(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (ms < 0 ? "-" : "") + (h ? h + ":" + pad(m) : m) + ":" + pad(s % 60);
  }
  function tick() {
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var ms = Date.parse(el.getAttribute("data-until")) - Date.now();
      el.classList.toggle("overdue", ms < 0);
      el.textContent = ms < 0 ? el.getAttribute("data-overdue") + " " + left(ms) : left(ms);
    });
  }
  function count() {
    var box = document.getElementById("reply-text"), out = document.getElementById("reply-count");
    if (!box || !out) return;
    var limit = parseInt(box.getAttribute("data-limit"), 10);
    out.textContent = box.value.length;
    box.setCustomValidity(box.value.length > limit ? box.getAttribute("data-too-long") : "");
  }
  document.addEventListener("input", function (e) { if (e.target.id === "reply-text") count(); });
  document.addEventListener("click", function (e) {
    var snippet = e.target.closest && e.target.closest(".snippet");
    if (snippet) {
      var box = document.getElementById("reply-text");
      if (box) { box.value = (box.value ? box.value + "\n" : "") + snippet.getAttribute("data-snippet"); box.focus(); count(); }
    }
    if (e.target.id === "notify" && window.Notification) Notification.requestPermission();
  });
  document.addEventListener("DOMContentLoaded", function () { tick(); count(); });
  document.addEventListener("htmx:afterSettle", function () { tick(); count(); });
  setInterval(tick, 1000);
})();
