/**
 * Server-side sessions for Deno, Node and Bun web frameworks: a signed cookie
 * carries the session id, the data lives in a store.
 *
 * This entry keeps the original `sessions` module's names working as a
 * drop-in (`OakSession`, `OpineSession`, `MemoryStore`, `SqliteStore`, `RedisStore`,
 * `WebdisStore`), exports `CookieStore` (sessions sealed into the cookie) and
 * the framework-independent core. Each framework
 * has its own entry exporting the same `session()` middleware name:
 * `src/adapters/hono.ts`, `src/adapters/oak.ts`, `src/adapters/fetch.ts`,
 * `src/adapters/express.ts`, `src/adapters/koa.ts`, `src/adapters/opine.ts`,
 * `src/adapters/fresh.ts` (`./hono`, `./oak`, `./fetch`... as package subpaths:
 * `web-sessions/hono` on npm, `@sessions/sessions/hono` on JSR).
 *
 * This entry is Web-only: it imports no framework, no database driver and no
 * `node:` module, and its types name none of theirs (`OakSession` takes any
 * app of Oak's shape), so it loads and type-checks on every runtime without
 * an optional peer installed. Drivers load when a store first needs them.
 *
 * @example The original Oak example
 * ```ts
 * import { Application, Router } from "@oakserver/oak";
 * import { OakSession } from "./mod.ts";
 *
 * const app = new Application();
 * const session = new OakSession(app);
 * const router = new Router();
 * router.get("/", async (context) => {
 *   const count = await context.state.session.get("pageCount");
 *   await context.state.session.set("pageCount", count === undefined ? 0 : count + 1);
 *   context.response.body = `Visited page ${await context.state.session.get("pageCount")} times`;
 * });
 * app.use(router.routes());
 * console.log(session.manager.cookieName); // "sid"
 * ```
 *
 * @module
 */

export { OakSession } from "./src/adapters/oak.ts";
export { OpineSession } from "./src/adapters/opine.ts";
export { MemoryStore } from "./src/stores/memory.ts";
export type { MemoryStoreOptions } from "./src/stores/memory.ts";
export { SqliteStore } from "./src/stores/sqlite.ts";
export type { SqliteDatabase, SqliteStoreOptions } from "./src/stores/sqlite.ts";
export { RedisStore } from "./src/stores/redis.ts";
export type { RedisStoreOptions } from "./src/stores/redis.ts";
export { WebdisStore } from "./src/stores/webdis.ts";
export type { WebdisStoreOptions } from "./src/stores/webdis.ts";
export { CookieStore } from "./src/stores/cookie.ts";
export type { CookieStoreOptions, RevocationCheck, RevocationHook } from "./src/stores/cookie.ts";

export { SessionManager } from "./src/core.ts";
export type {
  CookieOptions,
  RequestFacts,
  ResponseFacts,
  SameSite,
  SecurityEvent,
  SecurityEventType,
  SessionOptions,
} from "./src/core.ts";
export { MAX_DETAILS_BYTES, Session } from "./src/session.ts";
export type { LogInOptions, SessionData, UserSessionInfo } from "./src/session.ts";
export {
  CorruptRecordError,
  SessionConflictError,
  SessionLimitError,
  SessionStoreError,
  SessionTooLargeError,
  StoreContractError,
} from "./src/errors.ts";
export type { StoreOperation } from "./src/errors.ts";
export {
  applyChange,
  isSessionRecord,
  NEVER,
  setOwn,
  storedRecord,
  storeTime,
  userKey,
} from "./src/store.ts";
export type {
  MaybePromise,
  SessionMeta,
  SessionRecord,
  Store,
  StoreWrite,
  UserSessionEntry,
  WriteResult,
} from "./src/store.ts";
