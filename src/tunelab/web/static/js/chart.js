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

/**
 * A scatter chart (points, no lines): one y value against one x value per point, e.g. a sweep's
 * objective against one searched parameter. ``log`` puts x on a log scale (learning rates).
 * ``update(points)`` redraws with [[x, y], ...]; the node carries ``data-points`` like lineChart.
 */
/** Tick text that also takes the nulls a log axis passes for the ticks it leaves unlabelled. */
const scatterTicks = (plot, ticks) => ticks.map((v) => (v === null ? "" : tickText(plot, [v])[0]));

export function scatterChart({ label, xLabel, yLabel, color = "#2563eb", log = false, empty = "no finished trial yet", signal }) {
  const node = el("div", { class: "chart scatter", role: "figure", "aria-label": label, "data-points": "0" });
  const placeholder = el("p", { class: "chart-empty muted" }, empty);
  node.append(placeholder);
  const width = () => Math.max(240, node.clientWidth || 420);
  const options = () => ({
    width: width(),
    height: HEIGHT,
    legend: { show: false },
    scales: { x: { time: false, distr: log ? 3 : 1 }, y: {} },
    series: [{ label: xLabel }, { label: yLabel, stroke: color, fill: color, paths: () => null, points: { show: true, size: 9, fill: color } }],
    axes: [{ label: xLabel, values: scatterTicks }, { label: yLabel, values: scatterTicks, size: 60 }],
  });
  let plot = null;
  if (signal) signal.addEventListener("abort", () => { if (plot) plot.destroy(); });
  return {
    node,
    update(points) {
      const finite = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!log || x > 0));
      // uPlot's columns need distinct x values: points that share one (a categorical value tried
      // twice) are nudged by a relative 1e-9 each, invisible on the chart, so none is dropped.
      const seen = new Map();
      const distinct = finite.map(([x, y]) => {
        const k = seen.get(x) || 0;
        seen.set(x, k + 1);
        return [x === 0 ? k * 1e-12 : x * (1 + k * 1e-9), y];
      });
      const data = alignSeries([distinct]);
      node.dataset.points = String(finite.length);
      placeholder.hidden = finite.length > 0;
      if (!finite.length) return;
      if (plot) plot.setData(data);
      else plot = new uPlot(options(), data, node);
    },
  };
}
