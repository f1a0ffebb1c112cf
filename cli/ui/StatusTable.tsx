import { Box, Text } from "ink";
import { hiveView } from "../tables.js";
import { DataTable, stateColor } from "./DataTable.js";

/** `rbee status`: each hive with its devices, workers and models. */
export function StatusTable({ hives, now = Date.now() }: { hives: Record<string, unknown>[]; now?: number }) {
  if (hives.length === 0) return <Text dimColor>No hives.</Text>;
  return (
    <Box flexDirection="column">
      {hives.map((h, i) => {
        const v = hiveView(h, now);
        return (
          <Box key={i} flexDirection="column" marginBottom={i < hives.length - 1 ? 1 : 0}>
            <Text>
              <Text bold>hive {v.hiveId}</Text> <Text color={stateColor(v.state)}>{v.state}</Text> <Text dimColor>{v.url} · last seen {v.lastSeen}</Text>
            </Text>
            {(
              [
                ["devices", v.devices],
                ["workers", v.workers],
                ["models", v.models],
              ] as const
            ).map(([name, t]) =>
              t.rows.length ? (
                <DataTable key={name} table={t} indent={2} />
              ) : (
                <Text key={name} dimColor>
                  {"  "}no {name}
                </Text>
              ),
            )}
          </Box>
        );
      })}
    </Box>
  );
}
