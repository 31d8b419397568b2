/* The one chart component of the dashboard: line series over a shared x axis, drawn by uPlot
 * (vendor/uPlot.esm.js, MIT; version in docs/dashboard.md). Loss curves, resource history and
 * later views (comparisons, sweeps, evaluations) all use lineChart(), so they look and behave
 * alike and a change of library touches this file only. */

import uPlot from "../vendor/uPlot.esm.js";
import { el } from "./dom.js";

const HEIGHT = 260;
const INTEGER_STEPS = [1, 2, 5].flatMap((m) => [0, 1, 2, 3, 4, 5, 6, 7].map((p) => m * 10 ** p)).sort((a, b) => a - b);

/** Tick text: short, with an exponent for tiny values such as learning rates. */
const tickText = (_plot, ticks) => ticks.map((v) => (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(6)))));

/** Series given as separate point lists become uPlot's aligned columns: one sorted x column and
 * one y column per series, null where a series has no point at that x (eval loss, say). */
export function alignSeries(pointsPerSeries) {
  const xs = [...new Set(pointsPerSeries.flatMap((points) => points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const columns = pointsPerSeries.map((points) => {
    const column = new Array(xs.length).fill(null);
    for (const [x, y] of points) column[index.get(x)] = y;
    return column;
  });
  return [xs, ...columns];
}

/**
 * A line chart. ``series``: [{label, color, axis: "left" | "right", dash}] fixed at creation;
 * ``update(pointsPerSeries)`` redraws with [[x, y], ...] per series, in the same order.
 * The node carries ``data-points`` (how many values are drawn) for tests and scripts.
 * ``signal`` (the page's) releases the chart when the page is left.
 */
export function lineChart({ label, series, xLabel = "step", integerX = true, empty = "waiting for the first metrics…", signal }) {
  const node = el("div", { class: "chart", role: "figure", "aria-label": label, "data-points": "0" });
  const placeholder = el("p", { class: "chart-empty muted" }, empty);
  node.append(placeholder);
  const scales = [...new Set(series.map((s) => s.axis || "left"))];
  const twoAxes = scales.length > 1;
  const width = () => Math.max(240, node.clientWidth || 640);
  const options = () => ({
    width: width(),
    height: HEIGHT,
    scales: { x: { time: false }, ...Object.fromEntries(scales.map((scale) => [scale, {}])) },
    series: [
      { label: xLabel },
      ...series.map((s) => ({
        label: twoAxes && s.axis === "right" ? `${s.label} (right axis)` : s.label,
        scale: s.axis || "left", stroke: s.color, width: 2, dash: s.dash, spanGaps: true,
      })),
    ],
    axes: [
      { label: xLabel, incrs: integerX ? INTEGER_STEPS : undefined },
      ...scales.map((scale) => ({ scale, side: scale === "right" ? 1 : 3, values: tickText, size: 60,
        grid: { show: scale === scales[0] } })),
    ],
  });
  let plot = null;
  const observer = new ResizeObserver(() => {
    if (plot && node.clientWidth) plot.setSize({ width: width(), height: HEIGHT });
  });
  observer.observe(node);
  if (signal) {
    signal.addEventListener("abort", () => {
      observer.disconnect();
      if (plot) plot.destroy();
    });
  }
  return {
    node,
    update(pointsPerSeries) {
      const data = alignSeries(pointsPerSeries);
      const drawn = data.slice(1).reduce((n, column) => n + column.filter((y) => y !== null).length, 0);
      node.dataset.points = String(drawn);
      placeholder.hidden = drawn > 0;
      if (!drawn) return;
      if (plot) plot.setData(data);
      else plot = new uPlot(options(), data, node);
    },
  };
}
