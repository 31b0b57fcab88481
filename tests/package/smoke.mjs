// The consumer smoke test: what an app does with the npm package as installed from its tarball, on whichever
// runtime runs this file (Node, Bun, or Deno through its npm support). tests/package_node_test.ts copies it
// into a throw-away consumer project and runs it there under each runtime of the matrix.
//   <runtime> smoke.mjs <runtime-name> <adapter,...>
// For each adapter named, and each store (MemoryStore, SqliteStore on a temporary file, CookieStore): a
// visitor keeps the cookie and counts 1, 2, 3; a second visitor starts at 1; a tampered cookie starts afresh.
// Then this runtime's own server (Bun.serve, Deno.serve, node:http) with the fetch adapter, over a socket.
// Prints one JSON line, {"runtime", "version", "checks": [...]}, and exits 1 on the first failure.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryStore, Session, SessionManager, SessionStoreError, SqliteStore } from "web-sessions";
import { CookieStore } from "web-sessions/stores/cookie";
import { session as fetchSession } from "web-sessions/fetch";

const [runtime = "node", adapterList = "fetch"] = process.argv.slice(2);
const adapters = adapterList.split(",");
const SECRET = "smoke-test-secret-0123456789-abcdefghij";
const KEY = "smoke-test-cookie-key-0123456789-abcdefgh";
const checks = [];
const dir = mkdtempSync(join(tmpdir(), "web-sessions-smoke-"));

function check(condition, message) {
  if (!condition) throw new Error(`${runtime}: ${message}`);
}

/** The stores every adapter runs on; each call gives fresh ones. */
function stores() {
  const all = {
    memory: () => ({ store: new MemoryStore(), secret: SECRET }),
    // The driver SqliteStore finds itself: node:sqlite on Node 22.13+, Deno and Bun 1.4.
    sqlite: () => ({
      store: new SqliteStore({ path: join(dir, `${crypto.randomUUID()}.db`) }),
      secret: SECRET,
    }),
    cookie: () => ({ store: new CookieStore({ keys: [KEY] }) }),
  };
  if (runtime === "bun") {
    // Bun's own driver, passed in (its statements answer null for "no row").
    const { Database } = process.getBuiltinModule("bun:sqlite");
    all["bun:sqlite"] = () => {
      const database = new Database(join(dir, `${crypto.randomUUID()}.db`));
      return { store: new SqliteStore({ database }), secret: SECRET, database };
    };
  }
  return all;
}

/** Builds one app per adapter: `(options) => { fetch(request), close() }`, counting visits in the session. */
const apps = {
  fetch(options) {
    const handler = fetchSession(options)((_request, s) => {
      s.set("visits", (s.get("visits") ?? 0) + 1);
      return new Response(String(s.get("visits")));
    });
    return Promise.resolve({ fetch: handler, close() {} });
  },
  async hono(options) {
    const { Hono } = await import("hono");
    const { session } = await import("web-sessions/hono");
    const app = new Hono().use(session(options)).get("/", (c) => {
      const s = c.get("session");
      s.set("visits", (s.get("visits") ?? 0) + 1);
      return c.text(String(s.get("visits")));
    });
    return { fetch: (request) => app.fetch(request), close() {} };
  },
  async express(options) {
    const { default: express } = await import("express");
    const { default: session } = await import("web-sessions/express");
    const app = express();
    app.use(session(options));
    app.get("/", (req, res) => {
      req.session.visits = (req.session.visits ?? 0) + 1;
      res.send(String(req.session.visits));
    });
    return serveNode(app);
  },
  async koa(options) {
    const { default: Koa } = await import("koa");
    const { session } = await import("web-sessions/koa");
    const app = new Koa();
    app.use(session(options));
    app.use((ctx) => {
      ctx.session.visits = (ctx.session.visits ?? 0) + 1;
      ctx.body = String(ctx.session.visits);
    });
    return serveNode(app.callback());
  },
  async oak(options) {
    const { Application, Router } = await import("@oakserver/oak");
    const { OakSession } = await import("web-sessions");
    const app = new Application();
    const { store, ...rest } = options;
    new OakSession(app, store, rest);
    const router = new Router();
    router.get("/", async (context) => {
      const count = await context.state.session.get("visits");
      await context.state.session.set("visits", (count ?? 0) + 1);
      context.response.body = String(await context.state.session.get("visits"));
    });
    app.use(router.routes());
    return { fetch: (request) => app.handle(request), close() {} };
  },
  async fresh(options) {
    const { session } = await import("web-sessions/fresh");
    const middleware = session(options);
    return {
      // Fresh 2's context shape: req, a new state per request, next() running the route.
      fetch(request) {
        const state = {};
        return middleware({
          req: request,
          state,
          next() {
            state.session.set("visits", (state.session.get("visits") ?? 0) + 1);
            return Promise.resolve(new Response(String(state.session.get("visits"))));
          },
        });
      },
      close() {},
    };
  },
};

/** A node:http server on a free loopback port, reached with fetch. */
async function serveNode(listener) {
  const server = createServer(listener);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    fetch: (request) => {
      const url = new URL(request.url);
      return fetch(origin + url.pathname + url.search, { headers: request.headers, redirect: "manual" });
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A browser: keeps the session cookie between visits. */
async function visits(app, times, start = "") {
  let cookie = start;
  const seen = [];
  for (let i = 0; i < times; i++) {
    const response = await app.fetch(new Request("http://localhost/", { headers: cookie ? { cookie } : {} }));
    check(response.status === 200, `status ${response.status}`);
    const set = response.headers.getSetCookie()[0];
    if (set) cookie = set.split(";")[0];
    seen.push(await response.text());
  }
  return { seen, cookie };
}

try {
  for (const adapter of adapters) {
    for (const [storeName, makeOptions] of Object.entries(stores())) {
      const { database, ...options } = makeOptions();
      const app = await apps[adapter](options);
      try {
        const first = await visits(app, 3);
        check(first.seen.join() === "1,2,3", `${adapter}/${storeName}: counted ${first.seen}`);
        const other = await visits(app, 1);
        check(other.seen.join() === "1", `${adapter}/${storeName}: a second visitor saw ${other.seen}`);
        const [name, value] = first.cookie.split("=");
        const tampered = await visits(
          app,
          1,
          `${name}=${value.slice(0, -2)}${value.endsWith("AA") ? "BB" : "AA"}`,
        );
        check(
          tampered.seen.join() === "1",
          `${adapter}/${storeName}: a tampered cookie saw ${tampered.seen}`,
        );
        const again = await visits(app, 1, first.cookie);
        check(
          again.seen.join() === "4",
          `${adapter}/${storeName}: the first visitor came back to ${again.seen}`,
        );
      } finally {
        await app.close();
        await options.store.close?.();
        database?.close();
      }
      checks.push(`${adapter}/${storeName}`);
    }
  }

  // The runtime's own server, over a socket, with the fetch adapter.
  const handler = fetchSession({ store: new MemoryStore(), secret: SECRET })((_request, s) => {
    s.set("visits", (s.get("visits") ?? 0) + 1);
    return new Response(String(s.get("visits")));
  });
  let server;
  let origin;
  if (runtime === "bun") {
    server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: handler });
    origin = `http://127.0.0.1:${server.port}`;
  } else if (runtime === "deno") {
    server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, handler);
    origin = `http://127.0.0.1:${server.addr.port}`;
  } else {
    const node = await serveNode(async (req, res) => {
      const response = await handler(new Request(`http://localhost${req.url}`, { headers: req.headers }));
      res.writeHead(response.status, [...response.headers]);
      res.end(await response.text());
    });
    server = node;
    origin = "node";
    server.fetchOrigin = node.fetch;
  }
  try {
    const app = origin === "node"
      ? server
      : { fetch: (request) => fetch(origin + new URL(request.url).pathname, { headers: request.headers }) };
    const served = await visits(app, 3);
    check(served.seen.join() === "1,2,3", `server: counted ${served.seen}`);
    checks.push(
      `server/${runtime === "bun" ? "Bun.serve" : runtime === "deno" ? "Deno.serve" : "node:http"}`,
    );
  } finally {
    if (runtime === "bun") server.stop(true);
    else if (runtime === "deno") await server.shutdown();
    else await server.close();
  }

  // Names every entry exports, checked without a framework.
  check(new SessionStoreError("read", new Error("x")).status === 503, "SessionStoreError status");
  check(typeof Session === "function" && typeof SessionManager === "function", "root exports");
  checks.push("root-exports");
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const version = typeof Bun !== "undefined"
  ? Bun.version
  : typeof Deno !== "undefined"
  ? Deno.version.deno
  : process.versions.node;
console.log(JSON.stringify({ runtime, version, checks }));
