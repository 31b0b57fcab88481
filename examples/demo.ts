// The demo: `npm run demo`, then open http://localhost:8000.
//   PORT=8001 npm run demo          another port (0: any free one)
//   DEMO_DATA_DIR=/tmp/x npm run demo   another place for its files (default: .data/ in the repository)
// Sessions live in SQLite in that folder, so a visitor's session survives a restart of the demo.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { SqliteStore } from "../src/stores/sqlite.ts";
import { createDemoApp } from "./demo_app.ts";

/** One line on stderr, exit code 1: for mistakes a person can fix, so no stack trace. */
function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

const portText = process.env.PORT ?? "8000";
const port = Number(portText);
if (!/^\d{1,5}$/.test(portText) || port > 65535) {
  fail(`PORT must be a port number from 0 to 65535, not "${portText}".`);
}

const dataDir = resolve(process.env.DEMO_DATA_DIR ?? fileURLToPath(new URL("../.data/", import.meta.url)));
mkdirSync(dataDir, { recursive: true });

// A secret kept beside the data, so cookies stay valid across restarts of the demo.
const secretFile = join(dataDir, "demo-secret");
let secret: string;
try {
  secret = readFileSync(secretFile, "utf8");
} catch {
  secret = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
  writeFileSync(secretFile, secret, { mode: 0o600 });
}

const dbFile = join(dataDir, "demo-sessions.db");
const store = new SqliteStore({ path: dbFile });
const app = createDemoApp(store, secret);
const server = serve({ fetch: app.fetch, port }, (info) => {
  console.log(`Sessions demo at http://localhost:${info.port} (PORT=${info.port}; sessions in ${dbFile})`);
});
server.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EADDRINUSE") {
    fail(
      `Port ${port} is already in use (is the demo already running?): stop that program, or choose ` +
        `another port, e.g. PORT=${port === 8000 ? 8001 : 8000} npm run demo`,
    );
  }
  if (error.code === "EACCES") {
    fail(`Port ${port} needs privileges this user lacks: choose a port above 1023.`);
  }
  fail(`Cannot listen on port ${port}: ${error.message}`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    server.close();
    store.close();
    process.exit(0);
  });
}
