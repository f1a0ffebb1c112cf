// Prints the node_modules folders a set of packages needs at run time (dependencies, recursively), one per line.
// Used by bench/gpu-check.sh pack. Usage: node bench/gpu-kit-deps.mjs koa undici ...
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const root = process.cwd();
const seen = new Set();

function find(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function visit(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    const found = find(dep, dir);
    if (found) visit(found);
  }
}

for (const name of process.argv.slice(2)) {
  const found = find(name, root);
  if (!found) throw new Error(`${name} is not installed`);
  visit(found);
}
for (const dir of [...seen].sort()) console.log(relative(root, dir));
