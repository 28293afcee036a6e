// Saved filters on the audit page: a name and the filter's query string, kept in this
// browser's localStorage (nothing is sent to the server). Each one is a link to the page
// with those filters, and can be deleted.
(function () {
  "use strict";
  var KEY = "custody.audit.saved-filters";
  var section = document.getElementById("saved-filters");
  var list = document.getElementById("saved-filter-list");
  var form = document.getElementById("save-filter");
  var filter = document.getElementById("audit-filter");
  if (!section || !list || !form || !filter || !window.localStorage) { return; }

  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || []; } catch (e) { return []; }
  }
  function store(items) { localStorage.setItem(KEY, JSON.stringify(items)); }
  function currentQuery() {
    var params = new URLSearchParams();
    new FormData(filter).forEach(function (value, key) { if (value) { params.append(key, value); } });
    return params.toString();
  }
  function render() {
    var items = load();
    list.textContent = "";
    items.forEach(function (item, index) {
      var li = document.createElement("li");
      var link = document.createElement("a");
      link.href = "?" + item.query;
      link.textContent = item.name;
      link.className = "saved-filter";
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link";
      remove.textContent = "delete";
      remove.setAttribute("aria-label", "Delete saved filter " + item.name);
      remove.addEventListener("click", function () {
        var now = load();
        now.splice(index, 1);
        store(now);
        render();
      });
      li.appendChild(link);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(remove);
      list.appendChild(li);
    });
    if (!items.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "None yet.";
      list.appendChild(empty);
    }
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = document.getElementById("saved-name").value.trim();
    if (!name) { return; }
    var items = load().filter(function (item) { return item.name !== name; });
    items.push({name: name, query: currentQuery()});
    store(items);
    document.getElementById("saved-name").value = "";
    render();
  });
  section.hidden = false;
  render();
})();
