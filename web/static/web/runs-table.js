// The runs table: expand/collapse a parent's child rows.
(function () {
  "use strict";
  var table = document.getElementById("runs-table");
  if (!table) { return; }
  table.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-toggle-children]");
    if (!button) { return; }
    var parent = button.getAttribute("data-toggle-children");
    var open = button.getAttribute("aria-expanded") === "true";
    var rows = table.querySelectorAll('tr[data-parent="' + parent + '"]');
    for (var i = 0; i < rows.length; i++) { rows[i].hidden = open; }
    button.setAttribute("aria-expanded", open ? "false" : "true");
    button.textContent = open ? "▸" : "▾";
    button.setAttribute("aria-label", button.getAttribute("aria-label").replace(open ? "Hide" : "Show", open ? "Show" : "Hide"));
  });
})();
