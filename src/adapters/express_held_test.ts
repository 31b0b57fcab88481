// The response hook of the Express entry (src/adapters/_node_response.ts) against real Express 5, Express 4
// and a bare node:http server, with a store that answers at once (the commit happens inside the first call)
// and with one that answers later (the first call is held): every way Node lets a handler set headers keeps
// the session cookie, and a held response behaves as Node's would once sent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { get as httpGet } from "node:http";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Readable } from "node:stream";
import express from "express";
import type { ErrorRequestHandler, Express } from "express";
import { MemoryStore, session } from "./express_npm.ts";
import type { ExpressSessionOptions } from "./express_npm.ts";
import type { MaybePromise, SessionRecord, Store, StoreWrite, WriteResult } from "../store.ts";
import { serveNodeHandler } from "../testing/node_server.ts";

const express4 = createRequire(import.meta.url)("express4") as typeof express;
const SECRET = "express-held-test-secret-0123456789-abcd";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store that answers every call after `ms` milliseconds: what makes the hook hold the first call. */
class LaterStore implements Store {
  constructor(readonly inner: MemoryStore, readonly ms: number) {}
  get(key: string): Promise<SessionRecord | undefined> {
    return sleep(this.ms).then(() => this.inner.get(key));
  }
  set(key: string, write: StoreWrite): Promise<WriteResult> {
    return sleep(this.ms).then(() => this.inner.set(key, write));
  }
  delete(key: string): MaybePromise<void> {
    return sleep(this.ms).then(() => this.inner.delete(key));
  }
}

const STORES = [
  ["a store that answers at once", (memory: MemoryStore): Store => memory],
  ["a store that answers later", (memory: MemoryStore): Store => new LaterStore(memory, 15)],
] as const;
const EXPRESSES = [["express 5", express], ["express 4", express4]] as const;

const errorHandler: ErrorRequestHandler = (error, _req, res, _next) => {
  if (res.headersSent) return;
  res.status((error as { status?: number }).status ?? 500).type("text").send(
    `error:${(error as Error).name}`,
  );
};

interface App {
  memory: MemoryStore;
  origin: string;
  /** Errors that reached the process as uncaught exceptions while the test ran. */
  uncaught: unknown[];
}

async function withExpress(
  createExpress: typeof express,
  makeStore: (memory: MemoryStore) => Store,
  routes: (app: Express) => void,
  body: (app: App) => Promise<void>,
  options: ExpressSessionOptions = {},
): Promise<void> {
  const memory = new MemoryStore();
  const app = createExpress();
  app.set("env", "test");
  app.use(session({ store: makeStore(memory), secret: SECRET, name: "sid", ...options }));
  routes(app);
  app.use(errorHandler);
  await serve(app, memory, body);
}

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  memory: MemoryStore,
  body: (app: App) => Promise<void>,
): Promise<void> {
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on("uncaughtException", onUncaught);
  const server = await serveNodeHandler(handler);
  try {
    await body({ memory, origin: server.origin, uncaught });
    // Anything the hook scheduled (a replay, a late error) has run by now.
    await sleep(60);
    assert.deepEqual(uncaught, [], "nothing reached the process as an uncaught exception");
  } finally {
    process.off("uncaughtException", onUncaught);
    await server.close();
  }
}

/** A GET through node:http: fetch turns a conditional request into a `no-cache` one, which never gets a 304. */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers }));
    }).on("error", reject);
  });
}

const sessionCookies = (response: Response) =>
  response.headers.getSetCookie().filter((c) => c.startsWith("sid="));
const appCookies = (response: Response) =>
  response.headers.getSetCookie().filter((c) => !c.startsWith("sid=")).map((c) => c.split(";")[0]).sort();

/** The routes of the cookie tests: each sets a session key, then sets its own cookies one way or another. */
const COOKIE_WAYS: [string, (req: express.Request, res: express.Response) => void, string[]][] = [
  ["writeHead with an object holding a Set-Cookie list", (_req, res) => {
    res.writeHead(200, { "Set-Cookie": ["theme=dark; Path=/"], "Content-Type": "text/plain" });
    res.end("ok");
  }, ["theme=dark"]],
  ["writeHead with a lower-case set-cookie string", (_req, res) => {
    res.writeHead(200, { "set-cookie": "theme=dark" });
    res.end("ok");
  }, ["theme=dark"]],
  ["writeHead with a status message and headers", (_req, res) => {
    res.writeHead(200, "Fine", { "Set-Cookie": ["a=1", "b=2"] });
    res.end("ok");
  }, ["a=1", "b=2"]],
  ["writeHead with raw headers [name, value, ...]", (_req, res) => {
    res.writeHead(200, ["Set-Cookie", "a=1", "Set-Cookie", "b=2", "Content-Type", "text/plain"]);
    res.end("ok");
  }, ["a=1", "b=2"]],
  ["setHeader, then writeHead without Set-Cookie", (_req, res) => {
    res.setHeader("Set-Cookie", ["a=1"]);
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("ok");
  }, ["a=1"]],
  ["setHeader replacing an earlier res.cookie", (_req, res) => {
    res.cookie("old", "1");
    res.setHeader("Set-Cookie", "a=1");
    res.end("ok");
  }, ["a=1"]],
  ["appendHeader", (_req, res) => {
    res.appendHeader("Set-Cookie", "a=1");
    res.appendHeader("Set-Cookie", ["b=2"]);
    res.end("ok");
  }, ["a=1", "b=2"]],
  ["res.cookie and res.set", (_req, res) => {
    res.cookie("a", "1");
    res.set("X-Other", "x");
    res.append("Set-Cookie", "b=2");
    res.send("ok");
  }, ["a=1", "b=2"]],
  ["res.set replacing the list", (_req, res) => {
    res.cookie("old", "1");
    res.set("Set-Cookie", ["a=1"]);
    res.send("ok");
  }, ["a=1"]],
];

for (const [expressName, createExpress] of EXPRESSES) {
  for (const [storeName, makeStore] of STORES) {
    const it = (title: string, fn: () => Promise<void>) => test(`${expressName}, ${storeName}: ${title}`, fn);

    for (const [way, send, expected] of COOKIE_WAYS) {
      it(`the session cookie survives ${way}`, async () => {
        await withExpress(createExpress, makeStore, (app) => {
          app.get("/", (req, res) => {
            req.session.set("user", "ada");
            send(req, res);
          });
          app.get("/who", (req, res) => res.send(String(req.session.get("user"))));
        }, async ({ origin }) => {
          const response = await fetch(origin + "/");
          assert.equal(response.status, 200);
          assert.equal(await response.text(), "ok");
          assert.deepEqual(appCookies(response), expected);
          const cookies = sessionCookies(response);
          assert.equal(cookies.length, 1, "exactly one session cookie");
          const who = await fetch(origin + "/who", { headers: { cookie: cookies[0].split(";")[0] } });
          assert.equal(await who.text(), "ada", "the login sticks");
        });
      });
    }

    it("res.json then a throw: the client gets the JSON, the error path sees headersSent, nothing crashes", async () => {
      const seenByErrorPath: boolean[] = [];
      await withExpress(createExpress, makeStore, (app) => {
        app.get("/", (req, res, next) => {
          req.session.set("n", 1);
          res.json({ ok: true });
          next(new Error("after the response"));
        });
        app.use(
          ((error, _req, res, next) => {
            seenByErrorPath.push(res.headersSent);
            next(error);
          }) as ErrorRequestHandler,
        );
      }, async ({ origin, memory }) => {
        // Express's final handler destroys the connection of a response that has started; whether the
        // body got out first depends on the store's timing. What matters: no crash, and the server serves on.
        await fetch(origin + "/").then((r) => r.text()).catch(() => undefined);
        await sleep(40);
        assert.deepEqual(seenByErrorPath, [true]);
        assert.equal(memory.size, 1, "the response that went out committed its session");
        const again = await fetch(origin + "/missing");
        assert.equal(again.status, 404);
      });
    });

    it("res.json then next() by mistake: the client gets 200 and the JSON, not a 404", async () => {
      await withExpress(createExpress, makeStore, (app) => {
        app.get("/", (req, res, next) => {
          req.session.set("n", 1);
          res.json({ ok: true });
          next();
        });
      }, async ({ origin }) => {
        const response = await fetch(origin + "/");
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { ok: true });
        assert.equal(sessionCookies(response).length, 1);
      });
    });

    it("after end, the response refuses changes as Node does: headers throw, a late write errors", async () => {
      const seen: Record<string, unknown> = {};
      await withExpress(createExpress, makeStore, (app) => {
        app.get("/", (req, res) => {
          req.session.set("n", 1);
          res.status(201).send("first");
          seen.headersSent = res.headersSent;
          seen.writableEnded = res.writableEnded;
          for (
            const [name, call] of [
              ["set", () => res.setHeader("X-Late", "1")],
              ["append", () => res.appendHeader("X-Late", "1")],
              ["remove", () => res.removeHeader("Content-Type")],
              ["writeHead", () => res.writeHead(500)],
              ["send", () => res.status(500).send("second")],
            ] as const
          ) {
            try {
              call();
              seen[name] = "no error";
            } catch (error) {
              seen[name] = (error as { code?: string }).code;
            }
          }
          res.statusCode = 500;
          res.on("error", (error) => seen.lateWrite = (error as { code?: string }).code);
          res.write("late");
        });
      }, async ({ origin }) => {
        const response = await fetch(origin + "/");
        assert.equal(response.status, 201);
        assert.equal(await response.text(), "first");
        assert.equal(response.headers.get("x-late"), null);
        assert.equal(sessionCookies(response).length, 1);
        await sleep(30);
        assert.deepEqual(seen, {
          headersSent: true,
          writableEnded: true,
          set: "ERR_HTTP_HEADERS_SENT",
          append: "ERR_HTTP_HEADERS_SENT",
          remove: "ERR_HTTP_HEADERS_SENT",
          writeHead: "ERR_HTTP_HEADERS_SENT",
          send: "ERR_HTTP_HEADERS_SENT",
          lateWrite: "ERR_STREAM_WRITE_AFTER_END",
        });
      });
    });

    it("streaming: res.write chunks, then end, and a piped stream, all arrive after the cookie", async () => {
      await withExpress(createExpress, makeStore, (app) => {
        app.get("/chunks", async (req, res) => {
          req.session.set("via", "chunks");
          res.type("text");
          res.write("a");
          res.write(new TextEncoder().encode("b"));
          await sleep(5);
          res.end("c");
        });
        app.get("/pipe", (req, res) => {
          req.session.set("via", "pipe");
          res.type("text");
          Readable.from(Array.from({ length: 200 }, (_, i) => `${i},`)).pipe(res);
        });
      }, async ({ origin }) => {
        const chunks = await fetch(origin + "/chunks");
        assert.equal(await chunks.text(), "abc");
        assert.equal(sessionCookies(chunks).length, 1);
        const piped = await fetch(origin + "/pipe");
        assert.equal(await piped.text(), Array.from({ length: 200 }, (_, i) => `${i},`).join(""));
        assert.equal(sessionCookies(piped).length, 1);
      });
    });

    it("HEAD, a 304 from sendFile, res.redirect and flushHeaders carry the cookie", async () => {
      const dir = mkdtempSync(join(tmpdir(), "sessions-held-"));
      const file = join(dir, "page.txt");
      writeFileSync(file, "file body");
      try {
        await withExpress(createExpress, makeStore, (app) => {
          app.get("/file", (req, res) => {
            req.session.set("via", "file");
            res.sendFile(file);
          });
          app.get("/go", (req, res) => {
            req.session.set("via", "redirect");
            res.redirect("/there");
          });
          app.get("/flush", (req, res) => {
            req.session.set("via", "flush");
            res.flushHeaders();
            setTimeout(() => res.end("flushed"), 5);
          });
          app.get("/who", (req, res) => res.send(String(req.session.get("via"))));
        }, async ({ origin }) => {
          const head = await fetch(origin + "/file", { method: "HEAD" });
          assert.equal(head.status, 200);
          assert.equal(await head.text(), "");
          assert.equal(sessionCookies(head).length, 1);

          const first = await fetch(origin + "/file");
          assert.equal(await first.text(), "file body");
          const etag = first.headers.get("etag")!;
          const notModified = await rawGet(origin + "/file", { "if-none-match": etag });
          assert.equal(notModified.status, 304);
          assert.equal(notModified.headers["set-cookie"]?.filter((c) => c.startsWith("sid=")).length, 1);

          const redirect = await fetch(origin + "/go", { redirect: "manual" });
          assert.equal(redirect.status, 302);
          const cookie = sessionCookies(redirect)[0].split(";")[0];
          // The record is there the moment the redirect arrives: the redirect did not outrun the write.
          const who = await fetch(origin + "/who", { headers: { cookie } });
          assert.equal(await who.text(), "redirect");

          const flushed = await fetch(origin + "/flush");
          assert.equal(await flushed.text(), "flushed");
          assert.equal(sessionCookies(flushed).length, 1);
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("a handler that never ends its response saves nothing and does not stop the server", async () => {
      await withExpress(createExpress, makeStore, (app) => {
        app.get("/hang", (req) => {
          req.session.set("lost", true);
        });
        app.get("/ok", (req, res) => {
          req.session.set("n", 1);
          res.send("ok");
        });
      }, async ({ origin, memory }) => {
        const abort = new AbortController();
        const hanging = fetch(origin + "/hang", { signal: abort.signal }).catch((error) => error);
        await sleep(50);
        abort.abort();
        assert.equal((await hanging as Error).name, "AbortError");
        const ok = await fetch(origin + "/ok");
        assert.equal(await ok.text(), "ok");
        assert.equal(memory.size, 1, "only the finished request's session is stored");
      });
    });
  }
}

test("a store failure while a response is held: the error handler answers 503, the held calls are dropped", async () => {
  const memory = new MemoryStore();
  const failing: Store = {
    get: (key) => memory.get(key),
    set: () => sleep(10).then(() => Promise.reject(new Error("store down"))),
    delete: (key) => memory.delete(key),
  };
  const app = express();
  app.set("env", "test");
  app.use(session({ store: failing, secret: SECRET, name: "sid" }));
  let writeAfterFailure: unknown;
  app.get("/", (req, res) => {
    req.session.set("n", 1);
    res.setHeader("X-Handler", "1");
    res.write("partial");
    setTimeout(() => {
      // The handler goes on streaming into a response that failed: that goes nowhere, without a crash.
      writeAfterFailure = res.write("more");
      res.end();
    }, 50);
  });
  app.use(errorHandler);
  await serve(app, memory, async ({ origin }) => {
    const response = await fetch(origin + "/");
    assert.equal(response.status, 503);
    assert.equal(await response.text(), "error:SessionStoreError");
    assert.equal(response.headers.get("x-handler"), null, "the handler's headers are gone");
    assert.equal(sessionCookies(response).length, 0);
    await sleep(80);
    assert.equal(writeAfterFailure, false);
  });
});

for (const [storeName, makeStore] of STORES) {
  test(`plain node:http, ${storeName}: the middleware works without Express, including writeHead with pairs`, async () => {
    const memory = new MemoryStore();
    const middleware = session({ store: makeStore(memory), secret: SECRET });
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      middleware(req as never, res as never, (error?: unknown) => {
        if (error) {
          res.statusCode = 500;
          res.end(String(error));
          return;
        }
        const s = (req as unknown as express.Request).session;
        if (req.url === "/login") {
          s.user = "ada";
          res.writeHead(200, [["Set-Cookie", "theme=dark"], ["Content-Type", "text/plain"]]);
          res.end((req as unknown as express.Request).sessionID.length > 0 ? "ok" : "no id");
          return;
        }
        res.end(String(s.user));
      });
    };
    await serve(handler, memory, async ({ origin }) => {
      const login = await fetch(origin + "/login");
      assert.equal(await login.text(), "ok");
      const cookies = login.headers.getSetCookie();
      assert.deepEqual(cookies.filter((c) => c.startsWith("theme=")), ["theme=dark"]);
      const sid = cookies.find((c) => c.startsWith("connect.sid="));
      assert.ok(sid, "the drop-in's cookie is connect.sid");
      assert.doesNotMatch(sid, /Max-Age/, "without cookie.maxAge it is a browser-session cookie");
      const who = await fetch(origin + "/", { headers: { cookie: sid.split(";")[0] } });
      assert.equal(await who.text(), "ada");
    });
  });
}
