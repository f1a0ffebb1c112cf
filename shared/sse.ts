import { createParser, type EventSourceMessage } from "eventsource-parser";
import { isEventType, type JobEvent } from "./protocol.js";

/** One SSE frame: `id`, `event`, and a single `data:` line (JSON never holds a raw newline). */
export function encodeEvent(event: JobEvent): string {
  return `id: ${event.id}\nevent: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

export const PING_FRAME = ": ping\n\n";

export interface SseParser {
  feed(chunk: string): void;
  reset(): void;
}

/**
 * Parses a job stream split at any byte boundary into JobEvents. Unknown event types and
 * frames whose data is not JSON are reported through `onInvalid` and otherwise skipped.
 */
export function createJobEventParser(
  onEvent: (event: JobEvent) => void,
  handlers: { onComment?: (comment: string) => void; onInvalid?: (message: EventSourceMessage, reason: string) => void } = {},
): SseParser {
  const parser = createParser({
    onEvent(message) {
      const type = message.event ?? "message";
      if (!isEventType(type)) {
        handlers.onInvalid?.(message, `unknown event type "${type}"`);
        return;
      }
      let data: unknown;
      try {
        data = JSON.parse(message.data);
      } catch {
        handlers.onInvalid?.(message, "data is not JSON");
        return;
      }
      const id = message.id === undefined ? Number.NaN : Number(message.id);
      onEvent({ id, event: type, data } as JobEvent);
    },
    onComment: handlers.onComment,
  });
  return { feed: (chunk) => parser.feed(chunk), reset: () => parser.reset() };
}

/** Feeds a byte stream through a UTF-8 decoder so multi-byte characters split across chunks survive. */
export async function* parseEventStream(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<JobEvent> {
  const queue: JobEvent[] = [];
  const parser = createJobEventParser((e) => queue.push(e));
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    parser.feed(typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }));
    while (queue.length > 0) yield queue.shift() as JobEvent;
  }
  parser.feed(decoder.decode());
  while (queue.length > 0) yield queue.shift() as JobEvent;
}
