// The Hono app of every Hono contender, shared by the Node server (hono_node.ts) and the Deno server
// (hono_deno.ts) so both runtimes serve byte-identical routes.
import process from "node:process";
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import {
  CookieStore as HonoSessionsCookieStore,
  MemoryStore as HonoSessionsMemoryStore,
  sessionMiddleware,
} from "hono-sessions";
import { useSession, useSessionStorage } from "@hono/session";
import { session } from "../../src/adapters/hono.ts";
import { MemoryStore } from "../../src/stores/memory.ts";
import { RedisStore } from "../../src/stores/redis.ts";
import {
  ABSOLUTE_SECONDS,
  BARE_BODY,
  type BenchConfig,
  body,
  COOKIE_NAME,
  cookieLike,
  HEX_SECRET,
  IDLE_SECONDS,
  importOptional,
  requireRedis,
  SECRET,
} from "./_common.ts";

/**
 * How a handler reaches the counter with each library, written the way that library's README does it:
 * synchronously where its API is synchronous (ours, hono-sessions), with `await` where it answers with a
 * promise (@hono/session). A synchronous library's routes are synchronous handlers, as the floors' are: an
 * `async` handler awaiting a plain value costs a promise and a microtask per request (≈ 0.15 µs through
 * `app.fetch` on Deno, in process) that its users do not write and the floor does not pay. Until issue 17
 * every library's routes were `async`; the `hono-async-routes` experiment keeps that shape, to measure it.
 * `increment` is one operation because @hono/session's idiom is a single `update(fn)`: splitting it
 * into get + update would decrypt its cookie twice and understate it.
 */
type CounterAccess =
  | {
    sync: true;
    create(c: Context): void;
    read(c: Context): number;
    increment(c: Context): number;
  }
  | {
    sync: false;
    create(c: Context): Promise<void>;
    read(c: Context): Promise<number>;
    increment(c: Context): Promise<number>;
  };

export interface HonoContender {
  app: Hono;
  close(): Promise<void>;
}

// deno-lint-ignore no-explicit-any
const sessionOf = (c: Context): any => (c as any).get("session");

const ours: CounterAccess = {
  sync: true,
  create(c) {
    sessionOf(c).set("n", 1);
  },
  read(c) {
    return sessionOf(c).get("n") ?? 0;
  },
  increment(c) {
    const s = sessionOf(c);
    const n = (s.get("n") ?? 0) + 1;
    s.set("n", n);
    return n;
  },
};

// hono-sessions exposes the same get/set API as ours.
const honoSessions: CounterAccess = ours;

const honoSession: CounterAccess = {
  sync: false,
  async create(c) {
    await sessionOf(c).update({ n: 1 });
  },
  async read(c) {
    const data = await sessionOf(c).get();
    return data?.n ?? 0;
  },
  async increment(c) {
    let n = 0;
    await sessionOf(c).update((previous: { n?: number } | null) => {
      n = (previous?.n ?? 0) + 1;
      return { n };
    });
    return n;
  },
};

function routes(app: Hono, access: CounterAccess | undefined): void {
  app.get("/bare", (c) => c.text(BARE_BODY));
  if (access === undefined) {
    app.get("/new", (c) => c.text(body(1)));
    app.get("/read", (c) => c.text(body(0)));
    app.get("/write", (c) => c.text(body(1)));
  } else if (access.sync) {
    app.get("/new", (c) => {
      access.create(c);
      return c.text(body(1));
    });
    app.get("/read", (c) => c.text(body(access.read(c))));
    app.get("/write", (c) => c.text(body(access.increment(c))));
  } else {
    app.get("/new", async (c) => {
      await access.create(c);
      return c.text(body(1));
    });
    app.get("/read", async (c) => c.text(body(await access.read(c))));
    app.get("/write", async (c) => c.text(body(await access.increment(c))));
  }
}

/** The floor: a middleware with the same async shape as a session middleware, doing nothing. */
const noop: MiddlewareHandler = async function noopMiddleware(_c, next) {
  await next();
};

/**
 * The cookie floor: the floor plus the cookie I/O any cookie session does, and nothing of a session: it reads
 * the `Cookie` header and, on `/new`, appends a `Set-Cookie` of our cookie's length to the response, the way
 * our adapter does. Ours ÷ floor can reach no higher than this ÷ floor (the report's ceiling).
 */
function cookieFloor(): MiddlewareHandler {
  let counter = 0;
  return async function cookieFloorMiddleware(c, next) {
    c.req.header("cookie");
    await next();
    if (c.req.path === "/new") c.res.headers.append("set-cookie", cookieLike(counter++));
  };
}

/** A Map behind @hono/session's storage hook: its equivalent of a memory store. */
function mapStorage() {
  const entries = new Map<string, unknown>();
  return {
    get: (sid: string) => entries.get(sid) ?? null,
    set: (sid: string, value: unknown) => void entries.set(sid, value),
    delete: (sid: string) => void entries.delete(sid),
  };
}

export async function buildHonoApp(config: BenchConfig): Promise<HonoContender> {
  const app = new Hono();
  let close = () => Promise.resolve();
  switch (config.contender) {
    case "none":
      routes(app, undefined);
      break;
    case "noop":
      app.use(noop);
      routes(app, undefined);
      break;
    case "cookie-floor":
      app.use(cookieFloor());
      routes(app, undefined);
      break;
    case "ours-memory":
      app.use(session({ secret: SECRET, store: new MemoryStore() }));
      routes(app, ours);
      break;
    case "ours-redis": {
      const store = new RedisStore({
        host: "127.0.0.1",
        port: requireRedis(config),
        keyPrefix: `bench:${config.contender}:${process.pid}:`,
      });
      await store.init();
      close = () => store.close();
      app.use(session({ secret: SECRET, store }));
      routes(app, ours);
      break;
    }
    case "ours-cookie": {
      // Loaded by path: a --baseline revision without src/stores/cookie.ts skips this twin instead of failing.
      const { CookieStore } = await importOptional("src/stores/cookie.ts");
      app.use(session({ store: new CookieStore({ keys: [SECRET] }) }));
      routes(app, ours);
      break;
    }
    case "hono-sessions-cookie":
      // hono-sessions' CookieStore: the whole session sealed with iron (iron-webcrypto) in the cookie.
      app.use(sessionMiddleware({
        store: new HonoSessionsCookieStore(),
        encryptionKey: SECRET,
        expireAfterSeconds: IDLE_SECONDS,
        sessionCookieName: COOKIE_NAME,
        cookieOptions: { path: "/", httpOnly: true, sameSite: "Lax", maxAge: IDLE_SECONDS },
      }));
      routes(app, honoSessions);
      break;
    case "hono-session-cookie":
      // @hono/session without a storage hook: the whole session in its JWE cookie (dir + A256GCM, jose).
      app.use(useSession({
        secret: HEX_SECRET,
        duration: { absolute: ABSOLUTE_SECONDS, inactivity: IDLE_SECONDS },
      }));
      routes(app, honoSession);
      break;
    case "hono-sessions-memory":
      app.use(sessionMiddleware({
        store: new HonoSessionsMemoryStore(),
        // Its encryptionKey seals the id with iron: its own notion of a signed cookie.
        encryptionKey: SECRET,
        expireAfterSeconds: IDLE_SECONDS,
        sessionCookieName: COOKIE_NAME,
        cookieOptions: { path: "/", httpOnly: true, sameSite: "Lax", maxAge: IDLE_SECONDS },
      }));
      routes(app, honoSessions);
      break;
    case "hono-session-memory":
      app.use(
        useSessionStorage(mapStorage()),
        useSession({
          secret: HEX_SECRET,
          duration: { absolute: ABSOLUTE_SECONDS, inactivity: IDLE_SECONDS },
        }),
      );
      routes(app, honoSession);
      break;
    default:
      throw new Error(`unknown Hono contender ${config.contender}`);
  }
  return { app, close };
}
