// Hono under Deno: Deno.serve(app.fetch). Contender from BENCH_CONTENDER (see hono_app.ts).
import { announce, exitOnSignal, readConfig } from "./_common.ts";
import { buildHonoApp } from "./hono_app.ts";

const config = readConfig();
const { app, close } = await buildHonoApp(config);
const server = Deno.serve({
  port: config.port,
  hostname: "127.0.0.1",
  onListen: ({ port }) => announce(port),
}, app.fetch);
exitOnSignal(async () => {
  await server.shutdown();
  await close();
});
