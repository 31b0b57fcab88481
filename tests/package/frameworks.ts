// A TypeScript consumer of the npm package with the frameworks installed, checked under moduleResolution
// nodenext (skipLibCheck: false), node16 and bundler: `req.session`, `ctx.session` and `c.get("session")`
// are typed without a declaration in the app, as the npm entries promise; `// @ts-expect-error` lines prove
// the types are not `any`.
import express from "express";
import Koa from "koa";
import { Hono } from "hono";
import { Application, Router } from "@oakserver/oak";
import session from "web-sessions/express";
import { session as koaSession } from "web-sessions/koa";
import { session as honoSession, type SessionEnv } from "web-sessions/hono";
import { session as oakSession } from "web-sessions/oak";
import { OakSession, type Session } from "web-sessions";
import { storeConformanceSuite } from "web-sessions/testing";
import { MemoryStore } from "web-sessions/stores/memory";
import { test } from "node:test";

const SECRET = "a-secret-of-at-least-32-bytes-long!";

// Express: the express-session drop-in.
const app = express();
app.use(session({ secret: SECRET, resave: false, saveUninitialized: false, cookie: { maxAge: 60_000 } }));
app.get("/", (req, res) => {
  req.session.views = (req.session.views ?? 0) + 1;
  req.session.cookie.maxAge = 14 * 24 * 3600 * 1000;
  const id: string = req.sessionID;
  // @ts-expect-error: regenerate takes a callback, not a number
  req.session.regenerate(1);
  req.session.regenerate((error) => {
    if (error) throw error;
    res.send(`${id} ${req.session.views}`);
  });
});

// Koa: ctx.session everywhere, koa-session style.
const koa = new Koa();
koa.use(koaSession({ secret: SECRET }));
koa.use((ctx) => {
  ctx.session.views = (ctx.session.views ?? 0) + 1;
  ctx.session.maxAge = "session";
  // @ts-expect-error: set needs a value
  ctx.session.set("views");
  ctx.body = String(ctx.session.get("views"));
});

// Hono: ContextVariableMap (npm entry), and SessionEnv for typed data.
const hono = new Hono();
hono.use(honoSession({ secret: SECRET }));
hono.get("/", (c) => {
  const s: Session = c.get("session");
  s.set("visits", (s.get("visits") ?? 0) + 1);
  return c.text(String(s.get("visits")));
});
const typed = new Hono<SessionEnv<{ userId: string }>>().use(
  honoSession<{ userId: string }>({ secret: SECRET }),
);
typed.get("/", (c) => {
  const userId: string | undefined = c.get("session").get("userId");
  // @ts-expect-error: userId is a string
  c.get("session").set("userId", 1);
  return c.text(userId ?? "");
});

// Oak (npm build): the original API and the middleware, on an app and on a router.
const oak = new Application();
new OakSession(oak, new MemoryStore(), { secret: SECRET });
oak.use(oakSession({ secret: SECRET }));
const router = new Router();
router.use(oakSession({ secret: SECRET }));
router.get("/", async (context) => {
  await context.state.session.set("pageCount", 1);
});
oak.use(router.routes());

storeConformanceSuite(test, {
  name: "MemoryStore",
  createStore: () => new MemoryStore(),
  dump: (store) => Promise.resolve(JSON.stringify(store)),
});

export { app, hono, koa, oak, typed };
