// The express-session drop-in: property access on req.session, the callback forms, req.sessionID, the
// per-session cookie.maxAge, and express-session's options, mapped or refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import express from "express";
import type { Express } from "express";
import defaultExport, { MemoryStore, session } from "./express_npm.ts";
import type { ExpressSessionOptions } from "./express_npm.ts";
import { serveNodeHandler } from "../testing/node_server.ts";

const SECRET = "express-dropin-test-secret-0123456789-ab";

async function withApp(
  routes: (app: Express) => void,
  body: (go: (path: string) => Promise<Response>, memory: MemoryStore, now: { ms: number }) => Promise<void>,
  options: ExpressSessionOptions = {},
): Promise<void> {
  const now = { ms: Date.UTC(2026, 0, 1) };
  const memory = new MemoryStore({ now: () => now.ms });
  const app = express();
  app.set("env", "test");
  app.use(session({ store: memory, secret: SECRET, now: () => now.ms, ...options }));
  routes(app);
  app.use(
    ((error, _req, res, _next) => {
      res.status(error.status ?? 500).type("text").send(`${error.name}: ${error.message}`);
    }) as express.ErrorRequestHandler,
  );
  const server = await serveNodeHandler(app);
  let cookie = "";
  const go = async (path: string) => {
    const response = await fetch(server.origin + path, {
      headers: cookie ? { cookie } : {},
      redirect: "manual",
    });
    const sid = response.headers.getSetCookie().find((c) => c.startsWith("connect.sid="));
    if (sid) cookie = /Max-Age=0/.test(sid) ? "" : sid.split(";")[0];
    return response;
  };
  try {
    await body(go, memory, now);
  } finally {
    await server.close();
  }
}

const setCookieOf = (response: Response) =>
  response.headers.getSetCookie().find((c) => c.startsWith("connect.sid=")) ?? "";

test("the default export is the named session()", () => {
  assert.equal(defaultExport, session);
});

test("req.session = null is refused, naming destroy(): it would not log out here, so it must not pass silently", async () => {
  await withApp((app) => {
    app.get("/login", (req, res) => {
      req.session.user = "ada";
      res.send("in");
    });
    app.get("/logout", (req, res) => {
      (req as unknown as { session: unknown }).session = null;
      res.send("out");
    });
    app.get("/delete", (req, res) => {
      try {
        delete (req as unknown as { session?: unknown }).session;
        res.send("deleted");
      } catch (error) {
        res.send(`${(error as Error).name}`);
      }
    });
    app.get("/same", (req, res) => {
      const same = req.session;
      req.session = same; // assigning the session itself changes nothing
      res.json({ user: req.session.user ?? null, id: req.sessionID === req.session.id });
    });
    app.get("/me", (req, res) => {
      res.json({ user: req.session.user ?? null, enumerable: Object.keys(req).includes("session") });
    });
  }, async (go) => {
    await go("/login");
    const logout = await go("/logout");
    assert.equal(logout.status, 500);
    assert.match(
      await logout.text(),
      /TypeError: req\.session cannot be replaced: to log out, call "await req\.session\.destroy\(\)"; to drop this request's changes, "await req\.session\.reload\(\)"/,
    );
    assert.equal(await (await go("/delete")).text(), "TypeError", "nor deleted");
    assert.deepEqual(await (await go("/same")).json(), { user: "ada", id: true });
    assert.deepEqual(await (await go("/me")).json(), { user: "ada", enumerable: true });
  });
});

test('cookie.maxAge: Number.MAX_SAFE_INTEGER ("never expire") keeps the session and a valid expires', async () => {
  await withApp((app) => {
    app.get("/", (req, res) => {
      req.session.views = (req.session.views ?? 0) + 1;
      const expires = req.session.cookie.expires as Date;
      res.json({
        views: req.session.views,
        expires: Number.isNaN(expires.getTime()) ? "Invalid Date" : "ok",
      });
    });
  }, async (go) => {
    assert.deepEqual(await (await go("/")).json(), { views: 1, expires: "ok" });
    assert.deepEqual(await (await go("/")).json(), { views: 2, expires: "ok" }, "read back from the store");
  }, { cookie: { maxAge: Number.MAX_SAFE_INTEGER } });
});

test("property access is get, set and delete: saved, validated and merged per key", async () => {
  await withApp((app) => {
    app.get("/set", (req, res) => {
      req.session.views = 1;
      req.session.user = { name: "ada", roles: ["admin"] };
      req.session.cart = ["tea"];
      res.json(Object.keys(req.session).sort());
    });
    app.get("/change", (req, res) => {
      req.session.views += 1;
      req.session.user.roles.push("owner");
      delete req.session.cart;
      res.json({
        keys: Object.keys(req.session).sort(),
        has: "cart" in req.session,
        get: req.session.get("views"),
      });
    });
    app.get("/read", (req, res) => res.json({ ...req.session }));
    app.get("/bad", (req, res) => {
      try {
        req.session.when = new Date();
        res.send("accepted");
      } catch (error) {
        res.status(400).send((error as Error).message);
      }
    });
  }, async (go) => {
    assert.equal(await (await go("/set")).text(), '["cart","user","views"]');
    assert.deepEqual(await (await go("/change")).json(), { keys: ["user", "views"], has: false, get: 2 });
    assert.deepEqual(await (await go("/read")).json(), {
      views: 2,
      user: { name: "ada", roles: ["admin", "owner"] },
    });
    const bad = await go("/bad");
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /Cannot set session key "when".*Date/);
  });
});

test("the session's own names stay methods; assigning or deleting one is refused, naming what to use", async () => {
  await withApp((app) => {
    app.get("/", (req, res) => {
      const refused: string[] = [];
      for (const name of ["get", "set", "flash", "regenerate", "id", "cookie", "toJSON"]) {
        try {
          (req.session as unknown as Record<string, unknown>)[name] = 1;
          refused.push(`${name}: accepted`);
        } catch (error) {
          refused.push(`${name}: ${(error as Error).message.includes(`session.set("${name}", value)`)}`);
        }
      }
      try {
        delete (req.session as unknown as Record<string, unknown>).regenerate;
      } catch {
        refused.push("delete regenerate: refused");
      }
      res.json({ refused, isFunction: typeof req.session.regenerate === "function" });
    });
  }, async (go) => {
    assert.deepEqual(await (await go("/")).json(), {
      refused: [
        "get: true",
        "set: true",
        "flash: true",
        "regenerate: true",
        "id: true",
        "cookie: true",
        "toJSON: true",
        "delete regenerate: refused",
      ],
      isFunction: true,
    });
  });
});

test("regenerate(cb), save(cb), reload(cb), destroy(cb) call back; req.sessionID follows regenerate", async () => {
  await withApp((app) => {
    app.get("/start", (req, res) => {
      req.session.n = 1;
      res.send(req.sessionID);
    });
    app.get("/regenerate", (req, res, next) => {
      const before = req.sessionID;
      req.session.regenerate((error: unknown) => {
        if (error) return next(error);
        req.session.user = "ada";
        req.session.save((error: unknown) => {
          if (error) return next(error);
          res.json({
            changed: before !== req.sessionID,
            id: req.sessionID === req.session.id,
            n: req.session.n ?? null,
          });
        });
      });
    });
    app.get("/reload", (req, res, next) => {
      req.session.user = "eve";
      req.session.reload((error: unknown) => {
        if (error) return next(error);
        res.send(String(req.session.user));
      });
    });
    app.get("/touch", (req, res) => {
      req.session.touch();
      res.send("ok");
    });
    app.get("/destroy", (req, res, next) => {
      req.session.destroy((error: unknown) => {
        if (error) return next(error);
        res.send(String(req.session.user));
      });
    });
  }, async (go, memory, now) => {
    const id = await (await go("/start")).text();
    assert.equal(id.length > 20, true);
    assert.deepEqual(await (await go("/regenerate")).json(), { changed: true, id: true, n: null });
    assert.equal(memory.size, 1, "the old record is gone");
    assert.equal(await (await go("/reload")).text(), "ada", "reload dropped the unsaved change");
    now.ms += 60_000;
    const touched = await go("/touch");
    assert.match(setCookieOf(touched), /^connect\.sid=/, "touch() sends the cookie again");
    assert.equal(await (await go("/destroy")).text(), "undefined");
    assert.equal(memory.size, 0);
  });
});

test("cookie.maxAge per session: remember me beyond the configured timeouts, or a browser-session cookie", async () => {
  const DAY = 86_400_000;
  await withApp((app) => {
    app.get("/remember", (req, res) => {
      req.session.user = "ada";
      req.session.cookie.maxAge = 30 * DAY;
      res.json({ maxAge: req.session.cookie.maxAge, expires: req.session.cookie.expires });
    });
    app.get("/forget", (req, res) => {
      req.session.cookie.expires = null;
      res.json({ maxAge: req.session.cookie.maxAge });
    });
    app.get("/who", (req, res) => res.send(String(req.session.user)));
  }, async (go, _memory, now) => {
    const remember = await go("/remember");
    const body = await remember.json();
    assert.equal(body.maxAge, 30 * DAY);
    assert.equal(Date.parse(body.expires), now.ms + 30 * DAY);
    assert.match(setCookieOf(remember), /Max-Age=2592000/);
    // Past the configured 7-day absolute timeout, and 20 idle days later: still there.
    now.ms += 20 * DAY;
    assert.equal(await (await go("/who")).text(), "ada");
    now.ms += 9 * DAY;
    assert.equal(await (await go("/who")).text(), "ada", "29 days after login");
    now.ms += 2 * DAY;
    // 31 days after login: the lifetime moved the absolute deadline out to 30 days, no further.
    assert.equal(await (await go("/who")).text(), "undefined");

    await go("/remember");
    const forget = await go("/forget");
    assert.deepEqual(await forget.json(), { maxAge: null });
    assert.doesNotMatch(setCookieOf(forget), /Max-Age|Expires/, "a browser-session cookie");
    now.ms += 60 * 60_000;
    assert.equal(await (await go("/who")).text(), "ada");
  });
});

test("defaults follow express-session where apps depend on them: connect.sid, a browser-session cookie", async () => {
  await withApp((app) => {
    app.get("/", (req, res) => {
      req.session.n = 1;
      res.send("ok");
    });
  }, async (go) => {
    const cookie = setCookieOf(await go("/"));
    assert.match(cookie, /^connect\.sid=.*; Path=\/; HttpOnly; SameSite=Lax$/);
  });
});

test("express-session options with an equivalent are mapped: name, cookie.maxAge, sameSite, rolling, proxy", async () => {
  const memory = new MemoryStore();
  const app = express();
  app.use(session({
    store: memory,
    secret: [SECRET, "an-older-secret-0123456789-abcdefghijkl"],
    name: "app.sid",
    cookie: { maxAge: 3_600_000, sameSite: true, secure: "auto" },
    rolling: true,
    proxy: true,
    resave: false,
    saveUninitialized: false,
  }));
  app.get("/", (req, res) => {
    req.session.n = (req.session.n ?? 0) + 1;
    res.send(String(req.session.n));
  });
  app.get("/read", (req, res) => res.send(String(req.session.n)));
  const server = await serveNodeHandler(app);
  try {
    const first = await fetch(server.origin + "/", { headers: { "x-forwarded-proto": "https" } });
    const cookie = first.headers.getSetCookie()[0];
    assert.match(cookie, /^app\.sid=[^;]+; Max-Age=3600; Path=\/; HttpOnly; Secure; SameSite=Strict$/);
    const read = await fetch(server.origin + "/read", { headers: { cookie: cookie.split(";")[0] } });
    assert.equal(await read.text(), "1");
    assert.equal(read.headers.getSetCookie().length, 1, "rolling: the cookie comes back on every response");
  } finally {
    await server.close();
  }
});

test("options that cannot be honoured are refused at construction, saying what to use instead", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ resave: true }, /"resave": only false/],
    [{ saveUninitialized: true }, /"saveUninitialized": only false/],
    [{ unset: "keep" }, /"unset".*destroy\(\)/],
    [{ unset: "destroy" }, /"unset".*destroy\(\)/],
    [{ genid: () => "1" }, /"genid".*CSPRNG/],
    [
      { store: { load() {}, createSession() {}, get() {}, set() {}, destroy() {} } as never },
      /connect-style\) store/,
    ],
    [{ idleTimout: 60 }, /Unknown session option "idleTimout": did you mean "idleTimeout"\?/],
    [{ cookie: { maxAge: 1000, expires: new Date() } as never }, /"cookie\.expires": use "cookie\.maxAge"/],
    [{ cookie: { maxAg: 1000 } as never }, /did you mean "cookie\.maxAge"/],
    [{ key: "connect.sid" } as never, /Unknown session option "key": express-session's old name for "name"/],
    [{ cookie: { colour: "red" } as never }, /known options are cookie\.name, .*cookie\.maxAge/],
    [{ cookie: { httpOnyl: true } as never }, /did you mean "cookie\.httpOnly"/],
    [{ name: "a", cookie: { name: "b" } }, /"name" or "cookie.name"/],
    [{ cookie: { maxAge: -1 } }, /"cookie.maxAge"/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => session({ secret: SECRET, ...options }),
      message,
      JSON.stringify(Object.keys(options)),
    );
  }
  assert.doesNotThrow(() => session({ secret: SECRET, resave: false, saveUninitialized: false }));
});

test("req.session.userId stays the app's own key, as in express-session, beside logIn()", async () => {
  await withApp((app) => {
    app.get("/login", async (req, res) => {
      await req.session.logIn("u-7");
      req.session.userId = 42;
      res.json({ keys: Object.keys(req.session), userId: req.session.userId });
    });
    app.get("/read", async (req, res) => {
      const sessions = await req.session.sessionsOfUser();
      res.json({ userId: req.session.userId, listed: sessions.length, current: sessions[0]?.current });
    });
  }, async (go) => {
    assert.deepEqual(await (await go("/login")).json(), { keys: ["userId"], userId: 42 });
    assert.deepEqual(await (await go("/read")).json(), { userId: 42, listed: 1, current: true });
  });
});
