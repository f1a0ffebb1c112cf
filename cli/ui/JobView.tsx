import { Box, Static, Text, useApp, useStdout } from "ink";
import { useEffect, useSyncExternalStore } from "react";
import type { JobStore, ViewState } from "./job-store.js";
import { JobTree, treeHeight } from "./JobTree.js";
import { PayloadView } from "./PayloadView.js";
import type { TreeState } from "./reducer.js";
import { Summary } from "./Summary.js";
import { tailText } from "./text-tail.js";
import { useTicker } from "./use-ticker.js";

/** A tree with nothing to tell (a bare completed root) is left out of the final frame. */
const boring = (tree: TreeState): boolean =>
  tree.roots.length === 1 &&
  Object.keys(tree.nodes).length === 1 &&
  Object.values(tree.nodes).every((n) => n.status === "completed" && n.narration.length === 0 && n.progress.length === 0);

function FinalFrame({ view }: { view: ViewState }) {
  const { tree } = view;
  return (
    <Box flexDirection="column">
      {boring(tree) ? null : <JobTree tree={tree} frame={0} />}
      {tree.text ? <Text>{tree.text}</Text> : null}
      {/* An infer's result is its text; payloads on the way (a spawned worker) are not results. */}
      {tree.rootOperation === "infer"
        ? null
        : tree.data.map((d, i) => <PayloadView key={i} action={d.action} payload={d.payload} />)}
      <Summary tree={tree} elapsedMs={view.elapsedMs} />
    </Box>
  );
}

/**
 * The live view of one job: the tree and the tail of the generated text, kept shorter than the
 * screen; once done, the whole result is printed once as static output and the app exits.
 */
export function JobView({ store }: { store: JobStore }) {
  const view = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const { stdout } = useStdout();
  const { exit } = useApp();
  const frame = useTicker(!view.done);
  useEffect(() => {
    if (view.done) exit();
  }, [view.done, exit]);

  if (view.done) return <Static items={[view]}>{(v, i) => <FinalFrame key={i} view={v} />}</Static>;
  const columns = stdout.columns > 0 ? stdout.columns : 80;
  const rows = stdout.rows > 0 ? stdout.rows : 24;
  // Two rows of slack: one for Ink's trailing newline, one for wide characters; one column so no row ends in the last one.
  const budget = rows - treeHeight(view.tree) - 2;
  const tail = tailText(view.tree.text, columns - 1, budget);
  return (
    <Box flexDirection="column">
      <JobTree tree={view.tree} frame={frame} />
      {tail ? <Text>{tail}</Text> : null}
    </Box>
  );
}
