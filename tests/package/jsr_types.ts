// What a Deno app using the JSR package writes: the adapters' sources without the npm entries'
// augmentations, and the declarations docs/adapters.md gives for Express, Koa and Opine. Checked by
// tests/package_node_test.ts with `deno check`; `// @ts-expect-error` lines prove the types are not `any`.
import express from "express";
import Koa from "koa";
import { Hono } from "hono";
import session, { type ExpressSession } from "../../src/adapters/express.ts";
import { type KoaSession, session as koaSession, type SessionContext } from "../../src/adapters/koa.ts";
import { session as honoSession, type SessionEnv } from "../../src/adapters/hono.ts";
import { session as opineSession } from "../../src/adapters/opine.ts";
import type { Session } from "../../mod.ts";

declare global {
  namespace Express {
    interface Request {
      session: ExpressSession;
      sessionID: string;
    }
  }
  namespace Opine {
    interface Request {
      session: Session;
    }
  }
}
declare module "koa" {
  interface ExtendableContext {
    session: KoaSession;
  }
}

const SECRET = "a-secret-of-at-least-32-bytes-long!";

const app = express();
app.use(session({ secret: SECRET }));
app.get("/", (req, res) => {
  req.session.views = (req.session.views ?? 0) + 1;
  const id: string = req.sessionID;
  // @ts-expect-error: regenerate takes a callback, not a number
  req.session.regenerate(1);
  res.send(`${id} ${req.session.views}`);
});

// Koa with the declaration, and typed through SessionContext without it.
const koa = new Koa();
koa.use(koaSession({ secret: SECRET }));
koa.use((ctx) => {
  ctx.session.set("views", 1);
  // @ts-expect-error: set needs a value
  ctx.session.set("views");
});
const typedKoa = new Koa<Koa.DefaultState, SessionContext>();
typedKoa.use(koaSession({ secret: SECRET }));
typedKoa.use((ctx) => {
  const session: KoaSession = ctx.session;
  ctx.body = String(session.get("views"));
});

// Hono: chained, and with SessionEnv.
const chained = new Hono().use(honoSession({ secret: SECRET })).get("/", (c) => {
  const s: Session = c.get("session");
  return c.text(String(s.get("visits")));
});
const typed = new Hono<SessionEnv<{ userId: string }>>();
typed.use(honoSession<{ userId: string }>({ secret: SECRET }));
typed.get("/", (c) => {
  // @ts-expect-error: userId is a string
  c.get("session").set("userId", 1);
  return c.text(c.get("session").get("userId") ?? "");
});

const opine = opineSession({ secret: SECRET });

export { app, chained, koa, opine, typed, typedKoa };
