/* Number, size and time formatting shared by every page ("–" for a missing value). */

export const fmt = {
  num(v, digits = 4) {
    if (v === null || v === undefined || Number.isNaN(Number(v))) return "–";
    v = Number(v);
    if (Number.isInteger(v) || Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
    if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
    return String(Number(v.toPrecision(digits)));
  },
  bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
  },
  count(n) {
    if (n === null || n === undefined) return "–";
    for (const [size, unit] of [[1e9, "B"], [1e6, "M"], [1e3, "K"]]) {
      if (n >= size) return `${Number((n / size).toPrecision(3))}${unit}`;
    }
    return String(n);
  },
  duration(s) {
    if (s === null || s === undefined || !Number.isFinite(Number(s))) return "–";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
    return `${sec}s`;
  },
  time(iso) { return iso ? new Date(iso).toLocaleString() : "–"; },
  percent(p) { return p === null || p === undefined ? "–" : `${Math.round(p * 100)}%`; },
};
