// The demo: `npm run demo`, then open http://localhost:8000 (PORT changes the port).
// Sessions live in SQLite under .data/, so a visitor's counter survives a restart.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { serve } from "@hono/node-server";
import { SqliteStore } from "../src/stores/sqlite.ts";
import { createDemoApp } from "./demo_app.ts";

const dataDir = new URL("../.data/", import.meta.url);
mkdirSync(dataDir, { recursive: true });

// A secret kept beside the data, so cookies stay valid across restarts of the demo.
const secretFile = new URL("demo-secret", dataDir);
let secret: string;
try {
  secret = readFileSync(secretFile, "utf8");
} catch {
  secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  writeFileSync(secretFile, secret, { mode: 0o600 });
}

const store = new SqliteStore({ path: new URL("demo-sessions.db", dataDir).pathname });
const app = createDemoApp(store, secret);
const port = Number(process.env.PORT ?? 8000);
serve({ fetch: app.fetch, port }, (info) => {
  console.log(`Sessions demo at http://localhost:${info.port} (sessions in .data/demo-sessions.db)`);
});
