// Oak 14 (npm build) under Node: bare, a no-op middleware, and our adapter. Contender from BENCH_CONTENDER.
import { Application } from "@oakserver/oak";
import type { Context, Middleware } from "@oakserver/oak";
import { session } from "../../src/adapters/oak.ts";
import { MemoryStore } from "../../src/stores/memory.ts";
import { RedisStore } from "../../src/stores/redis.ts";
import process from "node:process";
import { announce, BARE_BODY, body, exitOnSignal, readConfig, requireRedis, SECRET } from "./_common.ts";

const config = readConfig();
// deno-lint-ignore no-explicit-any
const app = new Application<Record<string, any>>();
let close: () => Promise<unknown> = () => Promise.resolve();

const noop: Middleware = async function noopMiddleware(_ctx, next) {
  await next();
};

// deno-lint-ignore no-explicit-any
function handler(withSession: boolean): Middleware<any> {
  // deno-lint-ignore no-explicit-any
  return function route(ctx: Context<any>) {
    const s = withSession ? ctx.state.session : undefined;
    let text: string;
    switch (ctx.request.url.pathname) {
      case "/bare":
        text = BARE_BODY;
        break;
      case "/new":
        s?.set("n", 1);
        text = body(1);
        break;
      case "/read":
        text = body(s ? s.get("n") ?? 0 : 0);
        break;
      case "/write": {
        const n = s ? (s.get("n") ?? 0) + 1 : 1;
        s?.set("n", n);
        text = body(n);
        break;
      }
      default:
        ctx.response.status = 404;
        return;
    }
    ctx.response.type = "text/plain";
    ctx.response.body = text;
  };
}

switch (config.contender) {
  case "none":
    app.use(handler(false));
    break;
  case "noop":
    app.use(noop);
    app.use(handler(false));
    break;
  case "ours-memory":
    app.use(session({ secret: SECRET, store: new MemoryStore() }));
    app.use(handler(true));
    break;
  case "ours-redis": {
    const store = new RedisStore({
      host: "127.0.0.1",
      port: requireRedis(config),
      keyPrefix: `bench:oak:${process.pid}:`,
    });
    await store.init();
    close = () => store.close();
    app.use(session({ secret: SECRET, store }));
    app.use(handler(true));
    break;
  }
  default:
    throw new Error(`unknown Oak contender ${config.contender}`);
}

const controller = new AbortController();
app.addEventListener("listen", ({ port }) => announce(port));
app.listen({ port: config.port, hostname: "127.0.0.1", signal: controller.signal });
exitOnSignal(async () => {
  controller.abort();
  await close();
});
