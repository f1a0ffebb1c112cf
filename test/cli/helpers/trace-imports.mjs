// Preloaded with --import: records every module URL the process loads and prints them as JSON on
// stderr at exit (one line, prefixed), so a test can tell which packages a command pulled in.
import { register } from "node:module";
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
process.on("exit", () => process.stderr.write(`\nTRACE_IMPORTS ${JSON.stringify([...loaded])}\n`));
