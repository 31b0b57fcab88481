/**
 * The npm package's `./express` entry: {@link ./express.ts} as it is, plus
 * the declaration that types `req.session` and `req.sessionID` in every
 * Express 4 and 5 app without a line of its own, merged into Express's
 * global `Express.Request` interface as express-session's types do. JSR does
 * not allow a package to change global types, so this file is npm-only (left
 * out of the JSR package); Deno users add the declaration themselves (see
 * {@link ./express.ts}).
 *
 * @module
 */

import type { ExpressSession } from "./express.ts";

export * from "./express.ts";
export { default } from "./express.ts";

declare global {
  namespace Express {
    // Express's own Request (express-serve-static-core) extends this global interface.
    interface Request {
      /**
       * The request's session, set by the `session()` middleware. Its keys
       * read and write as properties too (`req.session.views = 1`), as with
       * express-session.
       */
      session: ExpressSession;
      /** The session id, as express-session has it. A secret: keep it out of logs. */
      sessionID: string;
    }
  }
}
