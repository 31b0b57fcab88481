import { test } from "node:test";
import assert from "node:assert/strict";
import { session } from "./fetch.ts";
import type { SessionOptions } from "../core.ts";
import type { Store } from "../store.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteFrameworkOptions } from "../testing/adapter_suite.ts";
import { assertProxiedCookiesKept } from "./_test_upstream.ts";
import { MemoryStore } from "../stores/memory.ts";

function createApp(options: SessionOptions, framework?: SuiteFrameworkOptions) {
  const handler = session(options)(async (request, current) => {
    const result = await handleSuiteRoute(current, new URL(request.url));
    const response = result.redirect
      ? Response.redirect(new URL(result.redirect, request.url), 302)
      : new Response(result.body, { status: result.status });
    if (result.appCookie) {
      const copy = new Response(response.body, response);
      copy.headers.append("set-cookie", result.appCookie);
      return copy;
    }
    return response;
  });
  return {
    // What Deno.serve does with what the handler throws: the app's onError, or without one its default
    // (a 500 "Internal Server Error" for any error).
    fetch: async (request: Request) => {
      try {
        return await handler(request);
      } catch (error) {
        if (framework?.defaultErrorHandling) return new Response("Internal Server Error", { status: 500 });
        const { status, body } = suiteErrorResponse(error);
        return new Response(body, { status });
      }
    },
  };
}

adapterConformanceSuite(test, { name: "fetch", createApp, answersSessionErrors: true });

test("fetch: a proxied fetch() response (immutable headers) with its own Set-Cookie keeps it and gets the session's", async () => {
  await assertProxiedCookiesKept((upstream) => {
    const handler = session({ secret: "a-secret-of-at-least-32-bytes-long!" })(async (_request, current) => {
      current.set("user", "ada");
      return await fetch(upstream);
    });
    return handler(new Request("http://localhost/"));
  });
});

test("fetch: a handler returning Response.error() gets it back, saves nothing and gets no cookie", async () => {
  // Response.error() has status 0 and immutable headers: copying it to add a cookie threw a RangeError.
  const store = new MemoryStore();
  const handler = session({ store, secret: "a-secret-of-at-least-32-bytes-long!" })((_request, current) => {
    current.set("user", "ada");
    return Response.error();
  });
  const response = await handler(new Request("http://localhost/"));
  assert.equal(response.type, "error");
  assert.equal(response.headers.getSetCookie().length, 0);
  assert.equal(store.size, 0);
});

test("fetch: extra handler arguments pass through", async () => {
  const handler = session()((_request, current, info: { remote: string }) => {
    current.set("from", info.remote);
    return new Response(info.remote);
  });
  const response = await handler(new Request("http://localhost/"), { remote: "127.0.0.1" });
  assert.equal(await response.text(), "127.0.0.1");
  assert.equal(response.headers.getSetCookie().length, 1);
});

test("fetch: with a store that answers at once, the handler runs in the same turn and no promise of the core is awaited", async () => {
  const { MemoryStore } = await import("../stores/memory.ts");
  const { FaultyStore } = await import("../testing/faulty_store.ts");
  const store = new FaultyStore(new MemoryStore());
  const withSession = session({ store, secret: "fetch-test-secret-0123456789abcdefghij" });
  let ran = false;
  const handler = withSession((_request, s) => {
    ran = true;
    s.set("n", 1);
    return new Response("ok");
  });
  const pending = handler(new Request("http://localhost/"));
  assert.equal(ran, true, "the handler ran before the first await: the load answered without a promise");
  const response = await pending;
  assert.ok(response.headers.get("set-cookie")?.startsWith("sid="));
  // A store that answers with promises still works, one turn later.
  const slowStore = {
    get: (key: string) => Promise.resolve(store.get(key)),
    set: store.set.bind(store),
    delete: store.delete.bind(store),
  } as Store;
  const slow = session({ store: slowStore, secret: "fetch-test-secret-0123456789abcdefghij" });
  let slowRan = false;
  const slowHandler = slow((_request) => {
    slowRan = true;
    return new Response("ok");
  });
  const cookie = response.headers.get("set-cookie")!.split(";")[0];
  const later = slowHandler(new Request("http://localhost/", { headers: { cookie } }));
  assert.equal(slowRan, false);
  assert.equal((await later).status, 200);
  assert.equal(slowRan, true);
});
