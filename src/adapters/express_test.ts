// Express 5 and Express 4 (the npm alias "express4") behind a real node:http server, under Node and Deno.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import express from "express";
import type { ErrorRequestHandler, Express } from "express";
import { MemoryStore, session } from "./express_npm.ts";
import type { Session, SessionOptions } from "./express_npm.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteFrameworkOptions } from "../testing/adapter_suite.ts";
import { FaultyStore } from "../testing/faulty_store.ts";
import { asTls, serveNodeHandler } from "../testing/node_server.ts";

// express@4 is installed under an alias without types of its own; its API is the part @types/express
// describes that both versions share.
const express4 = createRequire(import.meta.url)("express4") as typeof express;
const VERSIONS = [["express 5", express], ["express 4", express4]] as const;

const SECRET = "express-test-secret-0123456789-abcdefgh";

const errorHandler: ErrorRequestHandler = (error, _req, res, _next) => {
  const { status, body } = suiteErrorResponse(error);
  res.status(status).type("text").send(body);
};

function suiteApp(createExpress: typeof express, options: SessionOptions, framework?: SuiteFrameworkOptions) {
  const app = createExpress();
  if (framework?.trustFrameworkProxy) app.set("trust proxy", true);
  // The suite checks this library's defaults; the drop-in's own (connect.sid, a browser-session cookie, as
  // express-session has them) are checked below.
  app.use(session({ ...options, cookie: { name: "sid", persistent: true, ...options.cookie } }));
  // Express 4 does not catch rejected promises, so the route hands its failures to next() itself.
  app.use((req, res, next) => {
    handleSuiteRoute(req.session, new URL(req.originalUrl, "http://localhost")).then((result) => {
      if (result.appCookie) res.append("Set-Cookie", result.appCookie);
      if (result.redirect) res.redirect(result.redirect);
      else res.status(result.status).type("text").send(result.body);
    }, next);
  });
  if (framework?.defaultErrorHandling) {
    // Express's own final handler answers; "test" only keeps it from logging the errors the suite causes.
    app.set("env", "test");
  } else {
    app.use(errorHandler);
  }
  return serveNodeHandler(app);
}

for (const [name, createExpress] of VERSIONS) {
  adapterConformanceSuite(test, {
    name,
    createApp: (options, framework) => suiteApp(createExpress, options, framework),
  });
}

interface Harness {
  app: Express;
  store: FaultyStore;
  memory: MemoryStore;
  /** Sends a request with the harness's cookie jar; keeps the session cookie it gets back. */
  request(path: string, init?: RequestInit): Promise<Response>;
  cookie: string | undefined;
}

/**
 * Runs `body` against an app with the session middleware, the routes
 * `routes` adds, and the suite's error handler after them.
 */
async function withApp(
  createExpress: typeof express,
  routes: (app: Express) => void,
  body: (harness: Harness) => Promise<void>,
  options: SessionOptions = {},
): Promise<void> {
  const memory = new MemoryStore();
  const store = new FaultyStore(memory);
  const app = createExpress();
  app.set("env", "test"); // keeps Express's final handler from logging the errors these tests cause
  app.use(session({ store, secret: SECRET, name: "sid", cookie: { persistent: true }, ...options }));
  routes(app);
  app.use(errorHandler);
  const server = await serveNodeHandler(app);
  const harness: Harness = {
    app,
    store,
    memory,
    cookie: undefined,
    async request(path, init = {}) {
      const headers = new Headers(init.headers);
      if (harness.cookie) headers.set("cookie", harness.cookie);
      const response = await fetch(server.origin + path, { ...init, headers, redirect: "manual" });
      const sid = response.headers.getSetCookie().find((c) => c.startsWith("sid="));
      if (sid) harness.cookie = sid.split(";")[0];
      return response;
    },
  };
  try {
    await body(harness);
  } finally {
    await server.close!();
  }
}

const sessionCookies = (response: Response) =>
  response.headers.getSetCookie().filter((c) => c.startsWith("sid="));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const [name, createExpress] of VERSIONS) {
  const it = (title: string, fn: () => Promise<void>) => test(`${name}: ${title}`, fn);

  it("res.json, res.end, res.sendStatus and res.sendFile all carry the cookie", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sessions-express-"));
    const file = join(dir, "page.txt");
    writeFileSync(file, "file body");
    try {
      await withApp(createExpress, (app) => {
        app.get("/json", (req, res) => {
          req.session.set("via", "json");
          res.json({ ok: true });
        });
        app.get("/end", (req, res) => {
          req.session.set("via", "end");
          res.setHeader("content-type", "text/plain");
          res.end("ended");
        });
        app.get("/status", (req, res) => {
          req.session.set("via", "status");
          res.sendStatus(204);
        });
        app.get("/file", (req, res) => {
          req.session.set("via", "file");
          res.sendFile(file);
        });
        app.get("/peek", (req, res) => {
          res.send(String(req.session.get("via")));
        });
      }, async (h) => {
        for (
          const [path, status, body] of [
            ["/json", 200, '{"ok":true}'],
            ["/end", 200, "ended"],
            ["/status", 204, ""],
            ["/file", 200, "file body"],
          ] as const
        ) {
          h.cookie = undefined;
          const response = await h.request(path);
          assert.equal(response.status, status, path);
          assert.equal(await response.text(), body, path);
          assert.equal(sessionCookies(response).length, 1, path);
          assert.equal(await (await h.request("/peek")).text(), path.slice(1), path);
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a redirect is not sent before the store write completes", async () => {
    await withApp(createExpress, (app) => {
      app.post("/login", (req, res) => {
        req.session.set("user", "ada");
        res.redirect(303, "/home");
      });
    }, async (h) => {
      const release = h.store.hold("set");
      let answered = false;
      const pending = h.request("/login", { method: "POST" }).then((response) => {
        answered = true;
        return response;
      });
      await sleep(80);
      assert.equal(answered, false, "the redirect waits for the store");
      assert.equal(h.memory.size, 0);
      release();
      const response = await pending;
      assert.equal(response.status, 303);
      assert.equal(response.headers.get("location"), "/home");
      assert.equal(sessionCookies(response).length, 1);
      assert.equal(h.memory.size, 1);
    });
  });

  it("streaming with res.write: headers and chunks wait for the commit, then flow in order", async () => {
    await withApp(createExpress, (app) => {
      app.get("/stream", async (req, res) => {
        req.session.set("streamed", true);
        res.setHeader("content-type", "text/plain");
        res.write("one,");
        await sleep(10);
        res.write("two,");
        res.end("three");
      });
    }, async (h) => {
      const release = h.store.hold("set");
      let answered = false;
      const pending = h.request("/stream").then((response) => {
        answered = true;
        return response;
      });
      await sleep(80);
      assert.equal(answered, false, "no header leaves before the commit");
      release();
      const response = await pending;
      assert.equal(sessionCookies(response).length, 1);
      assert.equal(await response.text(), "one,two,three");
    });
  });

  it("a piped stream, paused while the commit runs, resumes and delivers everything", async () => {
    // A small first chunk: once replayed it leaves the socket buffer far from full, so the socket
    // itself would never emit the "drain" the paused pipe waits for.
    const chunks = ["start:", ...Array.from({ length: 64 }, () => "x".repeat(64 * 1024))];
    await withApp(createExpress, (app) => {
      app.get("/big", (req, res) => {
        req.session.set("big", true);
        res.setHeader("content-type", "application/octet-stream");
        Readable.from(chunks).pipe(res);
      });
    }, async (h) => {
      const response = await h.request("/big");
      assert.equal(sessionCookies(response).length, 1);
      assert.equal((await response.arrayBuffer()).byteLength, chunks.join("").length);
    });
  });

  it("an explicit res.writeHead is held too, and the cookie joins its headers", async () => {
    await withApp(createExpress, (app) => {
      app.get("/head", (req, res) => {
        req.session.set("a", 1);
        res.writeHead(201, { "content-type": "text/plain", "x-app": "yes" });
        res.end("created");
      });
    }, async (h) => {
      const response = await h.request("/head");
      assert.equal(response.status, 201);
      assert.equal(response.headers.get("x-app"), "yes");
      assert.equal(sessionCookies(response).length, 1);
      assert.equal(await response.text(), "created");
    });
  });

  it("a held call that throws when replayed goes to next(err), as a handler's error would", async () => {
    const seen: unknown[] = [];
    await withApp(createExpress, (app) => {
      app.get("/", (req, res) => {
        req.session.set("a", 1);
        res.end("done");
        res.writeHead(500); // throws ERR_HTTP_HEADERS_SENT without the session middleware too
      });
      app.use((error: unknown, _req: unknown, _res: unknown, next: (error: unknown) => void) => {
        seen.push(error);
        next(error);
      });
    }, async (h) => {
      const response = await h.request("/");
      assert.equal(await response.text(), "done");
      await sleep(10);
      assert.equal((seen[0] as { code?: string }).code, "ERR_HTTP_HEADERS_SENT");
    });
  });

  it("next(err) reaches the error handler, and nothing is saved", async () => {
    await withApp(createExpress, (app) => {
      app.get("/fail", (req, _res, next) => {
        req.session.set("x", 1);
        next(new Error("boom"));
      });
    }, async (h) => {
      const response = await h.request("/fail");
      assert.equal(response.status, 500);
      assert.equal(await response.text(), "error:Error");
      assert.deepEqual(sessionCookies(response), []);
      assert.equal(h.store.calls.set, 0);
    });
  });

  it("next(err) with Express's own final handler: 500, nothing saved", async () => {
    const memory = new MemoryStore();
    const app = createExpress();
    app.set("env", "test"); // keeps Express from logging the stack
    app.use(session({ store: memory, secret: SECRET }));
    app.get("/fail", (req, _res, next) => {
      req.session.set("x", 1);
      next(new Error("boom"));
    });
    const server = await serveNodeHandler(app);
    try {
      const response = await fetch(server.origin + "/fail");
      assert.equal(response.status, 500);
      assert.deepEqual(response.headers.getSetCookie(), []);
      assert.equal(memory.size, 0);
      const notFound = await fetch(server.origin + "/nowhere");
      assert.equal(notFound.status, 404);
      await notFound.body?.cancel();
    } finally {
      await server.close!();
    }
  });

  it("a store failure at commit reaches the error handler with none of the handler's headers", async () => {
    await withApp(createExpress, (app) => {
      app.get("/go", (req, res) => {
        req.session.set("user", "ada");
        res.append("Set-Cookie", "theme=dark; Path=/");
        res.redirect("/elsewhere");
      });
    }, async (h) => {
      h.store.failNext("set", new Error("connection reset"));
      const response = await h.request("/go");
      assert.equal(response.status, 503);
      assert.equal(await response.text(), "error:SessionStoreError");
      assert.deepEqual(response.headers.getSetCookie(), []);
      assert.equal(response.headers.get("location"), null);
      assert.equal(h.memory.size, 0);
    });
  });

  it("headers set before the session middleware survive on the error response", async () => {
    const memory = new MemoryStore();
    const store = new FaultyStore(memory);
    const app = createExpress();
    app.use((_req, res, next) => {
      res.setHeader("x-frame-options", "DENY");
      next();
    });
    app.use(session({ store, secret: SECRET }));
    app.get("/", (req, res) => {
      req.session.set("a", 1);
      res.setHeader("x-route", "1");
      res.send("ok");
    });
    app.use(errorHandler);
    const server = await serveNodeHandler(app);
    try {
      store.failNext("set");
      const response = await fetch(server.origin + "/");
      assert.equal(response.status, 503);
      assert.equal(response.headers.get("x-frame-options"), "DENY");
      assert.equal(response.headers.get("x-route"), null);
      await response.body?.cancel();
    } finally {
      await server.close!();
    }
  });

  it("routes mounted before the session middleware pass through the shared response hooks untouched", async () => {
    const app = createExpress();
    app.get("/before", (_req, res) => {
      res.setHeader("x-route", "before");
      res.send("plain");
    });
    app.use(session({ store: new MemoryStore(), secret: SECRET }));
    app.get("/count", (req, res) => {
      const n = (req.session.get("n") ?? 0) + 1;
      req.session.set("n", n);
      res.send(String(n));
    });
    const server = await serveNodeHandler(app);
    try {
      let cookie = "";
      for (let i = 1; i <= 3; i++) {
        const response = await fetch(server.origin + "/count", { headers: { cookie } });
        assert.equal(
          await response.text(),
          String(i),
          "the session works on every request, hooked or shared",
        );
        const set = response.headers.getSetCookie();
        if (set.length > 0) cookie = set[0].split(";")[0];
      }
      const before = await fetch(server.origin + "/before", { headers: { cookie } });
      assert.equal(await before.text(), "plain");
      assert.equal(before.headers.get("x-route"), "before");
      assert.deepEqual(before.headers.getSetCookie(), []);
    } finally {
      await server.close();
    }
  });

  it("a response sent by a mounted sub-app is committed, on the first request and every one after", async () => {
    const app = createExpress();
    const sub = createExpress();
    app.use(session({ store: new MemoryStore(), secret: SECRET }));
    sub.get("/count", (req, res) => {
      const n = (req.session.get("n") ?? 0) + 1;
      req.session.set("n", n);
      res.send(String(n));
    });
    app.use("/sub", sub);
    const server = await serveNodeHandler(app);
    try {
      let cookie = "";
      for (let i = 1; i <= 4; i++) {
        const response = await fetch(server.origin + "/sub/count", { headers: { cookie } });
        assert.equal(await response.text(), String(i));
        const set = response.headers.getSetCookie();
        if (set.length > 0) cookie = set[0].split(";")[0];
      }
    } finally {
      await server.close();
    }
  });

  it("with a synchronous store the commit happens in place: nothing is held, headersSent is true at once", async () => {
    const seen: unknown[] = [];
    await withApp(createExpress, (app) => {
      app.get("/", (req, res) => {
        req.session.set("a", 1);
        res.writeHead(200, { "content-type": "text/plain" });
        seen.push(res.headersSent, res.write("a"), res.write("b"));
        res.end("c");
      });
      app.get("/sent", (req, res) => {
        req.session.set("b", 2);
        res.send("ok");
        // What Node shows without the middleware: the response went out, so Express's error path (a throw or
        // a stray next() after this) sees headersSent and cannot write a second response into this one.
        seen.push(res.headersSent);
      });
    }, async (h) => {
      const response = await h.request("/");
      assert.equal(await response.text(), "abc");
      assert.equal(response.headers.getSetCookie().length, 1);
      const sent = await h.request("/sent");
      assert.equal(await sent.text(), "ok");
      assert.deepEqual(
        seen,
        [true, true, true, true],
        "headers sent and writes not held, as without the hook",
      );
    });
  });

  it("middleware that wraps res.end after the session middleware still works, with one commit", async () => {
    await withApp(createExpress, (app) => {
      app.use((_req, res, next) => {
        const end = res.end;
        res.end = function (this: typeof res, ...args: Parameters<typeof end>) {
          res.setHeader("x-wrapped", "yes");
          return end.apply(this, args);
        } as typeof end;
        next();
      });
      app.get("/", (req, res) => {
        req.session.set("a", 1);
        res.send("ok");
      });
    }, async (h) => {
      const response = await h.request("/");
      assert.equal(response.headers.get("x-wrapped"), "yes");
      assert.equal(sessionCookies(response).length, 1);
      assert.equal(await response.text(), "ok");
      assert.equal(h.store.calls.set, 1);
    });
  });

  it("Secure follows the connection, not req.secure: Express's 'trust proxy' does not decide it", async () => {
    await withApp(createExpress, (app) => {
      app.set("trust proxy", true);
      app.get("/", (req, res) => {
        req.session.set("a", 1);
        res.send(String(req.secure));
      });
    }, async (h) => {
      const response = await h.request("/", { headers: { "x-forwarded-proto": "https" } });
      assert.equal(await response.text(), "true", "Express itself believes the proxy");
      assert.doesNotMatch(sessionCookies(response)[0], /; Secure/);
    });
  });

  it("a TLS connection (req.socket.encrypted) gets a Secure cookie", async () => {
    const app = createExpress();
    app.use(session({ store: new MemoryStore(), secret: SECRET, name: "sid" }));
    app.get("/", (req, res) => {
      req.session.set("a", 1);
      res.send(req.protocol);
    });
    // What a TLS socket carries; node:https would need a certificate. Express's own req.protocol reads it too.
    const server = await serveNodeHandler(asTls(app));
    try {
      const response = await fetch(server.origin + "/");
      assert.equal(await response.text(), "https");
      assert.match(sessionCookies(response)[0], /; Secure/);
    } finally {
      await server.close();
    }
  });

  it("an error handler that answers next(err) with a 4xx saves the change: the status is the fact", async () => {
    await withApp(createExpress, (app) => {
      app.get("/invalid", (req, _res, next) => {
        req.session.set("attempts", 1);
        next(Object.assign(new Error("bad input"), { status: 422 }));
      });
      app.get("/peek", (req, res) => {
        res.send(String(req.session.get("attempts")));
      });
    }, async (h) => {
      const response = await h.request("/invalid");
      assert.equal(response.status, 422);
      assert.equal(sessionCookies(response).length, 1);
      await response.body?.cancel();
      assert.equal(await (await h.request("/peek")).text(), "1");
    });
  });

  it("req.session is typed without a declaration in the app", async () => {
    await withApp(createExpress, (app) => {
      app.get("/", (req, res) => {
        const current: Session = req.session;
        const typed = req.session as Session<{ visits: number }>;
        typed.set("visits", (typed.get("visits") ?? 0) + 1);
        res.send(String(current.get("visits")));
      });
    }, async (h) => {
      assert.equal(await (await h.request("/")).text(), "1");
      assert.equal(await (await h.request("/")).text(), "2");
    });
  });
}

test("express 5: a rejected async handler reaches the error handler and saves nothing", async () => {
  await withApp(express, (app) => {
    app.get("/fail", async (req) => {
      req.session.set("x", 1);
      await sleep(1);
      throw new Error("async boom");
    });
  }, async (h) => {
    const response = await h.request("/fail");
    assert.equal(response.status, 500);
    assert.equal(await response.text(), "error:Error");
    assert.equal(h.store.calls.set, 0);
  });
});
