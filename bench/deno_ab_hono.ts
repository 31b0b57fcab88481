// Issue 17: the Hono middleware with and without awaiting the public load/commit (the old middleware, copied
// here), interleaved in one process, 7 rounds; prints new/old per-call time.  deno run -A bench/deno_ab_hono.ts
import { do_not_optimize, measure } from "mitata";
import { Hono } from "hono";
import { session } from "../src/adapters/hono.ts";
import type { SessionEnv } from "../src/adapters/hono.ts";
import { requestFacts, withSetCookie } from "../src/adapters/_response.ts";
import { SessionManager } from "../src/core.ts";
import { MemoryStore } from "../src/stores/memory.ts";
const SECRET = "bench-secret-0123456789abcdef-0123456789abcdef-xx";
const store = new MemoryStore();
const manager = new SessionManager({ store, secret: SECRET });
const oldApp = new Hono<SessionEnv>();
oldApp.use(async (c, next) => {
  const current = await manager.load(requestFacts(c.req.raw, false));
  c.set("session", current);
  await next();
  const setCookie = await manager.commit(current, { threw: c.error !== undefined, status: c.res.status });
  if (setCookie) {
    const r = withSetCookie(c.res, setCookie);
    if (r !== c.res) c.res = r;
  }
});
const newApp = new Hono<SessionEnv>();
newApp.use(session({ store, secret: SECRET }));
for (const app of [oldApp, newApp]) {
  app.get("/read", (c) => c.text(String(c.get("session").get("n") ?? 0)));
  app.get("/write", (c) => {
    const s = c.get("session");
    const n = (s.get("n") ?? 0) + 1;
    s.set("n", n);
    return c.text(String(n));
  });
}
const cookies: string[] = [];
for (let i = 0; i < 100; i++) {
  const s = await manager.load({ cookie: null, https: false });
  s.set("n", i);
  cookies.push((await manager.commit(s))!.split(";")[0]);
}
let i = 0;
const ratios: Record<string, number[]> = { read: [], write: [] };
for (let round = 0; round < 7; round++) {
  for (const path of ["read", "write"] as const) {
    const t: Record<string, number> = {};
    const order = round % 2 === 0 ? ["old", "new"] : ["new", "old"];
    for (const which of order) {
      const app = which === "old" ? oldApp : newApp;
      t[which] = (await measure(async () =>
        do_not_optimize(
          await app.fetch(
            new Request("http://localhost/" + path, { headers: { cookie: cookies[i++ % 100] } }),
          ),
        ), { min_cpu_time: 150e6 })).avg;
    }
    ratios[path].push(t.new / t.old);
  }
}
for (const [k, v] of Object.entries(ratios)) {
  v.sort();
  console.log(`hono ${k}: new/old median ${v[3].toFixed(3)} (range ${v[0].toFixed(3)} … ${v[6].toFixed(3)})`);
}
