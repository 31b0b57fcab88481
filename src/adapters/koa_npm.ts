/// <reference types="koa" preserve="true" />
/**
 * The npm package's `./koa` entry: {@link ./koa.ts} as it is, plus the
 * declaration that types `ctx.session` in every Koa app, merged into Koa's
 * `ExtendableContext` (`declare module "koa"`). JSR does not allow a package
 * to change another module's types, so this file is npm-only (left out of the
 * JSR package); Deno users add the declaration themselves (docs/adapters.md).
 *
 * @module
 */

import type { KoaSession } from "./koa.ts";

export * from "./koa.ts";

declare module "koa" {
  interface ExtendableContext {
    /** The request's session, set by the `session()` middleware. */
    session: KoaSession;
  }
}
