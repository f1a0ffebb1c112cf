import { Text } from "ink";
import { formatAmount, percent } from "../format.js";

export interface ProgressProps {
  action: string;
  target: string | null;
  done: number;
  total: number | null;
  unit: string;
  width?: number;
}

/** A bar with percent and human amounts (bytes as KiB/MiB/GiB, layers as n/N); no bar when the total is unknown. */
export function ProgressBar({ action, target, done, total, unit, width = 24 }: ProgressProps) {
  const p = percent(done, total);
  const label = `${action}${target ? ` ${target}` : ""}`;
  const amount = formatAmount(done, total, unit);
  if (p === null) {
    return (
      <Text wrap="truncate-end">
        {amount} <Text dimColor>{label}</Text>
      </Text>
    );
  }
  const filled = Math.round(p * width);
  return (
    <Text wrap="truncate-end">
      <Text color={p >= 1 ? "green" : "cyan"}>{"█".repeat(filled)}</Text>
      <Text dimColor>{"░".repeat(width - filled)}</Text> {String(Math.floor(p * 100)).padStart(3)}% {amount} <Text dimColor>{label}</Text>
    </Text>
  );
}
