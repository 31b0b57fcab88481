// Express 5: bare, a no-op middleware, our adapter (when src/adapters/express.ts exists) with a
// MemoryStore, a RedisStore and a PostgresStore, and express-session with its MemoryStore, connect-redis
// and connect-pg-simple. Contender from BENCH_CONTENDER.
import process from "node:process";
import express from "express";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import expressSessionModule from "express-session";
import { RedisStore as ConnectRedisStore } from "connect-redis";
import connectPgSimpleModule from "connect-pg-simple";
import pg from "pg";
import postgres from "postgres";
import { createClient } from "redis";
import { MemoryStore } from "../../src/stores/memory.ts";
import { RedisStore } from "../../src/stores/redis.ts";
import {
  announce,
  BARE_BODY,
  type BenchConfig,
  body,
  COOKIE_NAME,
  exitOnSignal,
  IDLE_SECONDS,
  importOptional,
  readConfig,
  requirePostgres,
  requireRedis,
  SECRET,
} from "./_common.ts";

// express-session ships no types and @types/express-session is not installed: declare what is used.
type ExpressSessionStore = unknown;
const expressSession = expressSessionModule as unknown as (
  options: Record<string, unknown>,
) => RequestHandler;
// Nor does connect-pg-simple: it takes express-session and answers the store class.
const connectPgSimple = connectPgSimpleModule as unknown as (
  session: unknown,
) => new (options: Record<string, unknown>) => ExpressSessionStore;

/**
 * Statements the server's PostgreSQL client sent, counted by the client itself (postgres.js's `debug`
 * hook, a wrapped `pg` `Pool.query`) and served at /__pg_statements for the harness's probe.
 */
let pgStatements = 0;
function countStatements(app: express.Express): void {
  app.get("/__pg_statements", (_req, res) => res.type("text/plain").send(String(pgStatements)));
}

interface CounterAccess {
  create(req: Request): void;
  read(req: Request): number;
  increment(req: Request): number;
}

// deno-lint-ignore no-explicit-any
const sessionOf = (req: Request): any => (req as any).session;

/** Our Session: get/set. */
const ours: CounterAccess = {
  create(req) {
    sessionOf(req).set("n", 1);
  },
  read(req) {
    return sessionOf(req).get("n") ?? 0;
  },
  increment(req) {
    const s = sessionOf(req);
    const n = (s.get("n") ?? 0) + 1;
    s.set("n", n);
    return n;
  },
};

/** express-session: properties on req.session. */
const classic: CounterAccess = {
  create(req) {
    sessionOf(req).n = 1;
  },
  read(req) {
    return sessionOf(req).n ?? 0;
  },
  increment(req) {
    const s = sessionOf(req);
    s.n = (s.n ?? 0) + 1;
    return s.n;
  },
};

function send(res: Response, text: string): void {
  res.type("text/plain").send(text);
}

function routes(app: express.Express, access: CounterAccess | undefined): void {
  app.get("/bare", (_req, res) => send(res, BARE_BODY));
  app.get("/new", (req, res) => {
    access?.create(req);
    send(res, body(1));
  });
  app.get("/read", (req, res) => send(res, body(access ? access.read(req) : 0)));
  app.get("/write", (req, res) => send(res, body(access ? access.increment(req) : 1)));
}

/** The floor: an empty middleware. */
const noop: RequestHandler = function noopMiddleware(_req: Request, _res: Response, next: NextFunction) {
  next();
};

function expressSessionOptions(store?: ExpressSessionStore): Record<string, unknown> {
  // Closest to the library's defaults: signed cookie "sid", nothing saved or sent for an untouched
  // session, HttpOnly, SameSite=Lax, a 24-hour lifetime.
  return {
    secret: SECRET,
    name: COOKIE_NAME,
    resave: false,
    saveUninitialized: false,
    store,
    cookie: { path: "/", httpOnly: true, sameSite: "lax", maxAge: IDLE_SECONDS * 1000 },
  };
}

async function build(config: BenchConfig): Promise<{ app: express.Express; close(): Promise<unknown> }> {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  let close: () => Promise<unknown> = () => Promise.resolve();
  switch (config.contender) {
    case "none":
      routes(app, undefined);
      break;
    case "noop":
      app.use(noop);
      routes(app, undefined);
      break;
    case "ours-memory":
    case "ours-redis":
    case "ours-postgres": {
      const adapter = await importOptional("src/adapters/express.ts");
      if (adapter?.session === undefined) {
        console.log("SKIP src/adapters/express.ts is missing or exports no session()");
        process.exit(3);
      }
      let store;
      if (config.contender === "ours-redis") {
        const redis = new RedisStore({
          host: "127.0.0.1",
          port: requireRedis(config),
          keyPrefix: `bench:express-ours:${process.pid}:`,
        });
        await redis.init();
        close = () => redis.close();
        store = redis;
      } else if (config.contender === "ours-postgres") {
        const { url, schema } = requirePostgres(config);
        const { PostgresStore } = await importOptional("src/stores/postgres.ts") ?? {};
        if (PostgresStore === undefined) {
          console.log("SKIP src/stores/postgres.ts is missing");
          process.exit(3);
        }
        // A pool of 10, as pg's default for the peer; the hook counts statements for the probe.
        const sql = postgres(url, { max: 10, onnotice: () => {}, debug: () => pgStatements++ });
        const pgStore = new PostgresStore({ client: sql, tableName: `${schema}.ours_${process.pid}` });
        await pgStore.init();
        countStatements(app);
        close = async () => {
          await pgStore.close();
          await sql.end({ timeout: 5 });
        };
        store = pgStore;
      } else {
        store = new MemoryStore();
      }
      // The cookie every contender here uses (`sid`, persistent), not the drop-in's express-session defaults
      // (`connect.sid`, a browser-session cookie); a baseline without those options ignores them.
      app.use(adapter.session({ secret: SECRET, store, name: "sid", cookie: { persistent: true } } as never));
      routes(app, ours);
      break;
    }
    case "express-session-memory":
      app.use(expressSession(expressSessionOptions()));
      routes(app, classic);
      break;
    case "express-session-redis": {
      const client = createClient({ socket: { host: "127.0.0.1", port: requireRedis(config) } });
      client.on("error", () => {});
      await client.connect();
      close = () => client.close();
      const store = new ConnectRedisStore({ client, prefix: `bench:express-session:${process.pid}:` });
      app.use(expressSession(expressSessionOptions(store)));
      routes(app, classic);
      break;
    }
    case "express-session-postgres": {
      const { url, schema } = requirePostgres(config);
      const pool = new pg.Pool({ connectionString: url, max: 10 });
      pool.on("error", () => {});
      const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
      (pool as unknown as { query: typeof query }).query = (...args) => {
        pgStatements++;
        return query(...args);
      };
      countStatements(app);
      const PgSessionStore = connectPgSimple(expressSessionModule);
      const store = new PgSessionStore({
        pool,
        schemaName: schema,
        tableName: `peer_${process.pid}`,
        createTableIfMissing: true,
      });
      close = () => pool.end();
      app.use(expressSession(expressSessionOptions(store)));
      routes(app, classic);
      break;
    }
    default:
      throw new Error(`unknown Express contender ${config.contender}`);
  }
  return { app, close };
}

const config = readConfig();
const { app, close } = await build(config);
const server = app.listen(config.port, "127.0.0.1", () => {
  const address = server.address();
  announce(typeof address === "object" && address ? address.port : config.port);
});
exitOnSignal(async () => {
  server.close();
  await close();
});
