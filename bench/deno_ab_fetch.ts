// Issue 17: the fetch adapter with and without awaiting the public load/commit (the old adapter, copied here),
// interleaved in one process, 7 rounds; prints new/old per-call time.  deno run -A bench/deno_ab_fetch.ts
import { do_not_optimize, measure } from "mitata";
import { session } from "../src/adapters/fetch.ts";
import { requestFacts, withSetCookie } from "../src/adapters/_response.ts";
import { SessionManager } from "../src/core.ts";
import { MemoryStore } from "../src/stores/memory.ts";
import type { Session } from "../src/session.ts";
const SECRET = "bench-secret-0123456789abcdef-0123456789abcdef-xx";
const TEXT = { headers: { "content-type": "text/plain; charset=UTF-8" } };
const store = new MemoryStore();
const manager = new SessionManager<{ n: number }>({ store, secret: SECRET });
// The adapter as it was: awaits the public load and commit.
function oldWrap(handler: (r: Request, s: Session<{ n: number }>) => Response) {
  return async (request: Request) => {
    const current = await manager.load(requestFacts(request, false));
    const response = await handler(request, current);
    const setCookie = await manager.commit(current, { status: response.status });
    return setCookie ? withSetCookie(response, setCookie) : response;
  };
}
const newWrap = session<{ n: number }>({ store, secret: SECRET });
const h = (_r: Request, s: Session<{ n: number }>) => new Response(String(s.get("n") ?? 0), TEXT);
const hw = (_r: Request, s: Session<{ n: number }>) => {
  const n = (s.get("n") ?? 0) + 1;
  s.set("n", n);
  return new Response(String(n), TEXT);
};
const oldRead = oldWrap(h), newRead = newWrap(h), oldWrite = oldWrap(hw), newWrite = newWrap(hw);
const cookies: string[] = [];
for (let i = 0; i < 100; i++) {
  const s = await manager.load({ cookie: null, https: false });
  s.set("n", i);
  cookies.push((await manager.commit(s))!.split(";")[0]);
}
const reqs = cookies.map((c) => new Request("http://localhost/read", { headers: { cookie: c } }));
let i = 0;
const ratios: Record<string, number[]> = { read: [], write: [] };
for (let round = 0; round < 7; round++) {
  for (const [name, a, b] of [["read", oldRead, newRead], ["write", oldWrite, newWrite]] as const) {
    const order = round % 2 === 0 ? [a, b] : [b, a];
    const t: number[] = [];
    for (const fn of order) {
      t.push(
        (await measure(async () => do_not_optimize(await fn(reqs[i++ % 100])), { min_cpu_time: 150e6 })).avg,
      );
    }
    const [ta, tb] = round % 2 === 0 ? t : [t[1], t[0]];
    ratios[name].push(tb / ta);
    console.log(name, round, "old", ta.toFixed(0), "new", tb.toFixed(0));
  }
}
for (const [k, v] of Object.entries(ratios)) {
  v.sort();
  console.log(k, "new/old median", v[3].toFixed(3), "range", v[0].toFixed(3), v[6].toFixed(3));
}
