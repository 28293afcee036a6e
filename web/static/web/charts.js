// Draws one line chart per metric from the JSON the page embeds: {key: {run_id: [[step, value], ...]}}.
// On the compare page every run is one line, so curves overlay on one chart per metric.
(function () {
  "use strict";
  var holder = document.getElementById("charts");
  var dataNode = document.getElementById("chart-data");
  if (!holder || !dataNode || typeof Chart === "undefined") { return; }
  var data = JSON.parse(dataNode.textContent);
  var namesNode = document.getElementById("run-names");
  var names = namesNode ? JSON.parse(namesNode.textContent) : {};
  var orderNode = document.getElementById("run-order");
  var order = orderNode ? JSON.parse(orderNode.textContent) : [];
  function colour(runId, i) {  // the run's own colour on every chart and in the runs table
    return window.custodyRunColour ? window.custodyRunColour(runId) : palette[i % palette.length];
  }
  var palette = ["#1f5fae", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0f766e", "#a16207",
                 "#be185d", "#4d7c0f", "#334155"];
  Object.keys(data).sort().forEach(function (key) {
    var figure = document.createElement("figure");
    figure.className = "chart";
    figure.setAttribute("data-metric", key);
    var caption = document.createElement("figcaption");
    caption.textContent = key;
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Chart of " + key + " over steps; the table \"Metric charts as text\" below gives its figures");
    figure.appendChild(caption);
    figure.appendChild(canvas);
    holder.appendChild(figure);
    // Legend order is the table's (the order the runs were chosen in), not the ids' order.
    var runIds = Object.keys(data[key]).sort(function (a, b) {
      return order.indexOf(a) - order.indexOf(b);
    });
    var datasets = runIds.map(function (runId, i) {
      return {
        label: names[runId] || key,
        data: data[key][runId].map(function (p) { return {x: p[0], y: p[1]}; }),
        borderColor: colour(runId, i),
        backgroundColor: colour(runId, i),
        pointRadius: data[key][runId].length > 50 ? 0 : 3,
        borderWidth: 2,
        tension: 0
      };
    });
    new Chart(canvas, {
      type: "line",
      data: {datasets: datasets},
      options: {
        animation: false,
        parsing: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: {mode: "nearest", intersect: false},
        scales: {x: {type: "linear", title: {display: true, text: "step"}}},
        plugins: {legend: {display: datasets.length > 1}}
      }
    });
    figure.setAttribute("data-series", String(datasets.length));
  });
  holder.setAttribute("data-ready", "true");
})();
