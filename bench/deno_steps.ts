// Issue 17: what each step of a request through the fetch adapter costs on Deno, in process (mitata), so the
// gap to the `Deno.serve` floor can be read step by step. Run on Deno:
//
//   node_modules/.bin/deno run -A bench/deno_steps.ts [--quick]
//
// Every row is the mean time of one call, in nanoseconds, measured in the same process and run; "≈ share"
// divides it by the floor row (a no-op async handler: a Request in, a Response out), which stands for the
// ~10 µs `Deno.serve` spends per request in the HTTP bench. Rows marked "alt:" measure a replacement, not the
// library's code.
import process from "node:process";
import { do_not_optimize, measure } from "mitata";
import { session } from "../src/adapters/fetch.ts";
import { withSetCookie } from "../src/adapters/_response.ts";
import { readCookieValues } from "../src/_cookie.ts";
import { generateId, SignedToken, storageKey } from "../src/_crypto.ts";
import { SessionManager } from "../src/core.ts";
import { MemoryStore } from "../src/stores/memory.ts";

const SECRET = "bench-secret-0123456789abcdef-0123456789abcdef-xx";
const quick = process.argv.includes("--quick");
const TEXT = { headers: { "content-type": "text/plain; charset=UTF-8" } };
const runtime = "Deno" in globalThis
  ? `Deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno!.version.deno}`
  : `Node ${process.version}`;

/** A store with `size` sessions, and `hot` cookie values of it to cycle through. */
async function seeded(size: number, hot: number) {
  // Room for every session the "new" rows add: an eviction of a hot session would turn later rows into creates.
  const store = new MemoryStore({ maxEntries: 10_000_000 });
  const manager = new SessionManager<{ n: number }>({ store, secret: SECRET });
  const cookies: string[] = [];
  for (let i = 0; i < size; i++) {
    const s = await manager.load({ cookie: null, https: false });
    s.set("n", i);
    const setCookie = await manager.commit(s);
    if (i < hot) cookies.push(setCookie!.slice(0, setCookie!.indexOf(";")));
  }
  return { store, manager, cookies };
}

const hot = await seeded(100, 100);
const wrap = session<{ n: number }>({ store: hot.store, secret: SECRET });
const read = wrap((_request, s) => new Response(String(s.get("n") ?? 0), TEXT));
const write = wrap((_request, s) => {
  const n = (s.get("n") ?? 0) + 1;
  s.set("n", n);
  return new Response(String(n), TEXT);
});
const fresh = wrap((_request, s) => {
  s.set("n", 1);
  return new Response("1", TEXT);
});
const floor = async (_request: Request) => await new Response("0", TEXT);

let i = 0;
const request = (path: string, cookies?: string[]) =>
  new Request(
    `http://localhost${path}`,
    cookies ? { headers: { cookie: cookies[i++ % cookies.length] } } : undefined,
  );

const token = new SignedToken([SECRET]);
const sample = hot.cookies[0].slice(4);
const sampleKey = storageKey(sample.slice(0, 32));
// More distinct values than the token remembers (2 × 8,192): every read verifies an HMAC and hashes the id.
const coldValues = Array.from({ length: 40_000 }, () => token.write(generateId()));
const coldToken = new SignedToken([SECRET]);
let cold = 0;
const withCookie = request("/read", hot.cookies);
const loaded = await hot.manager.load({ cookie: hot.cookies[0], https: false });
const setCookieValue = "sid=" + sample + "; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax";
const stream = () => new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array([49])), c.close()) });

type Row = [group: string, name: string, fn: () => unknown];
const rows: Row[] = [
  [
    "request",
    "floor: no-op async handler (new Request in, new Response out)",
    async () => do_not_optimize(await floor(request("/read", hot.cookies))),
  ],
  [
    "request",
    "ours, read (100 hot sessions)",
    async () => do_not_optimize(await read(request("/read", hot.cookies))),
  ],
  [
    "request",
    "ours, write (100 hot sessions)",
    async () => do_not_optimize(await write(request("/write", hot.cookies))),
  ],
  ["request", "ours, new session", async () => do_not_optimize(await fresh(request("/new")))],
  ["read steps", "Request: headers.get('cookie')", () => do_not_optimize(withCookie.headers.get("cookie"))],
  [
    "read steps",
    "Request: url.startsWith('https:') (asked only to write a cookie)",
    () => do_not_optimize(withCookie.url.startsWith("https:")),
  ],
  [
    "read steps",
    "readCookieValues (one cookie)",
    () => do_not_optimize(readCookieValues(hot.cookies[0], "sid", 4000)),
  ],
  ["read steps", "SignedToken.read, remembered value", () => do_not_optimize(token.read(sample))],
  ["read steps", "MemoryStore.get, 100 sessions", () => do_not_optimize(hot.store.get(sampleKey))],
  [
    "read steps",
    "SessionManager.load (all of the above, session object, promise)",
    async () => do_not_optimize(await hot.manager.load({ cookie: hot.cookies[0], https: false })),
  ],
  [
    "read steps",
    "SessionManager.commit, nothing changed",
    async () => do_not_optimize(await hot.manager.commit(loaded, { status: 200 })),
  ],
  ["write steps", "load + set + commit (update, MemoryStore)", async () => {
    const s = await hot.manager.load({ cookie: hot.cookies[1], https: false });
    s.set("n", (s.get("n") ?? 0) + 1);
    do_not_optimize(await hot.manager.commit(s, { status: 200 }));
  }],
  ["new steps", "generateId", () => do_not_optimize(generateId())],
  ["new steps", "SignedToken.write (HMAC-SHA-256)", () => do_not_optimize(token.write(generateId()))],
  ["new steps", "storageKey (SHA-256)", () => do_not_optimize(storageKey(generateId()))],
  ["new steps", "load + set + commit (create, MemoryStore, Set-Cookie string)", async () => {
    const s = await hot.manager.load({ cookie: null, https: false });
    s.set("n", 1);
    do_not_optimize(await hot.manager.commit(s, { status: 200 }));
  }],
  ["response", "new Response(text)", () => do_not_optimize(new Response("1", TEXT))],
  [
    "response",
    "new Response(text) + withSetCookie (headers.append)",
    () => do_not_optimize(withSetCookie(new Response("1", TEXT), setCookieValue)),
  ],
  [
    "response",
    "alt: new Response(text) with Set-Cookie in its init",
    () =>
      do_not_optimize(
        new Response("1", {
          headers: { "content-type": "text/plain; charset=UTF-8", "set-cookie": setCookieValue },
        }),
      ),
  ],
  ["response", "new Response(stream)", () => do_not_optimize(new Response(stream(), TEXT))],
  [
    "response",
    "new Response(stream) + withSetCookie",
    () => do_not_optimize(withSetCookie(new Response(stream(), TEXT), setCookieValue)),
  ],
  [
    "response",
    "Response.redirect + withSetCookie (immutable headers: copied)",
    () => do_not_optimize(withSetCookie(Response.redirect("http://localhost/", 302), setCookieValue)),
  ],
  ["platform", "Date.now()", () => do_not_optimize(Date.now())],
  ["platform", "await of a settled promise", async () => do_not_optimize(await Promise.resolve(1))],
  [
    "platform",
    "crypto.getRandomValues(24 bytes)",
    () => do_not_optimize(crypto.getRandomValues(new Uint8Array(24))),
  ],
  ["platform", "TextDecoder.decode(43 ASCII bytes)", () => do_not_optimize(decoder.decode(ascii43))],
];
const decoder = new TextDecoder();
const ascii43 = new TextEncoder().encode("A".repeat(43));

console.log(`${runtime}, mean ns per call (mitata)${quick ? ", --quick" : ""}\n`);
console.log("| step | ns | ≈ share of the floor |");
console.log("| --- | ---: | ---: |");
let floorNs = 0;
let group = "";
for (const [name, label, fn] of rows) {
  if (name !== group) {
    console.log(`| **${name}** | | |`);
    group = name;
  }
  await row(label, fn);
}

async function row(label: string, fn: () => unknown): Promise<void> {
  const stats = await measure(fn, { min_cpu_time: (quick ? 100 : 400) * 1e6 });
  if (floorNs === 0) floorNs = stats.avg;
  console.log(`| ${label} | ${stats.avg.toFixed(0)} | ${(stats.avg / floorNs).toFixed(2)} |`);
}

// Last, and built only now: the garbage of cold reads (the token's memory turning over) and a 100,000-session
// heap make later allocations' garbage collection dearer, which would leak into the rows above.
const big = await seeded(quick ? 10_000 : 100_000, 10_000);
const bigRead = session<{ n: number }>({ store: big.store, secret: SECRET })((_request, s) =>
  new Response(String(s.get("n") ?? 0), TEXT)
);
console.log("| **cold path** | | |");
await row(
  "SignedToken.read, cold: a value it does not remember (HMAC verify + storage key)",
  () => do_not_optimize(coldToken.read(coldValues[cold++ % coldValues.length])),
);
await row(
  "floor again, with the 100,000-session heap",
  async () => do_not_optimize(await floor(request("/read", hot.cookies))),
);
await row(
  "ours, read: 10,000 returning clients over a 100,000-session store",
  async () => do_not_optimize(await bigRead(request("/read", big.cookies))),
);
process.exit(0);
