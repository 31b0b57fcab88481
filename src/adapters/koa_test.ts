// Koa 3 and Koa 2 (the npm alias "koa2") behind a real node:http server, under Node and Deno.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Readable } from "node:stream";
import Koa from "koa";
import type { Middleware } from "koa";
import { MemoryStore, session, SessionStoreError } from "./koa.ts";
import type { Session, SessionOptions } from "./koa.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteFrameworkOptions } from "../testing/adapter_suite.ts";
import { FaultyStore } from "../testing/faulty_store.ts";
import { asTls, serveNodeHandler } from "../testing/node_server.ts";

// koa@2 is installed under an alias without types of its own; its API is the part @types/koa describes
// that both versions share.
const Koa2 = createRequire(import.meta.url)("koa2") as typeof Koa;
const VERSIONS = [["koa 3", Koa], ["koa 2", Koa2]] as const;

const SECRET = "koa-test-secret-0123456789-abcdefghijklm";

/** The usual Koa error-handling middleware, answering as the suite expects. */
const suiteErrors: Middleware = async (ctx, next) => {
  try {
    await next();
  } catch (error) {
    const { status, body } = suiteErrorResponse(error);
    ctx.status = status;
    ctx.body = body;
  }
};

function suiteApp(KoaApp: typeof Koa, options: SessionOptions, framework?: SuiteFrameworkOptions) {
  const app = new KoaApp();
  if (framework?.trustFrameworkProxy) app.proxy = true;
  if (framework?.defaultErrorHandling) {
    // Koa's own ctx.onerror answers; `silent` only keeps it from logging the errors the suite causes.
    app.silent = true;
  } else {
    app.use(suiteErrors);
  }
  app.use(session(options));
  app.use(async (ctx) => {
    const result = await handleSuiteRoute(ctx.session, new URL(ctx.originalUrl, "http://localhost"));
    if (result.appCookie) ctx.append("Set-Cookie", result.appCookie);
    if (result.redirect) {
      ctx.redirect(result.redirect);
      return;
    }
    ctx.status = result.status;
    ctx.body = result.body;
  });
  return serveNodeHandler(app.callback());
}

for (const [name, KoaApp] of VERSIONS) {
  adapterConformanceSuite(test, {
    name,
    createApp: (options, framework) => suiteApp(KoaApp, options, framework),
  });
}

const sessionCookies = (response: Response) =>
  response.headers.getSetCookie().filter((c) => c.startsWith("sid="));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An app with the session middleware first, `routes` after it, and Koa's own error handling. */
async function withApp(
  KoaApp: typeof Koa,
  routes: (app: Koa) => void,
  body: (h: { origin: string; store: FaultyStore; memory: MemoryStore; errors: unknown[] }) => Promise<void>,
  options: SessionOptions = {},
): Promise<void> {
  const memory = new MemoryStore();
  const store = new FaultyStore(memory);
  const errors: unknown[] = [];
  const app = new KoaApp();
  app.on("error", (error) => errors.push(error));
  app.use(session({ store, secret: SECRET, ...options }));
  routes(app);
  const server = await serveNodeHandler(app.callback());
  try {
    await body({ origin: server.origin, store, memory, errors });
  } finally {
    await server.close!();
  }
}

for (const [name, KoaApp] of VERSIONS) {
  const it = (title: string, fn: () => Promise<void>) => test(`${name}: ${title}`, fn);

  it("ctx.session = null (koa-session's logout) is refused, naming destroy(): here it would not log out", async () => {
    await withApp(KoaApp, (app) => {
      app.use((ctx) => {
        if (ctx.path === "/login") ctx.session.user = "ada";
        if (ctx.path === "/logout") (ctx as unknown as { session: unknown }).session = null;
        if (ctx.path === "/same") {
          const same = ctx.session;
          ctx.session = same; // assigning the session itself changes nothing
        }
        ctx.body = { user: ctx.session.user ?? null };
      });
    }, async ({ origin, errors }) => {
      const login = await fetch(`${origin}/login`);
      const cookie = sessionCookies(login)[0].split(";")[0];
      const logout = await fetch(`${origin}/logout`, { headers: { cookie } });
      assert.equal(logout.status, 500);
      assert.deepEqual(sessionCookies(logout), []);
      assert.match(String(errors[0]), /ctx\.session cannot be replaced: .*"await ctx\.session\.destroy\(\)"/);
      assert.deepEqual(await (await fetch(`${origin}/same`, { headers: { cookie } })).json(), {
        user: "ada",
      });
    });
  });

  it("ctx.session.views = n, as with koa-session: properties are keys, methods stay methods, maxAge is the lifetime", async () => {
    await withApp(KoaApp, (app) => {
      app.use((ctx) => {
        if (ctx.path === "/bad") {
          try {
            (ctx.session as unknown as Record<string, unknown>).flash = "x";
            ctx.body = "accepted";
          } catch (error) {
            ctx.body = (error as Error).message;
          }
          return;
        }
        ctx.session.views = (ctx.session.views ?? 0) + 1;
        if (ctx.path === "/remember") ctx.session.maxAge = 86_400_000 * 30;
        if (ctx.path === "/forget") ctx.session.maxAge = "session";
        delete ctx.session.never;
        ctx.body = {
          views: ctx.session.views,
          keys: Object.keys(ctx.session),
          maxAge: ctx.session.maxAge ?? null,
        };
      });
    }, async ({ origin }) => {
      const first = await fetch(origin + "/");
      const cookie = first.headers.getSetCookie()[0].split(";")[0];
      assert.deepEqual(await first.json(), { views: 1, keys: ["views"], maxAge: null });
      const remember = await fetch(origin + "/remember", { headers: { cookie } });
      assert.deepEqual(await remember.json(), { views: 2, keys: ["views"], maxAge: 2_592_000_000 });
      assert.match(remember.headers.getSetCookie()[0], /Max-Age=2592000/);
      const forget = await fetch(origin + "/forget", { headers: { cookie } });
      assert.deepEqual(await forget.json(), { views: 3, keys: ["views"], maxAge: "session" });
      assert.doesNotMatch(forget.headers.getSetCookie()[0], /Max-Age/);
      const bad = await fetch(origin + "/bad", { headers: { cookie } });
      assert.match(
        await bad.text(),
        /Cannot assign session property "flash".*session\.set\("flash", value\)/,
      );
    });
  });

  it("ctx.session.userId stays the app's own key, as in koa-session, beside logIn()", async () => {
    await withApp(KoaApp, (app) => {
      app.use(async (ctx) => {
        if (ctx.path === "/login") {
          await ctx.session.logIn("u-7");
          ctx.session.userId = 42;
        }
        ctx.body = {
          userId: ctx.session.userId ?? null,
          listed: (await ctx.session.sessionsOfUser()).length,
        };
      });
    }, async ({ origin }) => {
      const login = await fetch(origin + "/login");
      const cookie = login.headers.getSetCookie()[0].split(";")[0];
      assert.deepEqual(await login.json(), { userId: 42, listed: 1 });
      assert.deepEqual(await (await fetch(origin + "/", { headers: { cookie } })).json(), {
        userId: 42,
        listed: 1,
      });
    });
  });

  it("a store failure at commit reaches Koa's own error handler: 503, no Set-Cookie, app 'error' event", async () => {
    await withApp(KoaApp, (app) => {
      app.use((ctx) => {
        ctx.session.set("user", "ada");
        ctx.append("Set-Cookie", "theme=dark; Path=/");
        ctx.redirect("/elsewhere");
      });
    }, async ({ origin, store, memory, errors }) => {
      store.failNext("set", new Error("connection reset"));
      const response = await fetch(origin + "/", { redirect: "manual" });
      assert.equal(response.status, 503);
      assert.deepEqual(response.headers.getSetCookie(), []);
      await response.body?.cancel();
      assert.equal(memory.size, 0);
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof SessionStoreError);
    });
  });

  it("a throwing middleware reaches Koa's error handling and nothing is saved", async () => {
    await withApp(KoaApp, (app) => {
      app.use((ctx) => {
        ctx.session.set("x", 1);
        ctx.throw(422, "bad input");
      });
    }, async ({ origin, store, errors }) => {
      const response = await fetch(origin + "/");
      assert.equal(response.status, 422);
      assert.deepEqual(sessionCookies(response), []);
      await response.body?.cancel();
      assert.equal(store.calls.set, 0);
      assert.equal((errors[0] as Error).message, "bad input");
    });
  });

  it("a redirect is not sent before the store write completes", async () => {
    await withApp(KoaApp, (app) => {
      app.use((ctx) => {
        ctx.session.set("user", "ada");
        ctx.redirect("/home");
      });
    }, async ({ origin, store, memory }) => {
      const release = store.hold("set");
      let answered = false;
      const pending = fetch(origin + "/login", { redirect: "manual" }).then((response) => {
        answered = true;
        return response;
      });
      await sleep(80);
      assert.equal(answered, false);
      release();
      const response = await pending;
      assert.equal(response.status, 302);
      assert.equal(sessionCookies(response).length, 1);
      await response.body?.cancel();
      assert.equal(memory.size, 1);
    });
  });

  it("a streamed body carries the cookie", async () => {
    await withApp(KoaApp, (app) => {
      app.use((ctx) => {
        ctx.session.set("streamed", true);
        ctx.type = "text/plain";
        ctx.body = Readable.from(["one,", "two,", "three"]);
      });
    }, async ({ origin }) => {
      const response = await fetch(origin + "/");
      assert.equal(sessionCookies(response).length, 1);
      assert.equal(await response.text(), "one,two,three");
    });
  });

  it("Secure follows the connection, not ctx.secure: Koa's app.proxy does not decide it", async () => {
    await withApp(KoaApp, (app) => {
      app.proxy = true;
      app.use((ctx) => {
        ctx.session.set("a", 1);
        ctx.body = String(ctx.secure);
      });
    }, async ({ origin }) => {
      const response = await fetch(origin + "/", { headers: { "x-forwarded-proto": "https" } });
      assert.equal(await response.text(), "true", "Koa itself believes the proxy");
      assert.doesNotMatch(sessionCookies(response)[0], /; Secure/);
    });
  });

  it("a TLS connection (ctx.req.socket.encrypted) gets a Secure cookie", async () => {
    const app = new KoaApp();
    app.use(session({ store: new MemoryStore(), secret: SECRET }));
    app.use((ctx) => {
      ctx.session.set("a", 1);
      ctx.body = ctx.protocol;
    });
    const handler = app.callback();
    // What a TLS socket carries; node:https would need a certificate. Koa's own ctx.protocol reads it too.
    const server = await serveNodeHandler(asTls(handler));
    try {
      const response = await fetch(server.origin + "/");
      assert.equal(await response.text(), "https");
      assert.match(sessionCookies(response)[0], /; Secure/);
    } finally {
      await server.close();
    }
  });

  it("ctx.session is typed without a declaration in the app", async () => {
    await withApp(KoaApp, (app) => {
      app.use((ctx) => {
        const current: Session = ctx.session;
        const typed = ctx.session as Session<{ visits: number }>;
        typed.set("visits", (typed.get("visits") ?? 0) + 1);
        ctx.body = String(current.get("visits"));
      });
    }, async ({ origin }) => {
      assert.equal(await (await fetch(origin + "/")).text(), "1");
    });
  });
}
