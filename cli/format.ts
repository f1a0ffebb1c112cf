/** Human units for sizes, counts and durations; pure, shared by the plain output and the TUI. */

import { formatBytes } from "../shared/units.js";

/** A parameter count: 1.2B, 350M, 15K. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return "?";
  const units: [number, string][] = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
  for (const [size, suffix] of units) {
    if (Math.abs(n) >= size) {
      const v = n / size;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${suffix}`;
    }
  }
  return String(n);
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** A coarse span of whole seconds: "42 s", "4 min 58 s", "2 h 5 min". */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const n = Math.floor(s);
  if (n < 60) return `${n} s`;
  if (n < 3600) return `${Math.floor(n / 60)} min ${n % 60} s`;
  return `${Math.floor(n / 3600)} h ${Math.floor((n % 3600) / 60)} min`;
}

/** "12.3 MiB / 1.20 GiB", "12/32 layers", "512 tokens". */
export function formatAmount(done: number, total: number | null, unit: string): string {
  if (unit === "bytes") return total === null ? formatBytes(done) : `${formatBytes(done)} / ${formatBytes(total)}`;
  return total === null ? `${done} ${unit}` : `${done}/${total} ${unit}`;
}

export function percent(done: number, total: number | null): number | null {
  if (total === null || !(total > 0)) return null;
  return Math.max(0, Math.min(1, done / total));
}

/** "3 s ago" for an ISO time or epoch milliseconds, against `now`. */
export function ago(when: unknown, now = Date.now()): string {
  const t = typeof when === "number" ? when : typeof when === "string" ? Date.parse(when) : Number.NaN;
  if (!Number.isFinite(t)) return "-";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** A scalar as a table cell; objects and lists as compact JSON. */
export function cell(v: unknown): string {
  if (v === undefined || v === null) return "-";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}
