// An app written for express-session, running on this library: the only change is the import line below
// (and a secret of at least 32 bytes). Its test runs the very same app on express-session too.
//   node --import tsx examples/express_session_dropin.ts     then open http://localhost:8000 (PORT changes it)
// Try /, /cart/add?item=tea, /login?user=ada&remember=1, /whoami, /logout.
import { randomBytes } from "node:crypto";
import process from "node:process";
import express from "express";
import type { RequestHandler } from "express";
import session from "../src/adapters/express_npm.ts"; // was: import session from "express-session"; (web-sessions/express)

/** The session middleware factory the app is built with: this library's, or express-session's in the test. */
// deno-lint-ignore no-explicit-any
export type SessionFactory = (options: any) => RequestHandler;

/** Builds the app, exactly as an express-session app builds it. */
export function createApp(secret: string, makeSession: SessionFactory = session): express.Express {
  const app = express();
  app.use(makeSession({
    secret,
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: "lax" },
  }));

  app.get("/", (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.type("text").send(`views: ${req.session.views}`);
  });

  app.get("/cart/add", (req, res) => {
    req.session.cart = req.session.cart || [];
    req.session.cart.push(String(req.query.item));
    res.json(req.session.cart);
  });

  app.get("/cart/clear", (req, res) => {
    delete req.session.cart;
    res.json(Object.keys(req.session).filter((key) => key !== "cookie").sort());
  });

  app.get("/login", (req, res, next) => {
    // A new id at login (session fixation), then the user, then save before the redirect.
    req.session.regenerate((error: unknown) => {
      if (error) return next(error);
      req.session.user = String(req.query.user);
      if (req.query.remember) req.session.cookie.maxAge = 14 * 24 * 3600 * 1000;
      req.session.save((error: unknown) => {
        if (error) return next(error);
        res.redirect("/whoami");
      });
    });
  });

  app.get("/whoami", (req, res) => {
    res.json({ user: req.session.user ?? null, hasId: typeof req.sessionID === "string" });
  });

  app.get("/reload", (req, res, next) => {
    req.session.scratch = "not saved";
    req.session.reload((error: unknown) => {
      if (error) return next(error);
      res.json({ scratch: req.session.scratch ?? null, user: req.session.user ?? null });
    });
  });

  app.get("/logout", (req, res, next) => {
    req.session.destroy((error: unknown) => {
      if (error) return next(error);
      res.clearCookie("connect.sid");
      res.redirect("/");
    });
  });
  return app;
}

// Started directly (not imported by its test): listen.
if (process.argv[1]?.endsWith("express_session_dropin.ts")) {
  const port = Number(process.env.PORT ?? 8000);
  const app = createApp(process.env.SESSION_SECRET ?? randomBytes(32).toString("base64url"));
  app.listen(port, () => console.log(`express-session drop-in example at http://localhost:${port}`));
}
