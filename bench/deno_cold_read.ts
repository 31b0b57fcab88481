// Issue 17: a read through the fetch adapter on Deno with 10,000 returning clients over a 100,000-session
// MemoryStore (the cold path: more distinct cookies than a small token cache holds). Three measurements.
//   node_modules/.bin/deno run -A bench/deno_cold_read.ts
import { do_not_optimize, measure } from "mitata";
import { session } from "../src/adapters/fetch.ts";
import { SessionManager } from "../src/core.ts";
import { MemoryStore } from "../src/stores/memory.ts";
const SECRET = "bench-secret-0123456789abcdef-0123456789abcdef-xx";
const TEXT = { headers: { "content-type": "text/plain; charset=UTF-8" } };
const store = new MemoryStore({ maxEntries: 200_000 });
const manager = new SessionManager<{ n: number }>({ store, secret: SECRET });
const cookies: string[] = [];
for (let i = 0; i < 100_000; i++) {
  const s = await manager.load({ cookie: null, https: false });
  s.set("n", i);
  const c = await manager.commit(s);
  if (i < 10_000) cookies.push(c!.split(";")[0]);
}
const read = session<{ n: number }>({ store, secret: SECRET })((_r, s) =>
  new Response(String(s.get("n") ?? 0), TEXT)
);
let i = 0;
for (let r = 0; r < 3; r++) {
  console.log(
    "cold read (10k pool, 100k store)",
    (await measure(async () =>
      do_not_optimize(
        await read(new Request("http://localhost/read", { headers: { cookie: cookies[i++ % 10_000] } })),
      ), { min_cpu_time: 400e6 })).avg.toFixed(0),
    "ns",
  );
}
