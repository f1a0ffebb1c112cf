// Preloaded with --import: records every module URL the process loads and prints them as JSON on
// stderr at exit (one line, prefixed), so a test can tell which packages a command pulled in.
import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";
import { MessageChannel } from "node:worker_threads";

const loaded = new Set();
const { port1, port2 } = new MessageChannel();
port1.on("message", (url) => loaded.add(url));
port1.unref();
const hooks = `
let port;
export function initialize(data) { port = data.port; }
export async function load(url, context, next) { port.postMessage(url); return next(url, context); }
`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { port: port2 }, transferList: [port2] });
// CommonJS files loaded by require() (createRequire included) never pass the ESM hook: add them from the require cache.
const cjs = () => Object.keys(createRequire(import.meta.url).cache).map((f) => pathToFileURL(f).href);
process.on("exit", () => process.stderr.write(`\nTRACE_IMPORTS ${JSON.stringify([...new Set([...loaded, ...cjs()])])}\n`));
