// Draws one line chart per metric from the JSON the page embeds:
// {key: {run_id: [[step, value, timestamp_ms], ...]}}. On the compare page and the
// experiment's chart view every run is one line, so curves overlay on one chart per metric.
// Controls above the charts: x = step / wall time / time since the run's first point, log
// scale, smoothing (exponential moving average), drag across a chart to zoom, double-click
// (or "Reset zoom") to reset. Each run keeps its colour everywhere (run-colours.js).
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
  var palette = ["#1f5fae", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0f766e", "#a16207",
                 "#be185d", "#4d7c0f", "#334155"];
  function colour(runId, i) {  // the run's own colour on every chart and in the runs table
    return window.custodyRunColour ? window.custodyRunColour(runId) : palette[i % palette.length];
  }
  var state = {x: "step", log: false, smoothing: 0};
  var charts = [];

  function control(html) {
    var span = document.createElement("span");
    span.className = "chart-control";
    span.innerHTML = html;  // static markup only, no data
    return span;
  }
  var bar = document.createElement("div");
  bar.className = "chart-controls";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Chart settings");
  bar.appendChild(control('<label for="chart-x">X axis</label> <select id="chart-x">' +
    '<option value="step">Step</option><option value="time">Time</option>' +
    '<option value="relative">Relative time (s)</option></select>'));
  bar.appendChild(control('<label class="check-inline"><input type="checkbox" id="chart-log"> Log scale</label>'));
  bar.appendChild(control('<label for="chart-smoothing">Smoothing</label> ' +
    '<input type="range" id="chart-smoothing" min="0" max="0.99" step="0.01" value="0"> ' +
    '<output id="chart-smoothing-value" for="chart-smoothing">0</output>'));
  bar.appendChild(control('<button type="button" class="secondary" id="chart-reset">Reset zoom</button>'));
  bar.appendChild(control('<span class="hint">Drag across a chart to zoom.</span>'));
  holder.parentNode.insertBefore(bar, holder);

  function points(series) {
    var first = series.length ? series[0][2] : 0;
    var out = series.map(function (p) {
      var x = state.x === "step" ? p[0] : state.x === "time" ? p[2] : (p[2] - first) / 1000;
      return {x: x, y: p[1]};
    });
    if (state.x !== "step") { out.sort(function (a, b) { return a.x - b.x; }); }
    if (state.smoothing > 0) {  // EMA with the usual debiasing, as TensorBoard and W&B do
      var last = 0, weight = 0;
      out = out.map(function (p) {
        last = last * state.smoothing + (1 - state.smoothing) * p.y;
        weight = weight * state.smoothing + (1 - state.smoothing);
        return {x: p.x, y: last / weight};
      });
    }
    if (state.log) { out = out.filter(function (p) { return p.y > 0; }); }
    return out;
  }

  function xScale() {
    var title = {step: "step", time: "time", relative: "seconds since the run's first point"}[state.x];
    var scale = {type: "linear", title: {display: true, text: title}};
    if (state.x === "time") {
      scale.ticks = {callback: function (v) {
        var d = new Date(v);
        return d.toLocaleDateString() + " " + d.toLocaleTimeString();
      }, maxTicksLimit: 4};
    }
    return scale;
  }

  // A metric logged once is a value, not a curve: the axis hugs the values (not v-1 .. v+1).
  function yScale(entry) {
    var scale = {type: state.log ? "logarithmic" : "linear"};
    if (entry.single && !state.log) {
      var values = entry.datasets.map(function (d) { return d.data.length ? d.data[0].y : 0; });
      var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
      var pad = (hi - lo) * 0.15 || Math.abs(hi) * 0.05 || 1;
      scale.suggestedMin = lo - pad;
      scale.suggestedMax = hi + pad;
    }
    return scale;
  }

  function redraw() {
    charts.forEach(function (entry) {
      entry.chart.data.datasets.forEach(function (dataset) {
        dataset.data = points(data[entry.key][dataset.runId]);
      });
      entry.chart.options.scales.x = xScale();
      entry.chart.options.scales.y = yScale(entry);
      entry.chart.update();
    });
    holder.setAttribute("data-x", state.x);
    holder.setAttribute("data-log", String(state.log));
    holder.setAttribute("data-smoothing", String(state.smoothing));
  }

  function zoomable(canvas, entry) {
    var start = null;
    canvas.addEventListener("mousedown", function (event) { start = event.offsetX; });
    canvas.addEventListener("mouseup", function (event) {
      if (start === null || Math.abs(event.offsetX - start) < 5) { start = null; return; }
      var scale = entry.chart.scales.x;
      var a = scale.getValueForPixel(Math.min(start, event.offsetX));
      var b = scale.getValueForPixel(Math.max(start, event.offsetX));
      entry.chart.options.scales.x.min = a;
      entry.chart.options.scales.x.max = b;
      entry.chart.update();
      entry.figure.setAttribute("data-zoomed", "true");
      start = null;
    });
    canvas.addEventListener("dblclick", function () { resetZoom(entry); });
  }

  function resetZoom(entry) {
    delete entry.chart.options.scales.x.min;
    delete entry.chart.options.scales.x.max;
    entry.chart.update();
    entry.figure.removeAttribute("data-zoomed");
  }

  Object.keys(data).sort().forEach(function (key) {
    var figure = document.createElement("figure");
    figure.className = "chart";
    figure.setAttribute("data-metric", key);
    var caption = document.createElement("figcaption");
    caption.textContent = key;
    var canvas = document.createElement("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Chart of " + key + "; the table \"Metric charts as text\" below gives its figures");
    figure.appendChild(caption);
    figure.appendChild(canvas);
    holder.appendChild(figure);
    // Legend order is the table's (the order the runs were chosen in), not the ids' order.
    var runIds = Object.keys(data[key]).sort(function (a, b) {
      return order.indexOf(a) - order.indexOf(b);
    });
    var single = runIds.every(function (runId) { return data[key][runId].length === 1; });
    var datasets = runIds.map(function (runId, i) {
      return {
        runId: runId,
        label: names[runId] || key,
        data: points(data[key][runId]),
        borderColor: colour(runId, i),
        backgroundColor: colour(runId, i),
        pointRadius: data[key][runId].length > 50 ? 0 : (data[key][runId].length === 1 ? 5 : 3),
        borderWidth: 2,
        tension: 0
      };
    });
    var entry = {key: key, figure: figure, single: single, datasets: datasets};
    entry.chart = new Chart(canvas, {
      type: "line",
      data: {datasets: datasets},
      options: {
        animation: false,
        parsing: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: {mode: "nearest", intersect: false},
        scales: {x: xScale(), y: yScale(entry)},
        plugins: {legend: {display: datasets.length > 1}}
      }
    });
    charts.push(entry);
    zoomable(canvas, entry);
    figure.setAttribute("data-series", String(datasets.length));
  });

  document.getElementById("chart-x").addEventListener("change", function (event) {
    state.x = event.target.value;
    charts.forEach(resetZoom);
    redraw();
  });
  document.getElementById("chart-log").addEventListener("change", function (event) {
    state.log = event.target.checked;
    redraw();
  });
  document.getElementById("chart-smoothing").addEventListener("input", function (event) {
    state.smoothing = parseFloat(event.target.value);
    document.getElementById("chart-smoothing-value").textContent = event.target.value;
    redraw();
  });
  document.getElementById("chart-reset").addEventListener("click", function () {
    charts.forEach(resetZoom);
  });
  holder.setAttribute("data-ready", "true");
})();
