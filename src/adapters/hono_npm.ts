/**
 * The npm package's `./hono` entry: {@link ./hono.ts} as it is, plus the
 * declaration that types `c.get("session")` in every Hono app, merged into
 * Hono's `ContextVariableMap` (`declare module "hono"`). JSR does not allow a
 * package to change another module's types, so this file is npm-only (left
 * out of the JSR package); Deno users type the app with `SessionEnv`.
 *
 * @module
 */

import type { Session } from "../session.ts";

export * from "./hono.ts";

declare module "hono" {
  interface ContextVariableMap {
    /** The request's session, set by the `session()` middleware. */
    session: Session;
  }
}
