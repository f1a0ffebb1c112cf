import { Box, Text } from "ink";
import { ProgressBar } from "./ProgressBar.js";
import { flatten, nodeLabel, type JobNode, type TreeState } from "./reducer.js";
import { StatusIcon } from "./StatusIcon.js";

/** Rows the tree takes on screen (every line is truncated, never wrapped). */
export function treeHeight(tree: TreeState): number {
  return flatten(tree).reduce((sum, { node }) => sum + 1 + node.evictions.length + node.narration.length + node.progress.length + (node.error && node.parentId !== null ? 1 : 0), 0);
}

function NodeView({ node, depth, tree, frame }: { node: JobNode; depth: number; tree: TreeState; frame: number }) {
  const isRoot = node.parentId === null;
  return (
    <Box flexDirection="column" paddingLeft={depth * 2}>
      <Text wrap="truncate-end">
        <StatusIcon status={node.status} frame={frame} /> <Text bold>{nodeLabel(node, tree)}</Text> <Text dimColor>{node.id}</Text>
        {isRoot && tree.cancelling && node.status === "running" ? <Text color="yellow"> cancelling…</Text> : null}
      </Text>
      {node.evictions.map((e, i) => (
        <Text key={`evict-${i}`} wrap="truncate-end">
          {"  "}
          <Text color="yellow" bold>
            ⚠ evicted worker {e.workerId} (idle, LRU) to make room
          </Text>
          <Text dimColor> {e.human}</Text>
        </Text>
      ))}
      {node.narration.map((line, i) => (
        <Text key={i} wrap="truncate-end" color={line.level === "error" ? "red" : line.level === "warn" ? "yellow" : undefined} dimColor={line.level === "info" || line.level === "debug"}>
          {"  "}
          {line.human}
        </Text>
      ))}
      {node.progress.map((p) => (
        <Box key={p.key} paddingLeft={2}>
          <ProgressBar action={p.action} target={p.target} done={p.done} total={p.total} unit={p.unit} />
        </Box>
      ))}
      {/* The root's error is the summary line; only a child's own error is shown here. */}
      {node.error && !isRoot ? (
        <Text wrap="truncate-end" color="red">
          {"  "}
          {node.error.code}: {node.error.message}
        </Text>
      ) : null}
    </Box>
  );
}

/** The job tree: one node per job id (queen -> hive -> worker), each with its latest narration and progress. */
export function JobTree({ tree, frame }: { tree: TreeState; frame: number }) {
  return (
    <Box flexDirection="column">
      {flatten(tree).map(({ node, depth }) => (
        <NodeView key={node.id} node={node} depth={depth} tree={tree} frame={frame} />
      ))}
    </Box>
  );
}
