// A Cloudflare Worker using the npm package: the fetch adapter and Hono, on MemoryStore (one isolate's
// memory) and CookieStore (the session sealed into the cookie). tests/package_node_test.ts bundles it as
// wrangler would (esbuild) and runs it in workerd through miniflare, without the nodejs_compat flag.
import { Hono } from "hono";
import { MemoryStore, SessionManager } from "web-sessions";
import { session as fetchSession } from "web-sessions/fetch";
import { session as honoSession } from "web-sessions/hono";
import { CookieStore } from "web-sessions/stores/cookie";

const SECRET = "worker-test-secret-0123456789-abcdefgh";
const KEY = "worker-test-cookie-key-0123456789-abcdef";

const count = (s) => {
  s.set("visits", (s.get("visits") ?? 0) + 1);
  return String(s.get("visits"));
};

const fetchApps = {
  memory: fetchSession({ store: new MemoryStore(), secret: SECRET })((_request, s) => new Response(count(s))),
  cookie: fetchSession({ store: new CookieStore({ keys: [KEY] }) })((_request, s) => new Response(count(s))),
};
const honoApps = {
  memory: new Hono().use(honoSession({ store: new MemoryStore(), secret: SECRET })).get(
    "*",
    (c) => c.text(count(c.get("session"))),
  ),
  cookie: new Hono().use(honoSession({ store: new CookieStore({ keys: [KEY] }) })).get(
    "*",
    (c) => c.text(count(c.get("session"))),
  ),
};

export default {
  fetch(request, env, ctx) {
    const [, adapter, store] = new URL(request.url).pathname.split("/");
    if (adapter === "fetch") return fetchApps[store](request, env, ctx);
    if (adapter === "hono") return honoApps[store].fetch(request, env, ctx);
    return new Response(`no route; SessionManager is ${typeof SessionManager}`, { status: 404 });
  },
};
