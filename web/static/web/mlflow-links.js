// The MLflow client prints links into MLflow's own UI, which routes by URL fragment
// ("View run at http://host:5000/#/experiments/1/runs/<id>"). The fragment never reaches
// the server, so this maps those links onto Custody's pages.
(function () {
  var hash = window.location.hash || "";
  var routes = [
    [/^#\/experiments\/[^/]+\/runs\/([0-9a-zA-Z]+)/, function (m) { return "/runs/" + m[1] + "/"; }],
    [/^#\/experiments\/([^/?]+)/, function (m) { return "/experiments/" + m[1] + "/"; }],
    [/^#\/models\/([^/]+)\/versions\/(\d+)/, function (m) { return "/models/" + m[1] + "/versions/" + m[2] + "/"; }],
    [/^#\/models\/([^/?]+)/, function (m) { return "/models/" + m[1] + "/"; }],
  ];
  for (var i = 0; i < routes.length; i++) {
    var match = hash.match(routes[i][0]);
    if (match) {
      window.location.replace(routes[i][1](match));
      return;
    }
  }
})();
