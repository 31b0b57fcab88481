// Oak's npm build works under Node only (see docs/adapters.md), so this file runs on Node.
import { test } from "node:test";
import assert from "node:assert/strict";
import { get } from "node:http";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { Application, Router } from "@oakserver/oak";
import { OakSession, session } from "./oak.ts";
import type { SessionOptions } from "../core.ts";
import { MemoryStore } from "../stores/memory.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteFrameworkOptions } from "../testing/adapter_suite.ts";

// Oak's npm types name undici's Request and Response; the runtime objects are the global ones.
type OakRequest = Parameters<Application["handle"]>[0];

async function handle(app: Application, request: Request): Promise<Response> {
  // A client over a socket sends Host; Oak's `proxy` mode builds the request URL from it.
  if (!request.headers.has("host")) {
    const headers = new Headers(request.headers);
    headers.set("host", new URL(request.url).host);
    request = new Request(request, { headers });
  }
  const response = await app.handle(request as unknown as OakRequest);
  assert.ok(response, "oak answered");
  return response as unknown as Response;
}

function createApp(options: SessionOptions, framework?: SuiteFrameworkOptions) {
  const app = new Application({
    proxy: framework?.trustFrameworkProxy === true,
    // Oak's own error handling answers; `logErrors: false` only keeps it from logging the suite's errors.
    ...(framework?.defaultErrorHandling ? { logErrors: false } : {}),
  });
  if (!framework?.defaultErrorHandling) {
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        const { status, body } = suiteErrorResponse(error);
        ctx.response.status = status;
        ctx.response.body = body;
      }
    });
  }
  app.use(session(options));
  app.use(async (ctx) => {
    const result = await handleSuiteRoute(ctx.state.session, ctx.request.url);
    if (result.appCookie) ctx.response.headers.append("set-cookie", result.appCookie);
    if (result.redirect) {
      ctx.response.redirect(result.redirect);
      return;
    }
    ctx.response.status = result.status;
    ctx.response.body = result.body;
  });
  return { fetch: (request: Request) => handle(app, request) };
}

adapterConformanceSuite(test, { name: "oak", createApp });

/** The original module's README example, unchanged but for the import line. */
function seedApp(store?: MemoryStore) {
  const app = new Application();
  const _session = store ? new OakSession(app, store) : new OakSession(app);
  const router = new Router();
  router.get("/", async (context) => {
    if (await context.state.session.get("pageCount") === undefined) {
      await context.state.session.set("pageCount", 0);
    } else {
      await context.state.session.set("pageCount", await context.state.session.get("pageCount") + 1);
    }
    context.response.body = `Visited page ${await context.state.session.get("pageCount")} times`;
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

async function visit(app: Application, jar: { cookie?: string }): Promise<string> {
  const headers = jar.cookie ? { cookie: jar.cookie } : undefined;
  const response = await handle(app, new Request("http://localhost/", { headers }));
  const setCookie = response.headers.get("set-cookie");
  if (setCookie) jar.cookie = setCookie.split(";")[0];
  return await response.text();
}

test("oak: the original README example counts 0, 1, 2 and keeps clients apart", async () => {
  const app = seedApp();
  const alice = {};
  const bob = {};
  assert.equal(await visit(app, alice), "Visited page 0 times");
  assert.equal(await visit(app, alice), "Visited page 1 times");
  assert.equal(await visit(app, bob), "Visited page 0 times");
  assert.equal(await visit(app, alice), "Visited page 2 times");
});

test("oak: the original README example over a real socket", async () => {
  const app = seedApp(new MemoryStore());
  const port = await freePort();
  const controller = new AbortController();
  // Oak's Node build closes its server only when a request arrives after the abort, and never settles
  // listen(): so listen() is not awaited and one last request follows the abort.
  void app.listen({ port, hostname: "127.0.0.1", signal: controller.signal });
  try {
    let cookie = "";
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetchWhenUp(`http://127.0.0.1:${port}/`, cookie);
      seen.push(await response.text());
      cookie = response.headers.get("set-cookie")?.split(";")[0] ?? cookie;
    }
    assert.deepEqual(seen, ["Visited page 0 times", "Visited page 1 times", "Visited page 2 times"]);
  } finally {
    controller.abort();
    await fetchWhenUp(`http://127.0.0.1:${port}/`, "");
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** GET over a fresh connection (no keep-alive, so the aborted server can close), retrying until it listens. */
async function fetchWhenUp(url: string, cookie: string): Promise<Response> {
  for (let attempt = 0;; attempt++) {
    try {
      return await new Promise<Response>((resolve, reject) => {
        const request = get(url, { agent: false, headers: cookie ? { cookie } : {} }, (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk) => chunks.push(chunk));
          response.on("end", () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              for (const item of [value ?? []].flat()) headers.append(name, item);
            }
            resolve(new Response(Buffer.concat(chunks), { status: response.statusCode, headers }));
          });
        });
        request.on("error", reject);
      });
    } catch (error) {
      if (attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

test("oak: the middleware can be mounted on a router only", async () => {
  const app = new Application();
  const router = new Router();
  router.use(session());
  router.get("/in", (ctx) => {
    ctx.state.session.set("seen", true);
    ctx.response.body = "in";
  });
  app.use(router.routes());
  app.use((ctx) => {
    ctx.response.body = String(ctx.state.session === undefined);
  });
  const inside = await handle(app, new Request("http://localhost/in"));
  assert.equal(inside.headers.getSetCookie().length, 1);
  const outside = await handle(app, new Request("http://localhost/out"));
  assert.equal(await outside.text(), "true");
});

test("oak: Secure follows the connection, not request.url: Oak's proxy option does not decide it", async () => {
  const app = new Application({ proxy: true });
  app.use(session());
  app.use((ctx) => {
    ctx.state.session.set("a", 1);
    ctx.response.body = ctx.request.url.protocol;
  });
  const proxied = await handle(
    app,
    new Request("http://localhost/", { headers: { "x-forwarded-proto": "https" } }),
  );
  assert.equal(await proxied.text(), "https:", "Oak itself believes the proxy");
  assert.doesNotMatch(proxied.headers.get("set-cookie")!, /; Secure/);
  const https = await handle(app, new Request("https://localhost/"));
  await https.body?.cancel();
  assert.match(https.headers.get("set-cookie")!, /; Secure/, "an https request URL is the connection's");
});
