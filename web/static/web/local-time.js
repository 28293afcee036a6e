// Timestamps are served as <time class="ts" datetime="...Z">2026-12-05 14:03 UTC</time>.
// Shown here in the reader's local time; the hover title keeps the UTC offset and UTC time.
(function () {
  "use strict";
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function offset(date) {
    var minutes = -date.getTimezoneOffset();
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return "UTC" + sign + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }
  function localise(root) {
    var nodes = (root || document).querySelectorAll("time.ts[datetime]:not([data-local])");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var date = new Date(node.getAttribute("datetime"));
      if (isNaN(date.getTime())) { continue; }
      var served = node.getAttribute("title") || node.textContent;
      node.textContent = date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
        " " + pad(date.getHours()) + ":" + pad(date.getMinutes());
      node.setAttribute("title", "Local time, " + offset(date) + " (" + served + ")");
      node.setAttribute("data-local", "true");
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { localise(); });
  } else { localise(); }
  window.custodyLocalTime = localise;
})();
