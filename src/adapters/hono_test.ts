// The installed Hono and Hono 4.0 (the npm alias "hono40", the oldest release `peerDependencies` allow),
// through `app.fetch`, under Node and Deno.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Hono } from "hono";
import { session } from "./hono.ts";
// The npm entry's augmentation types c.get("session") in the plain `new Hono()` apps below, as for npm users.
import type {} from "./hono_npm.ts";
import { adapterConformanceSuite } from "../testing/adapter_suite.ts";
import { honoSuiteApp } from "./_test_hono_app.ts";
import { assertProxiedCookiesKept } from "./_test_upstream.ts";
import { MemoryStore } from "../stores/memory.ts";
import { SessionConflictError } from "../errors.ts";
import type { SessionRecord } from "../store.ts";
import type { Context as Hono40Context } from "hono40";

// Hono 4.0 differs from the installed release where the adapter meets it: its c.res setter (to 4.5) deletes
// the old response's Content-Type and throws when that response's headers are immutable, which the adapter's
// immutable-response path must survive; and its default error handler (to 4.4.3) answers every error but its
// own HTTPException with 500, so a session error reaches an app with no onError as a 500, not a 503 or 409.
const Hono40 = createRequire(import.meta.url)("hono40").Hono as typeof Hono;
const VERSIONS = [["hono", Hono, false], ["hono 4.0", Hono40, true]] as const;

test("hono 4.0: the alias is the release it names", () => {
  // hono's exports map does not export ./package.json; read it from node_modules.
  const manifest = new URL("../../node_modules/hono40/package.json", import.meta.url);
  const { version } = JSON.parse(readFileSync(manifest, "utf8")) as { version: string };
  assert.match(version, /^4\.0\./);
});

for (const [name, HonoClass, defaultHandlerAnswers500] of VERSIONS) {
  adapterConformanceSuite(test, {
    name,
    createApp: (options, framework) => honoSuiteApp(options, framework, HonoClass),
    defaultHandlerAnswers500,
  });

  test(`${name}: a handler returning Response.redirect (immutable headers) still gets its cookie`, async () => {
    const app = new HonoClass();
    app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
    app.get("/", (c) => {
      c.get("session").set("user", "ada");
      return Response.redirect("http://localhost/home", 303);
    });
    const response = await app.request("/");
    assert.equal(response.status, 303);
    assert.equal(response.headers.getSetCookie().length, 1);
  });

  test(`${name}: a proxied fetch() response (immutable headers) with its own Set-Cookie keeps it and gets the session's`, async () => {
    // Hono's c.res setter puts the old response's Set-Cookie headers in place of the new one's: the session
    // cookie, appended to the copy before it was assigned, was dropped.
    await assertProxiedCookiesKept(async (upstream) => {
      const app = new HonoClass();
      app.use(session({ secret: "a-secret-of-at-least-32-bytes-long!" }));
      app.get("/", async (c) => {
        c.get("session").set("user", "ada");
        return await fetch(upstream);
      });
      return await app.request("/");
    });
  });

  test(`${name}: a handler returning Response.error() saves nothing and gets no cookie`, async () => {
    const store = new MemoryStore();
    const app = new HonoClass();
    app.use(session({ store, secret: "a-secret-of-at-least-32-bytes-long!" }));
    app.get("/", (c) => {
      c.get("session").set("user", "ada");
      return Response.error();
    });
    const response = await app.request("/");
    assert.equal(response.type, "error");
    assert.equal(store.size, 0);
  });

  test(`${name}: https requests get Secure cookies`, async () => {
    const app = new HonoClass();
    app.use(session());
    app.get("/", (c) => {
      c.get("session").set("a", 1);
      return c.text("ok");
    });
    const response = await app.request("https://example.com/");
    assert.match(response.headers.get("set-cookie")!, /; Secure/);
  });

  test(`${name}: with a store that answers at once, the handler runs in the same turn as app.fetch`, async () => {
    const app = new HonoClass();
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
}

// docs/adapters.md's onError for Hono before 4.4.4, as written there, typed by Hono 4.0's own types.
function onErrorForHonoBefore444(err: Error, c: Hono40Context): Response {
  if ("getResponse" in err && typeof err.getResponse === "function") return err.getResponse();
  console.error(err);
  return c.text("Internal Server Error", 500);
}

test("hono 4.0: the onError docs/adapters.md gives answers a store outage 503 and a conflict 409", async () => {
  let down = false;
  class FlakyStore extends MemoryStore {
    override get(key: string, now?: number): SessionRecord | undefined {
      if (down) throw new Error("connection refused");
      return super.get(key, now);
    }
  }
  const app = new Hono40();
  app.onError(onErrorForHonoBefore444 as never);
  app.use(session({ store: new FlakyStore(), secret: "a-secret-of-at-least-32-bytes-long!" }));
  app.get("/set", (c) => {
    c.get("session").set("user", "ada");
    return c.text("ok");
  });
  app.get("/conflict", () => {
    throw new SessionConflictError();
  });
  const cookie = (await app.request("/set")).headers.get("set-cookie")!.split(";")[0];
  down = true;
  const outage = await app.request("/set", { headers: { cookie } });
  assert.equal(outage.status, 503);
  assert.equal(outage.headers.get("set-cookie"), null);
  const conflict = await app.request("/conflict");
  assert.equal(conflict.status, 409);
  assert.equal(await conflict.text(), new SessionConflictError().message);
  const plain = new Hono40();
  plain.onError(onErrorForHonoBefore444 as never);
  plain.get("/", () => {
    throw new Error("a bug");
  });
  assert.equal((await plain.request("/")).status, 500, "any other error is still a 500");
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
