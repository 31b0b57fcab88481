import { test } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { session } from "./hono_npm.ts";
import type { SessionOptions } from "../core.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteFrameworkOptions } from "../testing/adapter_suite.ts";

function createApp(options: SessionOptions, framework?: SuiteFrameworkOptions) {
  const app = new Hono();
  app.use(session(options));
  if (!framework?.defaultErrorHandling) {
    app.onError((error, c) => {
      const { status, body } = suiteErrorResponse(error);
      return c.text(body, status as 500);
    });
  }
  app.all("*", async (c) => {
    const result = await handleSuiteRoute(c.get("session"), new URL(c.req.url));
    if (result.appCookie) c.header("set-cookie", result.appCookie, { append: true });
    if (result.redirect) return c.redirect(result.redirect);
    return c.text(result.body, result.status as 200);
  });
  return { fetch: async (request: Request) => await app.fetch(request) };
}

adapterConformanceSuite(test, { name: "hono", createApp });

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
