// One colour per run, the same on every chart and in the runs table: a hash of the run id
// picks from 20 colours (two runs can share one; the legend and tooltips name them).
(function () {
  "use strict";
  var palette = ["#1f5fae", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0f766e", "#a16207",
                 "#be185d", "#4d7c0f", "#334155", "#2563eb", "#ea580c", "#16a34a", "#9333ea",
                 "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#65a30d", "#6b7280"];
  window.custodyRunColour = function (runId) {
    var hash = 2166136261;
    for (var i = 0; i < runId.length; i++) {
      hash ^= runId.charCodeAt(i);
      hash = Math.imul(hash, 16777619) >>> 0;
    }
    return palette[hash % palette.length];
  };
  // Swatches: <span class="run-swatch" data-run-colour="<run id>"> (scripts load at the end
  // of the body, so the page is there).
  var swatches = document.querySelectorAll("[data-run-colour]");
  for (var i = 0; i < swatches.length; i++) {
    swatches[i].style.background = window.custodyRunColour(swatches[i].getAttribute("data-run-colour"));
  }
})();
