// The runs table: expand/collapse a parent's child rows, or a group's runs.
(function () {
  "use strict";
  var table = document.getElementById("runs-table");
  if (!table) { return; }
  table.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-toggle-children], button[data-toggle-group]");
    if (!button) { return; }
    var open = button.getAttribute("aria-expanded") === "true";
    var parent = button.getAttribute("data-toggle-children");
    var rows = parent
      ? table.querySelectorAll('tr[data-parent="' + parent + '"]')
      : table.querySelectorAll('tr[data-in-group="' + button.getAttribute("data-toggle-group") + '"]');
    for (var i = 0; i < rows.length; i++) { rows[i].hidden = open; }
    button.setAttribute("aria-expanded", open ? "false" : "true");
    button.textContent = open ? "▸" : "▾";
    button.setAttribute("aria-label", button.getAttribute("aria-label").replace(open ? "Hide" : "Show", open ? "Show" : "Hide"));
  });
})();
