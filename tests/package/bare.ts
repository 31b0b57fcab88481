// A TypeScript consumer with no optional peer installed (no framework, no driver, no @types/node), checked
// with skipLibCheck: false under moduleResolution node16, nodenext and bundler: every subpath that names no
// framework's types, and the original names from the root.
import {
  CookieStore,
  MemoryStore,
  OakSession,
  OpineSession,
  RedisStore,
  type Session,
  SessionManager,
  type SessionOptions,
  SessionStoreError,
  SqliteStore,
  type Store,
  WebdisStore,
} from "web-sessions";
import { SessionManager as CoreManager } from "web-sessions/core";
import { session as fetchSession } from "web-sessions/fetch";
import { session as freshSession, type SessionState } from "web-sessions/fresh";
import { type OakMiddleware, session as oakSession } from "web-sessions/oak";
import { session as opineSession } from "web-sessions/opine";
import expressSession, { type ExpressSession } from "web-sessions/express";
import { MemoryStore as Memory } from "web-sessions/stores/memory";
import { SqliteStore as Sqlite } from "web-sessions/stores/sqlite";
import { RedisStore as Redis } from "web-sessions/stores/redis";
import { WebdisStore as Webdis } from "web-sessions/stores/webdis";
import { DenoKvStore } from "web-sessions/stores/deno-kv";
import { PostgresStore } from "web-sessions/stores/postgres";
import { CookieStore as Cookie } from "web-sessions/stores/cookie";

const options: SessionOptions = { secret: "a-secret-of-at-least-32-bytes-long!", store: new MemoryStore() };
const stores: Store[] = [
  new Memory(),
  new Sqlite({ path: ":memory:" }),
  new Redis({ host: "127.0.0.1", port: 6379, tls: { rejectUnauthorized: false } }),
  new Webdis({ url: "http://127.0.0.1:7379" }),
  new DenoKvStore({ path: "sessions.kv" }),
  new PostgresStore({ url: "postgres://localhost/app" }),
  new Cookie({ keys: ["a-key-of-at-least-32-bytes-long-0123456789"] }),
  new CookieStore({ keys: ["a-key-of-at-least-32-bytes-long-0123456789"] }),
  new SqliteStore({ path: ":memory:" }),
  new RedisStore({ host: "127.0.0.1" }),
  new WebdisStore({ url: "http://127.0.0.1:7379" }),
];
const manager: SessionManager = new CoreManager(options);
const managers = [manager, new SessionManager({ store: new MemoryStore() })];
const handler: (request: Request) => Promise<Response> = fetchSession<{ visits: number }>(options)(
  (_request, session: Session<{ visits: number }>) => {
    session.set("visits", (session.get("visits") ?? 0) + 1);
    // @ts-expect-error: the data is typed
    session.set("visits", "one");
    return new Response(String(session.get("visits")));
  },
);
const fresh: (ctx: { req: Request; state: SessionState; next(): Promise<Response> }) => Promise<Response> =
  freshSession(options);
const oak: OakMiddleware<SessionState> = oakSession(options);
new OakSession({ use() {} });
new OpineSession({ use() {} }, options);
const opine = opineSession(options);
const express = expressSession({ secret: "a-secret-of-at-least-32-bytes-long!", resave: false });
const views: ExpressSession["views"] = 1;
const error: 503 = new SessionStoreError("read", new Error("down")).status as 503;
export { error, express, fresh, handler, managers, oak, opine, stores, views };
