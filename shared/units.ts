const IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Byte counts for people, in IEC units with three significant digits: "512 B", "1.50 KiB", "812 MiB", "7.40 GiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "?";
  let v = n;
  let i = 0;
  while (v >= 1024 && i < IEC.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${v} B`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${IEC[i]}`;
}
