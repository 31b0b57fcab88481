// One side of bench/deno_core_ab.mjs: the core's lifecycle for one scenario, in a loop, on the src/ tree
// given as the first argument. Prints the median of three timed loops, in ns per request.
//
//   deno run -A --config <tree>/deno.json bench/deno_core_loop.ts <tree>/src read|write|new [requests]
//   node --import tsx bench/deno_core_loop.ts <tree>/src read|write|new [requests]   (--runtime=node)
//
// A request: the Cookie header's value as a fresh string (as Deno.serve hands it over), `loadNow`, one
// `get` (and a `set` on write and new), `commitNow` with a 200 status: the adapters' path without the
// Request and Response objects, which cost the same with any session code.
const runtime = globalThis as { Deno?: { args: string[] }; process?: { argv: string[] } };
const [root, scenario = "read", count = "300000"] = runtime.Deno?.args ?? runtime.process!.argv.slice(2);
if (!root || !["read", "write", "new"].includes(scenario)) {
  throw new Error("usage: deno_core_loop.ts <src dir> read|write|new [requests]");
}
const { SessionManager } = await import(`${root}/core.ts`);
const { MemoryStore } = await import(`${root}/stores/memory.ts`);
const { commitNow, loadNow } = await import(`${root}/_lifecycle.ts`);
const SECRET = "bench-secret-0123456789abcdef-0123456789abcdef-xx";
const N = Number(count);
const manager = new SessionManager({ store: new MemoryStore({ maxEntries: 10_000_000 }), secret: SECRET });
const cookies: string[] = [];
for (let i = 0; i < 100; i++) {
  const s = await manager.load({ cookie: null, https: false });
  s.set("n", i);
  const setCookie: string = await manager.commit(s);
  cookies.push(setCookie.slice(0, setCookie.indexOf(";")));
}
const https = () => false;
let sink = 0;
function loop(): number {
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    // A new string each time, as a header read from the wire: no hash or flat copy left from the last use.
    const cookie = scenario === "new" ? null : (" " + cookies[i % 100]).slice(1);
    const s = loadNow(manager, { cookie, https });
    const n = s.get("n") ?? 0;
    if (scenario !== "read") s.set("n", n + 1);
    const setCookie = commitNow(manager, s, { status: 200 });
    sink += typeof setCookie === "string" ? setCookie.length : 1;
  }
  return (performance.now() - started) * 1e6 / N;
}
loop(); // warm-up: optimised code first
loop();
const times = [loop(), loop(), loop()].sort((a, b) => a - b);
if (sink === 0) throw new Error("nothing ran");
console.log(times[1].toFixed(1));
