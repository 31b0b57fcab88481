// Bare Deno.serve, a no-op wrapper, and our fetch adapter. Contender from BENCH_CONTENDER.
import { session } from "../../src/adapters/fetch.ts";
import type { Session } from "../../src/session.ts";
import { MemoryStore } from "../../src/stores/memory.ts";
import { RedisStore } from "../../src/stores/redis.ts";
import { generateId, SignedToken, storageKey } from "../../src/_crypto.ts";
import { readCookieValues } from "../../src/_cookie.ts";
import type { StoreWrite } from "../../src/store.ts";
import {
  announce,
  BARE_BODY,
  body,
  cookieLike,
  exitOnSignal,
  readConfig,
  requireRedis,
  SECRET,
} from "./_common.ts";

const config = readConfig();
const TEXT = { headers: { "content-type": "text/plain; charset=UTF-8" } };

function pathOf(request: Request): string {
  // Skips the URL parser: the request target is all a router of four fixed paths needs.
  const url = request.url;
  const start = url.indexOf("/", url.indexOf("//") + 2);
  return url.slice(start);
}

function plain(request: Request): Response {
  switch (pathOf(request)) {
    case "/bare":
      return new Response(BARE_BODY, TEXT);
    case "/read":
      return new Response(body(0), TEXT);
    case "/new":
    case "/write":
      return new Response(body(1), TEXT);
    default:
      return new Response("not found", { status: 404 });
  }
}

function withCounter(request: Request, s: Session<{ n: number }>): Response {
  switch (pathOf(request)) {
    case "/bare":
      return new Response(BARE_BODY, TEXT);
    case "/new":
      s.set("n", 1);
      return new Response(body(1), TEXT);
    case "/read":
      return new Response(body(s.get("n") ?? 0), TEXT);
    case "/write": {
      const n = (s.get("n") ?? 0) + 1;
      s.set("n", n);
      return new Response(body(n), TEXT);
    }
    default:
      return new Response("not found", { status: 404 });
  }
}

/**
 * Issue 17's per-step measure in HTTP: the cookie floor plus our own leaves, called directly, without the
 * session, the core's policies or its cookie writer. `steps-token` reads and verifies the cookie, or makes a
 * signed id and its storage key when none verifies (new); `steps-store` adds the MemoryStore calls ours makes:
 * a get (read), a get and an update (write), a create (new). Ours ÷ these shows what each layer costs.
 */
function stepsHandler(withStore: boolean): (request: Request) => Promise<Response> {
  const token = new SignedToken([SECRET]);
  const store = new MemoryStore();
  const day = 86_400_000;
  const write = (kind: "create" | "update", n: number, now: number): StoreWrite => ({
    kind,
    record: { data: { n }, meta: { createdAt: now, expiresAt: now + day, absoluteExpiresAt: now + 7 * day } },
    set: { n },
    deleted: [],
    cleared: false,
    flashChanged: false,
    now,
  });
  return async (request) => {
    const path = pathOf(request);
    const values = readCookieValues(request.headers.get("cookie"), "sid", 4093);
    const presented = values.length > 0 ? token.read(values[0]) : "malformed";
    const response = await plain(request);
    if (path === "/bare") return response;
    if (typeof presented === "string") {
      // No session yet: a new one, as ours makes on /new (and on /write, which the harness seeds its pool with).
      const id = generateId();
      const value = token.write(id);
      const key = storageKey(id);
      if (withStore) store.set(key, write("create", 1, Date.now()));
      response.headers.append("set-cookie", `sid=${value}; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax`);
    } else if (withStore) {
      // One clock read per request, handed to the store as the core hands it its time (c63de12).
      const now = Date.now();
      const record = store.get(presented.key, now);
      if (path === "/write" && record) {
        store.set(presented.key, write("update", Number(record.data.n) + 1, now));
      }
    }
    return response;
  };
}

let handler: (request: Request) => Response | Promise<Response>;
let close = () => Promise.resolve();
switch (config.contender) {
  case "none":
    handler = plain;
    break;
  case "noop":
    // The floor: the same async wrapping a session wrapper adds, without the session.
    handler = async (request) => await plain(request);
    break;
  case "cookie-floor": {
    // The floor plus the cookie I/O any cookie session does on Deno, and nothing of a session: reading the
    // Cookie header (Deno builds the request's header list on first access) and, on /new, appending a
    // Set-Cookie of our cookie's length, a fresh string each time. The report's ceiling for ours ÷ floor.
    let counter = 0;
    handler = async (request) => {
      request.headers.get("cookie");
      const response = await plain(request);
      if (pathOf(request) === "/new") response.headers.append("set-cookie", cookieLike(counter++));
      return response;
    };
    break;
  }
  case "steps-token":
  case "steps-store":
    handler = stepsHandler(config.contender === "steps-store");
    break;
  case "ours-memory":
    handler = session<{ n: number }>({ secret: SECRET, store: new MemoryStore() })(withCounter);
    break;
  case "ours-redis": {
    const store = new RedisStore({
      host: "127.0.0.1",
      port: requireRedis(config),
      keyPrefix: `bench:deno-serve:${Deno.pid}:`,
    });
    await store.init();
    close = () => store.close();
    handler = session<{ n: number }>({ secret: SECRET, store })(withCounter);
    break;
  }
  default:
    throw new Error(`unknown Deno.serve contender ${config.contender}`);
}

const server = Deno.serve({
  port: config.port,
  hostname: "127.0.0.1",
  onListen: ({ port }) => announce(port),
}, handler);
exitOnSignal(async () => {
  await server.shutdown();
  await close();
});
