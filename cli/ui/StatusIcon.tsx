import { Text } from "ink";
import type { NodeStatus } from "./reducer.js";

export const SPINNER_FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** A spinner while running, a check or a cross once ended. */
export function StatusIcon({ status, frame }: { status: NodeStatus; frame: number }) {
  if (status === "completed") return <Text color="green">✔</Text>;
  if (status === "failed") return <Text color="red">✘</Text>;
  if (status === "cancelled") return <Text color="yellow">✘</Text>;
  return <Text color="cyan">{SPINNER_FRAMES[frame % SPINNER_FRAMES.length]}</Text>;
}
