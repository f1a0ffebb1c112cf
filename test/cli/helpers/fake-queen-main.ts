/** The fake queen as a process, standing in for dist/daemons/queen/main.js in the auto-start tests. */
import { parseArgs } from "node:util";
import { startFakeQueen } from "./fake-queen.js";

const { values } = parseArgs({ options: { port: { type: "string" }, host: { type: "string" }, "log-file": { type: "string" } }, strict: false });
const queen = await startFakeQueen(Number(values["port"] ?? 8500), typeof values["log-file"] === "string" ? values["log-file"] : "/dev/null");
process.stdout.write(`listening ${queen.url}\n`);
const stop = () => void queen.close().then(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
