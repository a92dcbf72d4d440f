// ECharts options for the cockpit's charts, and the charts themselves. The SVG renderer keeps every
// label as text in the page: sharp in screenshots, readable by screen readers and by the tests.

const charts = new Map();
const FONT = '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif';

export function chart(id) {
  const element = document.getElementById(id);
  let instance = charts.get(id);
  if (!instance || instance.getDom() !== element) {
    instance = window.echarts.init(element, null, { renderer: "svg" });
    charts.set(id, instance);
  }
  return instance;
}

// Charts drawn while their page was hidden have no size: give them the size they have now.
export function resizeCharts() {
  for (const instance of charts.values()) instance.resize();
}

export function show(id, option) {
  // Replaced, not merged, so a series or a category that disappeared does not linger.
  chart(id).setOption({ textStyle: { fontFamily: FONT }, animationDuration: 300, ...option }, true);
}

// A funnel in the order given (stages, not sizes), each stage labelled "name: count".
export function funnel(items) {
  const largest = Math.max(1, ...items.map((item) => item.value));
  return {
    tooltip: { trigger: "item", formatter: "{b}: {c}" },
    series: [{
      type: "funnel",
      sort: "none",
      min: 0,
      max: largest,
      minSize: "12%",
      left: "8%",
      right: "8%",
      top: 10,
      bottom: 10,
      gap: 3,
      label: { position: "inside", formatter: "{b}: {c}", color: "#fff", textBorderColor: "#333", textBorderWidth: 2 },
      data: items,
    }],
  };
}

export function pie(items) {
  return {
    tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
    series: [{
      type: "pie",
      radius: ["35%", "65%"],
      label: { formatter: "{b}: {c} ({d}%)" },
      data: items,
    }],
  };
}

export function bars(items) {
  return {
    tooltip: { trigger: "axis" },
    grid: { left: 50, right: 20, top: 25, bottom: 40 },
    xAxis: { type: "category", data: items.map((item) => item.name), axisLabel: { interval: 0 } },
    yAxis: { type: "value", minInterval: 1 },
    series: [{ type: "bar", data: items.map((item) => item.value), label: { show: true, position: "top" } }],
  };
}

// Lines over time: series = [{name, points: [[time, value], ...]}].
export function lines(series, { step = false, area = false } = {}) {
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0, type: "scroll" },
    grid: { left: 55, right: 25, top: 35, bottom: 30 },
    xAxis: { type: "time" },
    yAxis: { type: "value", minInterval: 1 },
    series: series.map((s) => ({
      name: s.name,
      type: "line",
      step: step ? "end" : false,
      showSymbol: false,
      areaStyle: area ? { opacity: 0.15 } : undefined,
      data: s.points,
    })),
  };
}

// A customer's history as bars on a time axis, one row per tag: from entering to leaving (or now).
// rows: tag labels, top to bottom; spans: [{row, start, end, dimension}].
export function timeline(rows, spans, now) {
  const colours = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4"];
  const dimensions = [...new Set(spans.map((s) => s.dimension))];
  return {
    tooltip: {
      formatter: (p) => `${rows[p.value[0]]}<br>${new Date(p.value[1]).toLocaleString()} → ` +
        `${p.value[3] ? new Date(p.value[2]).toLocaleString() : "…"}`,
    },
    grid: { left: 150, right: 25, top: 10, bottom: 30 },
    xAxis: { type: "time", max: now },
    yAxis: { type: "category", data: rows, inverse: true, axisTick: { show: false } },
    series: [{
      type: "custom",
      renderItem: (params, api) => {
        const start = api.coord([api.value(1), api.value(0)]);
        const end = api.coord([api.value(2), api.value(0)]);
        const height = api.size([0, 1])[1] * 0.6;
        const shape = window.echarts.graphic.clipRectByRect(
          { x: start[0], y: start[1] - height / 2, width: Math.max(end[0] - start[0], 3), height },
          { x: params.coordSys.x, y: params.coordSys.y, width: params.coordSys.width, height: params.coordSys.height },
        );
        return shape && { type: "rect", shape, style: api.style() };
      },
      encode: { x: [1, 2], y: 0 },
      data: spans.map((s) => ({
        value: [s.row, s.start, s.end ?? now, s.end !== null],
        itemStyle: { color: colours[dimensions.indexOf(s.dimension) % colours.length] },
      })),
    }],
  };
}
