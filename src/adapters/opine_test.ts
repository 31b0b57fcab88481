// Opine 2.3.4 is Deno-only, archived and not on npm, so it cannot be installed here. The adapter is tested on
// a small Opine-shaped test double that follows the documented Opine facts (checked against Opine's source,
// src/response.ts: `end` keeps the body, sets `written`, and awaits `req.respond(this)`).
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { MemoryStore, OpineSession, session } from "./opine.ts";
import type { ConnectMiddleware, Session, SessionOptions } from "./opine.ts";
import type { Store } from "../store.ts";
import { RedisStore } from "../stores/redis.ts";
import { startRedis } from "../stores/_test_servers.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import { FaultyStore } from "../testing/faulty_store.ts";

// The declaration an Opine app adds to type req.session (the adapter cannot carry it: JSR refuses global
// augmentations); the request double below extends Opine.Request as Opine's own request type does.
declare global {
  namespace Opine {
    interface Request {
      session: Session;
    }
  }
}

const SECRET = "opine-test-secret-0123456789-abcdefghij";

// ---------------------------------------------------------------------------------------------------------
// The Opine double. It implements these facts about Opine 2.3.4, and nothing more:
// - middleware is `(req, res, next)`; the router awaits it and sends a throw or rejection to `next(err)`;
//   `next()` returns undefined; a middleware with four parameters handles errors;
// - `req.headers` is a `Headers`; `req.get(name)`, `req.originalUrl` exist; `req.proto` is the scheme of the
//   full request URL ("http:" or "https:", set by Opine's WrappedRequest), and `req.secure` follows the app's
//   "trust proxy" setting (`app.set("trust proxy", true)` makes it believe X-Forwarded-Proto);
// - `res.headers` is a `Headers`; `res.status`, `res.written`, `res.set`, `res.append`, `res.setStatus`;
// - `res.send`, `res.json`, `res.redirect` and `res.sendStatus` end in the async `res.end(body)`, which sets
//   `res.written` and awaits `req.respond(res)`;
// - the built-in 404 and error pages call `req.respond(res)` directly, without `res.end`.

type Next = (error?: unknown) => void;
type Handler = (req: OpineDoubleRequest, res: OpineDoubleResponse, next: Next) => unknown;
type ErrorHandler = (
  error: unknown,
  req: OpineDoubleRequest,
  res: OpineDoubleResponse,
  next: Next,
) => unknown;

interface OpineDoubleRequest extends Opine.Request {
  method: string;
  originalUrl: string;
  headers: Headers;
  proto: string;
  readonly secure: boolean;
  get(name: string): string | undefined;
  respond(res: OpineDoubleResponse): Promise<void>;
}

class OpineDoubleResponse {
  status = 200;
  headers = new Headers();
  written = false;
  body: string | undefined;
  constructor(readonly req: OpineDoubleRequest) {}
  setStatus(code: number): this {
    this.status = code;
    return this;
  }
  set(field: string, value: string): this {
    this.headers.set(field, value);
    return this;
  }
  append(field: string, value: string): this {
    this.headers.append(field, value);
    return this;
  }
  send(body: string): Promise<void> {
    if (!this.headers.has("content-type")) this.set("content-type", "text/html; charset=utf-8");
    return this.end(body);
  }
  json(value: unknown): Promise<void> {
    this.set("content-type", "application/json; charset=utf-8");
    return this.send(JSON.stringify(value));
  }
  redirect(url: string): Promise<void> {
    this.set("location", url);
    this.status = 302;
    return this.end(`Redirecting to ${url}`);
  }
  sendStatus(code: number): Promise<void> {
    this.status = code;
    return this.send(String(code));
  }
  async end(body?: string): Promise<void> {
    if (body) this.body = body;
    this.written = true;
    await this.req.respond(this);
  }
}

interface OpineDoubleApp {
  set(setting: "trust proxy", value: boolean): OpineDoubleApp;
  use(handler: Handler): OpineDoubleApp;
  use(handler: ErrorHandler): OpineDoubleApp;
  use(path: string, handler: Handler): OpineDoubleApp;
  get(path: string, handler: Handler): OpineDoubleApp;
  /** Answers one request in-process: what Opine's server does with a connection's request. */
  handle(request: Request): Promise<Response>;
}

function opine(): OpineDoubleApp {
  const stack: { path: string; method?: string; fn: Handler | ErrorHandler }[] = [];
  let trustProxy = false;
  const app: OpineDoubleApp = {
    set(_setting, value) {
      trustProxy = value;
      return app;
    },
    use(...args: unknown[]) {
      const path = typeof args[0] === "string" ? args.shift() as string : "/";
      stack.push({ path, fn: args[0] as Handler | ErrorHandler });
      return app;
    },
    get(path, fn) {
      stack.push({ path, method: "GET", fn });
      return app;
    },
    handle(request) {
      return new Promise((resolve) => {
        const url = new URL(request.url);
        const req = {
          method: request.method,
          originalUrl: url.pathname + url.search,
          headers: request.headers,
          proto: url.protocol,
          get secure() {
            const forwarded = trustProxy ? request.headers.get("x-forwarded-proto") : null;
            return (forwarded?.split(",")[0].trim() ?? url.protocol.slice(0, -1)) === "https";
          },
          get: (name: string) => request.headers.get(name) ?? undefined,
          respond: (res: OpineDoubleResponse) => {
            resolve(new Response(res.body ?? null, { status: res.status, headers: res.headers }));
            return Promise.resolve();
          },
        } as OpineDoubleRequest;
        const res = new OpineDoubleResponse(req);
        const builtInPage = (status: number, message: string) => {
          res.status = status;
          res.set("content-type", "text/html; charset=utf-8");
          res.body = message;
          void req.respond(res);
        };
        let index = 0;
        const next: Next = (error) => {
          while (index < stack.length) {
            const layer = stack[index++];
            const matches = layer.method
              ? layer.method === req.method && layer.path === url.pathname
              : url.pathname.startsWith(layer.path);
            if (!matches || (error !== undefined) !== (layer.fn.length === 4)) continue;
            (async () => {
              try {
                if (error !== undefined) await (layer.fn as ErrorHandler)(error, req, res, next);
                else await (layer.fn as Handler)(req, res, next);
              } catch (thrown) {
                next(thrown);
              }
            })();
            return undefined;
          }
          if (error === undefined) builtInPage(404, `Cannot ${req.method} ${url.pathname}`);
          else {
            const status = (error as { status?: number }).status;
            builtInPage(typeof status === "number" && status >= 400 && status < 600 ? status : 500, "Error");
          }
          return undefined;
        };
        next();
      });
    },
  };
  return app;
}

// ---------------------------------------------------------------------------------------------------------

adapterConformanceSuite(test, {
  name: "opine (test double)",
  createApp(options, framework) {
    const app = opine();
    if (framework?.trustFrameworkProxy) app.set("trust proxy", true);
    new OpineSession(app, options);
    app.use(async (req, res) => {
      const result = await handleSuiteRoute(req.session, new URL(req.originalUrl, "http://localhost"));
      if (result.appCookie) res.append("Set-Cookie", result.appCookie);
      if (result.redirect) await res.redirect(result.redirect);
      else await res.setStatus(result.status).send(result.body);
    });
    if (!framework?.defaultErrorHandling) {
      app.use((error: unknown, _req: OpineDoubleRequest, res: OpineDoubleResponse, _next: Next) => {
        const { status, body } = suiteErrorResponse(error);
        return res.setStatus(status).send(body);
      });
    }
    return { fetch: (request) => app.handle(request) };
  },
});

// ---------------------------------------------------------------------------------------------------------
// The original README's Opine example. Its body below is the README's, unchanged; what its import line
// brought in (`opine`, `RedisStore`, `OpineSession`) comes from the parameters and the imports of this file,
// and `app.listen(8002)` is replaced by returning the app. Two slips of the captured README are fixed:
// `opine()` for `new opine()`, and a host where the capture lost it.

interface ReadmeRequest {
  session: Session;
}
interface ReadmeResponse {
  setStatus(code: number): { send(body: string): unknown };
}
interface ReadmeApp {
  use(middleware: ConnectMiddleware): unknown;
  use(path: string, handler: (req: ReadmeRequest, res: ReadmeResponse) => Promise<void>): unknown;
}
interface ReadmeStore extends Store {
  init(): Promise<void>;
}
type ReadmeStoreClass = new (options: { host: string; port: number }) => ReadmeStore;

async function readmeExample(opine: () => ReadmeApp, RedisStore: ReadmeStoreClass): Promise<ReadmeApp> {
  const app = opine();
  const store = new RedisStore({
    host: "127.0.0.1",
    port: 6379,
  });

  await store.init();

  // deno-lint-ignore no-unused-vars
  const session = new OpineSession(app, {}, store);

  app.use("/", async (req, res) => {
    // Examples of getting and setting variables on a session
    if (await req.session.get("pageCount") !== undefined) {
      await req.session.set("pageCount", await req.session.get("pageCount") + 1);
    } else {
      await req.session.set("pageCount", 0);
    }

    res.setStatus(200).send(`Visited page ${await req.session.get("pageCount")} times`);
  });

  return app;
}

/** Stands in for RedisStore where no redis-server can be started: a MemoryStore with the v1 `init()`. */
class MemoryStoreWithInit extends MemoryStore implements ReadmeStore {
  constructor(_options: { host: string; port: number }) {
    super();
  }
  init(): Promise<void> {
    return Promise.resolve();
  }
}

async function visits(fetchPage: (cookie: string) => Promise<Response>): Promise<string[]> {
  const seen: string[] = [];
  const jars = { alice: "", bob: "" };
  for (const who of ["alice", "alice", "bob", "alice"] as const) {
    const response = await fetchPage(jars[who]);
    seen.push(`${who}: ${await response.text()}`);
    jars[who] = response.headers.getSetCookie()[0]?.split(";")[0] ?? jars[who];
  }
  return seen;
}

const README_VISITS = [
  "alice: Visited page 0 times",
  "alice: Visited page 1 times",
  "bob: Visited page 0 times",
  "alice: Visited page 2 times",
];

test("opine (test double): the original README example counts per client", async () => {
  const app = await readmeExample(() => opine() as unknown as ReadmeApp, MemoryStoreWithInit);
  const double = app as unknown as OpineDoubleApp;
  const seen = await visits((cookie) =>
    double.handle(new Request("http://localhost/", { headers: cookie ? { cookie } : {} }))
  );
  assert.deepEqual(seen, README_VISITS);
});

test("opine (test double): the original README example with a real RedisStore", async (t) => {
  let server: Awaited<ReturnType<typeof startRedis>>;
  try {
    server = await startRedis();
  } catch (error) {
    if (process.env.CI === "true") throw error; // CI must not pass by skipping
    t.skip(`no redis-server to start (apt-get install redis-server): ${(error as Error).message}`);
    return;
  }
  const stores: RedisStore[] = [];
  // The README connects to port 6379; the test's server listens on a free port.
  class RedisStoreOnTestServer extends RedisStore {
    constructor(options: { host: string; port: number }) {
      super({ ...options, port: server.port });
      stores.push(this);
    }
  }
  try {
    const app = await readmeExample(() => opine() as unknown as ReadmeApp, RedisStoreOnTestServer);
    const double = app as unknown as OpineDoubleApp;
    const seen = await visits((cookie) =>
      double.handle(new Request("http://localhost/", { headers: cookie ? { cookie } : {} }))
    );
    assert.deepEqual(seen, README_VISITS);
  } finally {
    for (const store of stores) await store.close();
    await server.stop();
  }
});

// ---------------------------------------------------------------------------------------------------------
// What only Opine has: the async res.end, req.respond, Headers-based res.headers.

interface DoubleHarness {
  app: OpineDoubleApp;
  store: FaultyStore;
  memory: MemoryStore;
  request(path: string, cookie?: string): Promise<Response>;
}

function doubleApp(routes: (app: OpineDoubleApp) => void, options: SessionOptions = {}): DoubleHarness {
  const memory = new MemoryStore();
  const store = new FaultyStore(memory);
  const app = opine();
  app.use(session({ store, secret: SECRET, ...options }));
  routes(app);
  return {
    app,
    store,
    memory,
    request: (path, cookie) =>
      app.handle(new Request(`http://localhost${path}`, { headers: cookie ? { cookie } : {} })),
  };
}

const suiteErrors = (error: unknown, _req: OpineDoubleRequest, res: OpineDoubleResponse, _next: Next) => {
  const { status, body } = suiteErrorResponse(error);
  return res.setStatus(status).send(body);
};
const sessionCookies = (response: Response, name = "sid") =>
  response.headers.getSetCookie().filter((c) => c.startsWith(`${name}=`));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("opine (test double): res.send, json, redirect and sendStatus all carry the cookie", async () => {
  const h = doubleApp((app) => {
    app.use((req, _res, next) => {
      req.session.set("via", req.originalUrl);
      next();
    });
    app.get("/send", (_req, res) => res.send("sent"));
    app.get("/json", (_req, res) => res.json({ ok: true }));
    app.get("/redirect", (_req, res) => res.redirect("/send"));
    app.get("/status", (_req, res) => res.sendStatus(202));
  });
  for (
    const [path, status] of [["/send", 200], ["/json", 200], ["/redirect", 302], ["/status", 202]] as const
  ) {
    const response = await h.request(path);
    assert.equal(response.status, status, path);
    assert.equal(sessionCookies(response).length, 1, path);
    await response.body?.cancel();
  }
  assert.equal(h.store.calls.set, 4);
});

test("opine (test double): await res.send() settles after the store write, and the response after it", async () => {
  const order: string[] = [];
  const h = doubleApp((app) => {
    app.get("/", async (req, res) => {
      req.session.set("user", "ada");
      await res.send("ok");
      order.push("send settled");
    });
  });
  const release = h.store.hold("set");
  const pending = h.request("/").then((response) => (order.push("response"), response));
  await sleep(50);
  assert.equal(order.length, 0, "nothing leaves while the store write is pending");
  order.push("store released");
  release();
  const response = await pending;
  assert.equal(sessionCookies(response).length, 1);
  await sleep(0);
  assert.deepEqual(order, ["store released", "response", "send settled"]);
  assert.equal(h.memory.size, 1);
});

test("opine (test double): Opine's own 404 page (req.respond without res.end) carries the cookie", async () => {
  const h = doubleApp((app) => {
    app.use((req, _res, next) => {
      req.session.set("seen", true);
      next();
    });
  });
  const response = await h.request("/nowhere");
  assert.equal(response.status, 404);
  assert.equal(sessionCookies(response).length, 1);
  assert.equal(h.memory.size, 1);
});

test("opine (test double): Opine's own error page answers a failed handler; nothing is saved", async () => {
  const h = doubleApp((app) => {
    app.get("/fail", (req) => {
      req.session.set("x", 1);
      throw new Error("boom");
    });
  });
  const response = await h.request("/fail");
  assert.equal(response.status, 500);
  assert.deepEqual(sessionCookies(response), []);
  assert.equal(h.store.calls.set, 0);
});

test("opine (test double): a store failure in res.end goes to the error handler with a clean response", async () => {
  const h = doubleApp((app) => {
    app.get("/", (req, res) => {
      req.session.set("x", 1);
      res.append("Set-Cookie", "theme=dark; Path=/");
      return res.redirect("/elsewhere");
    });
    app.use(suiteErrors);
  });
  h.store.failNext("set", new Error("connection reset"));
  const response = await h.request("/");
  assert.equal(response.status, 503);
  assert.equal(await response.text(), "error:SessionStoreError");
  assert.deepEqual(response.headers.getSetCookie(), []);
  assert.equal(response.headers.get("location"), null);
});

test("opine (test double): a store failure on Opine's own 404 page reaches its error page", async () => {
  const h = doubleApp((app) => {
    app.use((req, _res, next) => {
      req.session.set("seen", true);
      next();
    });
  });
  h.store.failNext("set", new Error("connection reset"));
  const response = await h.request("/nowhere");
  assert.equal(response.status, 503);
  assert.deepEqual(sessionCookies(response), []);
});

test("opine (test double): options reach the cookie (the original ignored them)", async () => {
  const app = opine();
  new OpineSession(app, { cookie: { name: "app_sid", sameSite: "Strict" }, secret: SECRET });
  app.get("/", (req, res) => {
    req.session.set("a", 1);
    return res.send("ok");
  });
  const response = await app.handle(new Request("http://localhost/"));
  const [cookie] = sessionCookies(response, "app_sid");
  assert.match(cookie, /; SameSite=Strict/);
});

test("opine (test double): res.end and req.respond are put back after the commit", async () => {
  const app = opine();
  let before: unknown;
  let after: { ownEnd: boolean; sameRespond: boolean } | undefined;
  app.use((req, _res, next) => {
    before = req.respond;
    next();
  });
  app.use(session({ secret: SECRET }));
  app.get("/", async (req, res) => {
    req.session.set("a", 1);
    await res.send("ok");
    after = { ownEnd: Object.hasOwn(res, "end"), sameRespond: req.respond === before };
  });
  await app.handle(new Request("http://localhost/"));
  await sleep(0);
  assert.deepEqual(after, { ownEnd: false, sameRespond: true });
});

test("opine (test double): Secure follows req.proto, not req.secure: Opine's 'trust proxy' does not decide it", async () => {
  const h = doubleApp((app) => {
    app.set("trust proxy", true);
    app.get("/", (req, res) => {
      req.session.set("a", 1);
      return res.send(String(req.secure));
    });
  });
  const proxied = await h.app.handle(
    new Request("http://localhost/", { headers: { "x-forwarded-proto": "https" } }),
  );
  assert.equal(await proxied.text(), "true", "Opine itself believes the proxy");
  assert.doesNotMatch(sessionCookies(proxied)[0], /; Secure/);
  const https = await h.app.handle(new Request("https://localhost/"));
  assert.match(sessionCookies(https)[0], /; Secure/, "an https request URL is the connection's");
});

test("opine (test double): while the commit runs the response reads as sent, and a second send cannot alter it", async () => {
  const seen: { written?: unknown } = {};
  const h = doubleApp((app) => {
    app.get("/", (req, res) => {
      req.session.set("n", 1);
      void res.send("first");
      seen.written = res.written;
      // What a handler that forgot to await its first send might do next: none of it may reach the client.
      res.setStatus(500).set("x-late", "1");
      void res.send("second").catch(() => {});
    });
  });
  const release = h.store.hold("set");
  const pending = h.request("/");
  await sleep(20);
  release();
  const response = await pending;
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "first");
  assert.equal(response.headers.get("x-late"), null);
  assert.equal(sessionCookies(response).length, 1);
  assert.equal(seen.written, true);
});
