export const GPU_NAMES = { cuda: "CUDA", vulkan: "Vulkan", metal: "Metal" } as const;
export type GpuType = keyof typeof GPU_NAMES;
