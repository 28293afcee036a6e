// The compare page's scatter (pick X and Y among numeric params and final metrics, a point
// per run) and parallel coordinates (every numeric column an axis scaled to its own range, a
// line per run; tooltips give the real values). Runs keep their colours (run-colours.js).
(function () {
  "use strict";
  var node = document.getElementById("plot-values");
  if (!node || typeof Chart === "undefined") { return; }
  var plot = JSON.parse(node.textContent);
  var names = JSON.parse((document.getElementById("run-names") || {textContent: "{}"}).textContent);
  var order = JSON.parse((document.getElementById("run-order") || {textContent: "[]"}).textContent);
  var columns = plot.columns;
  function colour(runId) { return window.custodyRunColour ? window.custodyRunColour(runId) : "#1f5fae"; }
  var xSelect = document.getElementById("scatter-x"), ySelect = document.getElementById("scatter-y");
  columns.forEach(function (column, i) {
    [xSelect, ySelect].forEach(function (select) {
      var option = document.createElement("option");
      option.value = String(i);
      option.textContent = column;
      select.appendChild(option);
    });
  });
  var firstParam = columns.findIndex(function (c) { return c.indexOf("params.") === 0; });
  var firstMetric = columns.findIndex(function (c) { return c.indexOf("metrics.") === 0; });
  xSelect.value = String(firstParam >= 0 ? firstParam : 0);
  ySelect.value = String(firstMetric >= 0 ? firstMetric : Math.min(1, columns.length - 1));

  function scatterData() {
    var x = parseInt(xSelect.value, 10), y = parseInt(ySelect.value, 10);
    return order.filter(function (r) { return plot.runs[r] && plot.runs[r][x] !== null && plot.runs[r][y] !== null; })
      .map(function (runId) {
        return {label: names[runId] || runId, data: [{x: plot.runs[runId][x], y: plot.runs[runId][y]}],
                backgroundColor: colour(runId), borderColor: colour(runId), pointRadius: 6};
      });
  }
  var scatter = new Chart(document.querySelector("#scatter canvas"), {
    type: "scatter",
    data: {datasets: scatterData()},
    options: {animation: false, responsive: true, maintainAspectRatio: false,
              scales: {x: {title: {display: true, text: columns[parseInt(xSelect.value, 10)]}},
                       y: {title: {display: true, text: columns[parseInt(ySelect.value, 10)]}}}}
  });
  function updateScatter() {
    scatter.data.datasets = scatterData();
    scatter.options.scales.x.title.text = columns[parseInt(xSelect.value, 10)];
    scatter.options.scales.y.title.text = columns[parseInt(ySelect.value, 10)];
    scatter.update();
    document.getElementById("scatter").setAttribute("data-points", String(scatter.data.datasets.length));
  }
  xSelect.addEventListener("change", updateScatter);
  ySelect.addEventListener("change", updateScatter);
  document.getElementById("scatter").setAttribute("data-points", String(scatter.data.datasets.length));

  var ranges = columns.map(function (_, i) {
    var values = order.map(function (r) { return plot.runs[r] ? plot.runs[r][i] : null; })
      .filter(function (v) { return v !== null; });
    return [Math.min.apply(null, values), Math.max.apply(null, values)];
  });
  var parallel = order.filter(function (r) { return plot.runs[r]; }).map(function (runId) {
    return {
      label: names[runId] || runId,
      data: columns.map(function (column, i) {
        var v = plot.runs[runId][i], lo = ranges[i][0], hi = ranges[i][1];
        return {x: column, y: v === null ? null : (hi === lo ? 0.5 : (v - lo) / (hi - lo)), raw: v};
      }),
      borderColor: colour(runId), backgroundColor: colour(runId), pointRadius: 3, spanGaps: false
    };
  });
  new Chart(document.querySelector("#parallel canvas"), {
    type: "line",
    data: {labels: columns, datasets: parallel},
    options: {animation: false, responsive: true, maintainAspectRatio: false, parsing: {xAxisKey: "x", yAxisKey: "y"},
              scales: {x: {type: "category"}, y: {min: 0, max: 1, ticks: {display: false}}},
              plugins: {tooltip: {callbacks: {label: function (item) {
                return item.dataset.label + ": " + item.raw.raw;
              }}}}}
  });
  document.getElementById("parallel").setAttribute("data-lines", String(parallel.length));
})();
