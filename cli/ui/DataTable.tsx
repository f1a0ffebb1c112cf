import { Box, Text } from "ink";
import { columnWidths, type Table } from "../tables.js";

const STATE_COLORS: Record<string, string> = {
  online: "green",
  ready: "green",
  running: "green",
  completed: "green",
  busy: "yellow",
  starting: "yellow",
  loading: "yellow",
  queued: "yellow",
  stopping: "yellow",
  offline: "red",
  failed: "red",
  cancelled: "yellow",
};

export const stateColor = (s: string): string | undefined => STATE_COLORS[s];

/** A table with a dim header row; state-like cells are coloured. */
export function DataTable({ table, indent = 0 }: { table: Table; indent?: number }) {
  const widths = columnWidths(table);
  const pad = (s: string, i: number) => (i === widths.length - 1 ? s : s.padEnd(widths[i] as number));
  return (
    <Box flexDirection="column" paddingLeft={indent}>
      <Text dimColor bold wrap="truncate-end">
        {table.headers.map(pad).join("  ")}
      </Text>
      {table.rows.map((row, r) => (
        <Text key={r} wrap="truncate-end">
          {row.map((c, i) => (
            <Text key={i} color={stateColor(c)}>
              {pad(c, i)}
              {i < row.length - 1 ? "  " : ""}
            </Text>
          ))}
        </Text>
      ))}
    </Box>
  );
}
