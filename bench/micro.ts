// Micro-benchmarks of the per-request hot paths, with mitata, under Node (`node --import tsx
// bench/micro.ts`) and Deno (`deno run -A bench/micro.ts`). Rows marked "alt:" are not the library's
// code: they measure the replacement an optimisation proposal in bench/README.md would make, on the
// same machine in the same run, so the expected gain is a measurement rather than a guess.
//
// Prints a table, then one line `MICRO_JSON {...}` for bench/run.mjs. `--quick` shortens every case.
import process from "node:process";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import { do_not_optimize, measure } from "mitata";
import { generateId, SignedToken, storageKey } from "../src/_crypto.ts";
import { readCookieValues } from "../src/_cookie.ts";
import { SessionManager } from "../src/core.ts";
import { MemoryStore } from "../src/stores/memory.ts";
import { CookieStore } from "../src/stores/cookie.ts";
import { Sealer, SEALING } from "../src/_seal.ts";
import type { SessionRecord } from "../src/store.ts";

const SECRET = "bench-secret-0123456789abcdef-0123456789abcdef-xx";
const quick = process.argv.includes("--quick");
const runtime = "Deno" in globalThis
  ? `deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno!.version.deno}`
  : `node ${process.version}`;

// A real-looking 30-cookie header: analytics, consent and preference cookies around the session one.
function cookieHeader(sidValue: string, position: "first" | "last"): string {
  const others: string[] = [];
  for (let i = 0; i < 29; i++) {
    const name = ["_ga", "_gid", "consent", "theme", "lang", "ab_test", "tz", "csrftoken"][i % 8] + `_${i}`;
    others.push(`${name}=${generateId().slice(0, 8 + (i % 5) * 6)}`);
  }
  const sid = `sid=${sidValue}`;
  return (position === "first" ? [sid, ...others] : [...others, sid]).join("; ");
}

const signer = new SignedToken([SECRET]);
const id = generateId();
const signed = signer.write(id);
const header30Last = cookieHeader(signed, "last");
const header30First = cookieHeader(signed, "first");
if (readCookieValues(header30Last, "sid", 4000)[0] !== signed) throw new Error("cookie fixture is wrong");
const verified = signer.read(signed);
if (typeof verified === "string" || verified.id !== id) throw new Error("signer fixture is wrong");

// The replacement for Web Crypto HMAC: synchronous node:crypto, available in Node, Deno and Bun.
const hmacKey = Buffer.from(SECRET);
function altSign(handle: string): string {
  return `${handle}.${createHmac("sha256", hmacKey).update(handle).digest("base64url")}`;
}
function altVerify(value: string): string | undefined {
  const dot = value.lastIndexOf(".");
  if (dot < 0) return undefined;
  const handle = value.slice(0, dot);
  const expected = createHmac("sha256", hmacKey).update(handle).digest();
  const given = Buffer.from(value.slice(dot + 1), "base64url");
  return given.length === expected.length && timingSafeEqual(given, expected) ? handle : undefined;
}
if (altSign(id) !== signed) {
  throw new Error("alt signer disagrees with SignedToken: the comparison would be unfair");
}
if (altVerify(signed) !== id) throw new Error("alt verify rejects a good value");

// The store-call wrapper SessionManager puts around every store call (timer + Promise.race), copied
// so its cost can be seen apart from the store.
async function raceWithTimer<R>(run: () => Promise<R>): Promise<R> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timeout")), 5000);
    });
    return await Promise.race([run(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// deno-lint-ignore no-explicit-any
const manager = new SessionManager<any>({
  secret: SECRET,
  store: new MemoryStore({ maxEntries: 1_000_000 }),
});
const seeded = await manager.load({ cookie: null, https: false });
seeded.set("n", 1);
seeded.set("user", "u-1234567");
const setCookie = await manager.commit(seeded);
const sessionCookie = setCookie!.slice(0, setCookie!.indexOf(";"));
const sessionHeader30 = cookieHeader(sessionCookie.slice(4), "last");
const store = new MemoryStore({ maxEntries: 1_000_000 });
const loaded: unknown = await manager.store.get(storageKey(seeded.id));
if (typeof loaded !== "object" || loaded === null) throw new Error("the seeded session was not stored");
const record = loaded as SessionRecord;

type Case = [group: string, name: string, fn: () => unknown];
const cases: Case[] = [];
const add = (groupName: string) => (name: string, fn: () => unknown) => cases.push([groupName, name, fn]);

const crypto = add("sign / verify (HMAC-SHA-256)");
// The token remembers values it has verified: "same value" measures that path, "cold" cycles through more
// distinct values than that memory holds, so every call computes an HMAC and a storage key.
const COLD = 10_000;
const coldIds = Array.from({ length: COLD }, () => generateId());
const coldSigner = new SignedToken([SECRET]);
const coldValues: string[] = [];
for (const coldId of coldIds) coldValues.push(new SignedToken([SECRET]).write(coldId));
let coldSign = 0;
let coldVerify = 0;
let coldKey = 0;
crypto("SignedToken.write, same value", () => do_not_optimize(signer.write(id)));
crypto("SignedToken.read, same value", () => do_not_optimize(signer.read(signed)));
crypto(
  "SignedToken.write, cold (10k distinct ids)",
  () => do_not_optimize(coldSigner.write(coldIds[coldSign++ % COLD])),
);
crypto(
  "SignedToken.read, cold (10k distinct values; HMAC + storage key)",
  () => do_not_optimize(coldSigner.read(coldValues[coldVerify++ % COLD])),
);
crypto("storageKey (SHA-256 of an id)", () => do_not_optimize(storageKey(coldIds[coldKey++ % COLD])));
crypto("alt: node:crypto createHmac sign", () => do_not_optimize(altSign(id)));
crypto("alt: createHmac + timingSafeEqual verify", () => do_not_optimize(altVerify(signed)));

const ids = add("id generation (24 random bytes, base64url)");
ids("generateId", () => do_not_optimize(generateId()));
ids(
  "alt: randomBytes(24).toString('base64url')",
  () => do_not_optimize(randomBytes(24).toString("base64url")),
);

const cookies = add("cookie parsing (30-cookie header)");
cookies("readCookieValues, sid last", () => do_not_optimize(readCookieValues(header30Last, "sid", 4000)));
cookies("readCookieValues, sid first", () => do_not_optimize(readCookieValues(header30First, "sid", 4000)));
cookies("ref: header.split(';') + trim, every cookie", () => do_not_optimize(naiveParse(header30Last)));

const core = add("SessionManager load + commit, MemoryStore");
core("bare: load(no cookie) + commit", async () => {
  const s = await manager.load({ cookie: null, https: false });
  do_not_optimize(await manager.commit(s));
});
core("new: load(no cookie) + set + commit", async () => {
  const s = await manager.load({ cookie: null, https: false });
  s.set("n", 1);
  do_not_optimize(await manager.commit(s));
});
core("read: load(cookie) + get + commit", async () => {
  const s = await manager.load({ cookie: sessionCookie, https: false });
  do_not_optimize(s.get("n"));
  do_not_optimize(await manager.commit(s));
});
core("read: same, 30-cookie header", async () => {
  const s = await manager.load({ cookie: sessionHeader30, https: false });
  do_not_optimize(s.get("n"));
  do_not_optimize(await manager.commit(s));
});
core("write: load(cookie) + increment + commit", async () => {
  const s = await manager.load({ cookie: sessionCookie, https: false });
  s.set("n", (s.get("n") ?? 0) + 1);
  do_not_optimize(await manager.commit(s));
});

// The sealed cookie (CookieStore): Web Crypto AES-256-GCM under HKDF-SHA-256 keys. "remembered" is a value
// opened before (its plaintext is kept: a JSON parse); "cold" values were sealed by 2,000 other processes
// (sealers), so each open derives its salt's key and decrypts; "same salt" values share the key this process
// seals under, so an open is one decrypt.
// deno-lint-ignore no-explicit-any
const cookieManager = new SessionManager<any>({ store: new CookieStore({ keys: [SECRET] }) });
const cookieSeeded = await cookieManager.load({ cookie: null, https: false });
cookieSeeded.set("n", 1);
cookieSeeded.set("user", "u-1234567");
const cookieSetCookie = await cookieManager.commit(cookieSeeded);
const sealedCookie = cookieSetCookie!.slice(0, cookieSetCookie!.indexOf(";"));
const sealerKeys = [new TextEncoder().encode(SECRET)];
const sealer = new Sealer(sealerKeys, "sid");
const sealedRecord: SessionRecord = { data: { n: 1, user: "u-1234567" }, meta: record.meta };
const sealedValue = await sealer.seal(id, sealedRecord);
const OTHER_PROCESSES = 2000; // more than the 1,023 values a sealer remembers, and its 128 derived keys
const coldSealed: string[] = [];
for (let i = 0; i < OTHER_PROCESSES; i++) {
  coldSealed.push(await new Sealer(sealerKeys, "sid").seal(generateId(), sealedRecord));
}
const sameSalt: string[] = [];
for (let i = 0; i < COLD; i++) sameSalt.push(await sealer.seal(generateId(), sealedRecord));
let coldOpen = 0;
let sameSaltOpen = 0;
const openingSealer = new Sealer(sealerKeys, "sid");
const opener = new Sealer(sealerKeys, "sid");
for (const value of sameSalt.slice(0, 1)) await opener.open(value);
const hkdfBase = await globalThis.crypto.subtle.importKey("raw", sealerKeys[0], "HKDF", false, ["deriveKey"]);
const plaintext = new TextEncoder().encode(JSON.stringify([id, sealedRecord]));
const sealing = add("sealed cookie (CookieStore: Web Crypto AES-256-GCM, HKDF-SHA-256 keys)");
sealing(
  "Sealer.seal (one AES-GCM encrypt)",
  async () => do_not_optimize(await sealer.seal(id, sealedRecord)),
);
sealing(
  "Sealer.open, remembered value (JSON parse)",
  async () => do_not_optimize(await sealer.open(sealedValue)),
);
sealing(
  "Sealer.open, cold, this process's salt (one decrypt)",
  async () => do_not_optimize(await opener.open(sameSalt[sameSaltOpen++ % COLD])),
);
sealing(
  "Sealer.open, cold, 2,000 other salts (derive + decrypt)",
  async () => do_not_optimize(await openingSealer.open(coldSealed[coldOpen++ % OTHER_PROCESSES])),
);
sealing("alt: a key per message (deriveKey + encrypt)", async () => {
  const key = await globalThis.crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: globalThis.crypto.getRandomValues(new Uint8Array(16)),
      info: plaintext,
    },
    hkdfBase,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt"],
  );
  do_not_optimize(
    await globalThis.crypto.subtle.encrypt(
      { name: "AES-GCM", iv: globalThis.crypto.getRandomValues(new Uint8Array(12)) },
      key,
      plaintext,
    ),
  );
});

const cookieCore = add("SessionManager load + commit, CookieStore");
cookieCore("new: load(no cookie) + set + commit (seal)", async () => {
  const s = await cookieManager.load({ cookie: null, https: false });
  s.set("n", 1);
  do_not_optimize(await cookieManager.commit(s));
});
cookieCore("read: load(cookie) + get + commit (remembered, no seal)", async () => {
  const s = await cookieManager.load({ cookie: sealedCookie, https: false });
  do_not_optimize(s.get("n"));
  do_not_optimize(await cookieManager.commit(s));
});
cookieCore("write: load(cookie) + increment + commit (seal)", async () => {
  const s = await cookieManager.load({ cookie: sealedCookie, https: false });
  s.set("n", (s.get("n") ?? 0) + 1);
  do_not_optimize(await cookieManager.commit(s));
});
if (typeof (await openingSealer.open(coldSealed[0])) === "string") throw new Error("sealer fixture is wrong");
if (SEALING in new CookieStore({ keys: [SECRET] }) === false) throw new Error("not a sealing store");

const stores = add("store and store-call overhead");
const seededKey = storageKey(seeded.id);
stores("MemoryStore.get (fresh copy)", async () => do_not_optimize(await manager.store.get(seededKey)));
stores("MemoryStore.set create", async () =>
  do_not_optimize(
    await store.set(generateId(), {
      kind: "create",
      record,
      set: record.data,
      deleted: [],
      cleared: false,
      flashChanged: false,
    }),
  ));
stores("await of a resolved promise", async () => do_not_optimize(await Promise.resolve(1)));
stores(
  "setTimeout + Promise.race + clearTimeout (#call)",
  async () => do_not_optimize(await raceWithTimer(() => Promise.resolve(1))),
);

function naiveParse(header: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

const results: { group: string; name: string; avgNs: number; p50Ns: number; p99Ns: number }[] = [];
// mitata's default budget (642 ms of CPU per case) for the full run; --quick trades precision for time.
const budget = quick ? { min_cpu_time: 100 * 1e6 } : {};
for (const [groupName, name, fn] of cases) {
  try {
    const stats = await measure(fn, budget);
    results.push({ group: groupName, name, avgNs: stats.avg, p50Ns: stats.p50, p99Ns: stats.p99 });
  } catch (error) {
    console.error(`${name}: ${error}`);
    results.push({ group: groupName, name, avgNs: NaN, p50Ns: NaN, p99Ns: NaN });
  }
}

const width = Math.max(...results.map((r) => r.name.length));
console.log(`micro-benchmarks, ${runtime}`);
for (const r of results) {
  console.log(
    `${r.name.padEnd(width)}  avg ${fmt(r.avgNs).padStart(10)}  p50 ${fmt(r.p50Ns).padStart(10)}  p99 ${
      fmt(r.p99Ns).padStart(10)
    }`,
  );
}
console.log(`MICRO_JSON ${JSON.stringify({ runtime, results })}`);

function fmt(ns: number): string {
  if (!Number.isFinite(ns)) return "error";
  return ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`;
}
