import { test } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { session } from "./hono.ts";
// The npm entry's augmentation types c.get("session") in the plain `new Hono()` apps below, as for npm users.
import type {} from "./hono_npm.ts";
import { adapterConformanceSuite } from "../testing/adapter_suite.ts";
import { honoSuiteApp } from "./_test_hono_app.ts";
import { assertProxiedCookiesKept } from "./_test_upstream.ts";
import { MemoryStore } from "../stores/memory.ts";

adapterConformanceSuite(test, { name: "hono", createApp: honoSuiteApp });

test("hono: a handler returning Response.redirect (immutable headers) still gets its cookie", async () => {
  const app = new Hono();
  app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
  app.get("/", (c) => {
    c.get("session").set("user", "ada");
    return Response.redirect("http://localhost/home", 303);
  });
  const response = await app.request("/");
  assert.equal(response.status, 303);
  assert.equal(response.headers.getSetCookie().length, 1);
});

test("hono: a proxied fetch() response (immutable headers) with its own Set-Cookie keeps it and gets the session's", async () => {
  // Hono's c.res setter puts the old response's Set-Cookie headers in place of the new one's: the session
  // cookie, appended to the copy before it was assigned, was dropped.
  await assertProxiedCookiesKept(async (upstream) => {
    const app = new Hono();
    app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
    app.get("/", async (c) => {
      c.get("session").set("user", "ada");
      return await fetch(upstream);
    });
    return await app.request("/");
  });
});

test("hono: a handler returning Response.error() saves nothing and gets no cookie", async () => {
  const store = new MemoryStore();
  const app = new Hono();
  app.use(session({ store, secret: "a-secret-of-at-least-32-bytes-long!" }));
  app.get("/", (c) => {
    c.get("session").set("user", "ada");
    return Response.error();
  });
  const response = await app.request("/");
  assert.equal(response.type, "error");
  assert.equal(store.size, 0);
});

test("hono: typed session data through the generic", async () => {
  const app = new Hono<{ Variables: { session: import("../session.ts").Session<{ userId: string }> } }>();
  app.use(session<{ userId: string }>());
  app.get("/", (c) => {
    c.get("session").set("userId", "u1");
    const id: string | undefined = c.get("session").get("userId");
    return c.text(id ?? "none");
  });
  assert.equal(await (await app.request("/")).text(), "u1");
});

test("hono: https requests get Secure cookies", async () => {
  const app = new Hono();
  app.use(session());
  app.get("/", (c) => {
    c.get("session").set("a", 1);
    return c.text("ok");
  });
  const response = await app.request("https://example.com/");
  assert.match(response.headers.get("set-cookie")!, /; Secure/);
});

test("hono: with a store that answers at once, the handler runs in the same turn as app.fetch", async () => {
  const app = new Hono();
  app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
  let ran = false;
  app.get("/", (c) => {
    ran = true;
    c.get("session").set("n", 1);
    return c.text("ok");
  });
  const pending = app.fetch(new Request("http://localhost/"));
  assert.equal(ran, true, "no promise of the core was awaited before the handler");
  const response = await pending;
  assert.ok(response.headers.get("set-cookie")?.startsWith("sid="));
});
