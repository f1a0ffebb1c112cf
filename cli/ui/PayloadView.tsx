import { Text } from "ink";
import { payloadText, statusHives } from "../tables.js";
import { StatusTable } from "./StatusTable.js";

/** A `data` event's payload: the status table for status-like payloads, readable text otherwise. */
export function PayloadView({ action, payload }: { action: string; payload: unknown }) {
  const hives = statusHives(payload);
  if (hives) return <StatusTable hives={hives} />;
  const text = payloadText(action, payload);
  return text ? <Text>{text}</Text> : null;
}
