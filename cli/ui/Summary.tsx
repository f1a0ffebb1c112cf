import { Text } from "ink";
import { formatMs } from "../format.js";
import { inferSummary } from "../sinks.js";
import type { TreeState } from "./reducer.js";

/** The one line after a job: tokens, tokens/s and time to first token for infer; the outcome otherwise. */
export function Summary({ tree, elapsedMs }: { tree: TreeState; elapsedMs: number | null }) {
  const end = tree.end;
  if (!end) return <Text color="yellow">{tree.cancelling ? "✘ cancelled (the queen did not confirm in time)" : "✘ the stream ended without an end event"}</Text>;
  if (end.status === "failed") {
    return (
      <Text color="red">
        ✘ failed: {end.error?.code ?? "INTERNAL"}: {end.error?.message ?? ""}
      </Text>
    );
  }
  if (end.status === "cancelled") return <Text color="yellow">✘ cancelled</Text>;
  const took = elapsedMs === null ? "" : ` in ${formatMs(elapsedMs)}`;
  return (
    <Text>
      <Text color="green">✔</Text> {tree.rootOperation === "infer" ? inferSummary(end, tree.tokens) : `completed${took}`}
    </Text>
  );
}
