#!/usr/bin/env node
// Runs the compiled CLI (dist/src/cli/main.js; build it with `npm run build:ts`).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const entry = path.join(root, 'dist', 'src', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(`vhost-switch: ${entry} is missing: run \`npm run build:ts\` (or \`npm run build\`) first\n`);
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
const code = await main(process.argv.slice(2));
// `run` resolves once the daemon has shut down; exit even if a native handle lingers. (stdout/stderr writes to
// files and pipes are synchronous on Linux, so nothing printed is lost.)
process.exit(code);
