// Hono under Node through @hono/node-server. Contender from BENCH_CONTENDER (see hono_app.ts).
import { serve } from "@hono/node-server";
import { announce, exitOnSignal, readConfig } from "./_common.ts";
import { buildHonoApp } from "./hono_app.ts";

const config = readConfig();
const { app, close } = await buildHonoApp(config);
const server = serve({ fetch: app.fetch, port: config.port, hostname: "127.0.0.1" }, (info) => {
  announce(info.port);
});
exitOnSignal(async () => {
  server.close();
  await close();
});
