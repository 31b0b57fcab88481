// Fresh 2 lives on JSR only, which this machine cannot reach. The middleware is driven by a chain that
// builds contexts of Fresh 2's documented shape: `req`, `url`, `state` (a new object per request) and
// `next()`, which runs the rest of the chain, rethrows what it throws, and throws an HttpError(404) when
// nothing is left to answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, session } from "./fresh.ts";
import type { FreshContext, SessionState } from "./fresh.ts";
import type { SessionOptions } from "./fresh.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import { FaultyStore } from "../testing/faulty_store.ts";
import { assertProxiedCookiesKept } from "./_test_upstream.ts";

interface Context<S> extends FreshContext<S> {
  url: URL;
}
type Middleware<S> = (ctx: Context<S>) => Response | Promise<Response>;

class HttpError extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
    this.name = "HttpError";
  }
}

/** Runs `chain` for each request, the way Fresh's App runs its middleware and route. */
function freshChain<S>(...chain: Middleware<S>[]): (req: Request) => Promise<Response> {
  return (req) => {
    let index = 0;
    const ctx: Context<S> = {
      req,
      url: new URL(req.url),
      state: {} as S,
      async next() {
        const middleware = chain[index++];
        if (!middleware) throw new HttpError(404);
        return await middleware(ctx);
      },
    };
    return ctx.next();
  };
}

adapterConformanceSuite(test, {
  name: "fresh",
  answersSessionErrors: true,
  createApp(options, framework) {
    const handler = freshChain<SessionState>(session(options), async (ctx) => {
      const result = await handleSuiteRoute(ctx.state.session, ctx.url);
      // Response.redirect() has immutable headers, as in many Fresh handlers.
      const response = result.redirect
        ? Response.redirect(new URL(result.redirect, ctx.url), 302)
        : new Response(result.body, { status: result.status });
      if (!result.appCookie) return response;
      const withCookie = new Response(response.body, response);
      withCookie.headers.append("set-cookie", result.appCookie);
      return withCookie;
    });
    return {
      // What Fresh does with what the chain throws: the app's onError, or without one its default
      // handler, which answers its own HttpError with that status and anything else with 500.
      async fetch(request) {
        try {
          return await handler(request);
        } catch (error) {
          if (framework?.defaultErrorHandling) {
            return error instanceof HttpError
              ? new Response(error.message, { status: error.status })
              : new Response("Internal server error", { status: 500 });
          }
          const { status, body } = suiteErrorResponse(error);
          return new Response(body, { status });
        }
      },
    };
  },
});

const SECRET = "fresh-test-secret-0123456789-abcdefghijk";

function harness(options: SessionOptions = {}) {
  const memory = new MemoryStore();
  const store = new FaultyStore(memory);
  return { memory, store, middleware: session({ store, secret: SECRET, ...options }) };
}

test("fresh: a proxied fetch() response (immutable headers) with its own Set-Cookie keeps it and gets the session's", async () => {
  await assertProxiedCookiesKept((upstream) => {
    const { middleware } = harness();
    const handler = freshChain<SessionState>(middleware, async (ctx) => {
      ctx.state.session.set("user", "ada");
      return await fetch(upstream);
    });
    return handler(new Request("http://localhost/"));
  });
});

test("fresh: a handler returning Response.error() gets it back, saves nothing and gets no cookie", async () => {
  const { store, middleware } = harness();
  const handler = freshChain<SessionState>(middleware, (ctx) => {
    ctx.state.session.set("user", "ada");
    return Response.error();
  });
  const response = await handler(new Request("http://localhost/"));
  assert.equal(response.type, "error");
  assert.equal(store.calls.set, 0);
});

test("fresh: an HttpError thrown by ctx.next() propagates and nothing is saved", async () => {
  const { store, middleware } = harness();
  const handler = freshChain<SessionState>(middleware, (ctx) => {
    ctx.state.session.set("x", 1);
    return ctx.next(); // nothing left: Fresh's 404
  });
  await assert.rejects(handler(new Request("http://localhost/missing")), (error: HttpError) => {
    assert.equal(error.status, 404);
    return true;
  });
  assert.equal(store.calls.set, 0);
});

test("fresh: a store failure is answered 503 by the middleware, not left to Fresh's 500", async () => {
  const { store, middleware } = harness();
  const handler = freshChain<SessionState>(middleware, (ctx) => {
    ctx.state.session.set("x", 1);
    return new Response("ok");
  });
  store.failNext("set", new Error("connection reset"));
  const response = await handler(new Request("http://localhost/"));
  assert.equal(response.status, 503);
  assert.equal(await response.text(), "Service Unavailable", "not the backend's message");
  assert.deepEqual(response.headers.getSetCookie(), []);
});

test("fresh: the response from ctx.next() is returned as is when it needs no cookie", async () => {
  const { middleware } = harness();
  const original = new Response("untouched");
  const handler = freshChain<SessionState>(middleware, () => original);
  assert.equal(await handler(new Request("http://localhost/")), original);
});

test("fresh: every request gets its own state and session, with typed data", async () => {
  const { middleware } = harness();
  interface State extends SessionState<{ user: string }> {
    requestId?: number;
  }
  const seen: unknown[] = [];
  const handler = freshChain<State>(middleware, (ctx) => {
    seen.push(ctx.state);
    const user: string | undefined = ctx.state.session.get("user");
    ctx.state.session.set("user", ctx.url.searchParams.get("as") ?? "nobody");
    return new Response(user ?? "new");
  });
  const first = await handler(new Request("http://localhost/?as=ada"));
  const cookie = first.headers.getSetCookie()[0].split(";")[0];
  const second = await handler(new Request("http://localhost/?as=bob", { headers: { cookie } }));
  const stranger = await handler(new Request("http://localhost/"));
  assert.deepEqual([await first.text(), await second.text(), await stranger.text()], ["new", "ada", "new"]);
  assert.equal(new Set(seen).size, 3);
});

test("fresh: the middleware fits a chain whose state holds typed session data", () => {
  const typed: Middleware<SessionState<{ userId: string }>> = session<{ userId: string }>();
  assert.equal(typeof typed, "function");
});
