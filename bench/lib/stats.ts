/** Small statistics helpers shared by the benchmarks. */

/** The q-quantile by the nearest-rank method (q = 0.5 is the median; NaN for no samples). */
export function quantile(xs: readonly number[], q: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5);
export const p99 = (xs: readonly number[]): number => quantile(xs, 0.99);

/** Decode speed from token arrival times: tokens after the first over the time they took. */
export function decodeRate(times: readonly number[]): number {
  if (times.length < 2) return Number.NaN;
  return ((times.length - 1) * 1000) / (times[times.length - 1]! - times[0]!);
}

/** Rounds to `digits` decimals, keeping NaN (written as null in JSON). */
export function round(n: number, digits = 1): number {
  if (!Number.isFinite(n)) return Number.NaN;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A number for a table cell: fixed decimals, "-" for NaN. */
export function fmt(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits);
}

/** A ratio for a table cell: "0.97x", "-" when either side is missing. */
export function fmtRatio(n: number | undefined, digits = 2): string {
  return n === undefined || !Number.isFinite(n) ? "-" : `${n.toFixed(digits)}x`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
