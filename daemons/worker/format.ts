/** Byte counts for people: "812 MiB", "7.4 GiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 || v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

export const GPU_NAMES = { cuda: "CUDA", vulkan: "Vulkan", metal: "Metal" } as const;
export type GpuType = keyof typeof GPU_NAMES;
