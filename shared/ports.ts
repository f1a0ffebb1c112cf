import { createServer } from "node:net";

/** True when `port` can be bound on `host` right now (a bind is the only honest check). */
export function isPortFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The first port from `start` that is free on `host` and not in `taken` (ports handed to workers
 * that may not have bound yet). Scans at most `span` ports.
 */
export async function findFreePort(start: number, taken: ReadonlySet<number>, host = "127.0.0.1", span = 1000): Promise<number> {
  const last = Math.min(65535, start + span - 1);
  for (let port = start; port <= last; port++) {
    if (taken.has(port)) continue;
    if (await isPortFree(port, host)) return port;
  }
  throw new Error(`no free port between ${start} and ${last} on ${host}`);
}
