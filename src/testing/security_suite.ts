/**
 * Attacks and bad input, run against every adapter by
 * `adapterConformanceSuite`. The expected outcome of every bad cookie is "no
 * session": the handler sees an empty session, nothing is read or written
 * under the presented id, a fresh id is issued only if the handler writes, no
 * exception reaches the framework, and the status is the handler's.
 *
 * @module
 */

import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { generateId, SignedToken, storageKey } from "../_crypto.ts";
import type { SecurityEvent } from "../core.ts";
import { sessionErrorBody } from "./adapter_suite.ts";
import type { AdapterSuiteOptions } from "./adapter_suite.ts";
import { COOKIE_SHAPES } from "./_cookie_shapes.ts";
import { createRunner, SECRET, sleep } from "./_harness.ts";
import type { Client, SuiteStoreKind } from "./_harness.ts";
import type { TestFunction } from "./store_suite.ts";

const EMPTY = { isNew: true, data: {} };
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Runs `count` tasks, `width` at a time. */
async function inBatches(count: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  for (let start = 0; start < count; start += width) {
    await Promise.all(Array.from({ length: Math.min(width, count - start) }, (_, j) => task(start + j)));
  }
}

/**
 * Registers the security cases with `test` (called by `adapterConformanceSuite`).
 *
 * @example
 * ```ts ignore
 * import { test } from "node:test";
 * import { adapterSecuritySuite } from "./security_suite.ts";
 * adapterSecuritySuite(test, { name: "my-adapter", createApp });
 * ```
 */
export function adapterSecuritySuite(
  test: TestFunction,
  options: AdapterSuiteOptions,
  kind: SuiteStoreKind = "memory",
): void {
  const run = createRunner(test, options, kind);

  /** A stored session with `{ user: "ada" }`, and its cookie value. */
  async function victim(client: () => Client): Promise<{ owner: Client; value: string }> {
    const owner = client();
    await owner.request("/set?key=user&value=ada");
    return { owner, value: owner.cookie! };
  }

  run.needs("serverRecords")(
    "security: empty and malformed Cookie headers give no session and no store read",
    async ({ client, store }) => {
      for (
        const header of [undefined, "", "sid=", "sid", "=v", ";;;", "   ", "sid=;sid=", " sid = ", 'sid=""']
      ) {
        const result = await client().request("/peek", header === undefined ? {} : { cookie: header });
        equal(result.status, 200, JSON.stringify(header));
        deepEqual(JSON.parse(result.body), EMPTY, JSON.stringify(header));
        deepEqual(result.sessionCookies, [], JSON.stringify(header));
      }
      deepEqual(store.calls, { get: 0, set: 0, delete: 0 });
    },
  );

  run.needs("serverRecords")(
    "security: a 10 KB session cookie is dropped by its length, before any store call",
    async ({ client, store }) => {
      const { value } = await victim(client);
      store.resetCalls();
      for (const huge of ["a".repeat(10_240), value + "a".repeat(10_240), value.padStart(10_240, "A")]) {
        deepEqual(await client().peek({ cookie: `sid=${huge}` }), EMPTY);
      }
      equal(store.calls.get, 0);
    },
  );

  for (const signed of [true, false]) {
    run.needs("signedIds")(
      `security: ids that fail the format check never reach the store (${signed ? "signed" : "unsigned"})`,
      async ({ client, store }) => {
        const { value } = await victim(client);
        const signature = signed ? value.slice(value.indexOf(".")) : "";
        store.resetCalls();
        const bad = [
          "' OR '1'='1",
          "../x",
          "a/b",
          "*",
          "%2F",
          "é".repeat(32),
          "%",
          "%zz",
          "%E0%A4%A",
          "x".repeat(31),
        ];
        for (const id of bad) {
          for (
            const cookie of [`sid=${id}`, `sid=${id}${signature}`, `sid=${id}${"A".repeat(32)}${signature}`]
          ) {
            const result = await client().request("/peek", { cookie });
            equal(result.status, 200, cookie);
            deepEqual(JSON.parse(result.body), EMPTY, cookie);
          }
        }
        equal(store.calls.get, 0);
      },
      signed ? {} : { secret: undefined },
    );
  }

  run.needs("signedIds")(
    "security: with duplicate cookie names the first value that verifies and exists wins",
    async ({ client }) => {
      const { value } = await victim(client);
      const other = client();
      await other.request("/set?key=user&value=bob");
      const forged = `${generateId()}.${value.split(".")[1]}`;
      const unknown = new SignedToken([SECRET]).write(generateId());
      for (
        const [cookie, user] of [
          [`sid=${forged}; sid=${value}`, "ada"],
          [`sid=${value}; sid=${forged}`, "ada"],
          [`sid=${unknown}; sid=${value}`, "ada"],
          [`sid=${value}; sid=${other.cookie}`, "ada"],
          [`sid=${other.cookie}; sid=${value}`, "bob"],
        ]
      ) {
        deepEqual((await client().peek({ cookie })).data, { user }, cookie);
      }
    },
  );

  run(
    "security: 3,000 cookie pairs are parsed quickly and the session is still found",
    async ({ client }) => {
      const { value } = await victim(client);
      const noise = Array.from({ length: 3000 }, () => "a=").join("; ");
      const started = Date.now();
      deepEqual((await client().peek({ cookie: `${noise}; sid=${value}` })).data, { user: "ada" });
      ok(Date.now() - started < 1000, "answered within a second");
    },
  );

  run(
    "security: hostile Cookie header shapes (`;;;…`, `a;a;…`, …) cost no more than ordinary pairs of the same size",
    async ({ client }) => {
      const { value } = await victim(client);
      /** The fastest of 3 requests, in ms; `undefined` when the server refuses a header this large. */
      const timed = async (cookie: string, findsSession: boolean, label: string) => {
        let best = Infinity;
        for (let i = 0; i < 3; i++) {
          const started = performance.now();
          let result;
          try {
            result = await client().request("/peek", { cookie });
          } catch {
            return undefined; // the server closed the connection on a header over its limit
          }
          const elapsed = performance.now() - started;
          // 431 (Node's 16 KB header limit), 400 or 413: refused before any middleware ran.
          if ([400, 413, 431].includes(result.status)) return undefined;
          equal(result.status, 200, label);
          const data = JSON.parse(result.body).data;
          deepEqual(data, findsSession ? { user: "ada" } : {}, label);
          best = Math.min(best, elapsed);
        }
        return best;
      };
      // 12 KB fits under every server's header limit (Node's is 16 KB in all); 256 KB reaches the parser
      // only where the server accepts it (in-process fetch handlers, Deno.serve up to its own limit).
      for (const size of [12 * 1024, 256 * 1024]) {
        const [baseline, ...hostile] = COOKIE_SHAPES;
        const ordinary = await timed(baseline.build(size, value), true, `${baseline.name} at ${size}`);
        if (ordinary === undefined) continue;
        for (const shape of hostile) {
          const label = `${shape.name} at ${size / 1024} KB`;
          const elapsed = await timed(shape.build(size, value), shape.findsSession, label);
          if (elapsed === undefined) continue;
          // A quadratic parser takes 0.3-0.8 s per request at 256 KB; a linear one about as long as ordinary pairs.
          ok(
            elapsed < Math.max(ordinary * 4, ordinary + 50),
            `${label}: ${elapsed.toFixed(1)} ms, ordinary pairs ${ordinary.toFixed(1)} ms`,
          );
        }
      }
    },
  );

  run("security: cookie names like __proto__ have no prototype effects", async ({ client }) => {
    const { value } = await victim(client);
    const cookie = `__proto__=polluted; constructor=x; toString=y; hasOwnProperty=z; sid=${value}`;
    deepEqual((await client().peek({ cookie })).data, { user: "ada" });
    equal(({} as Record<string, unknown>).polluted, undefined);
    equal(typeof ({}).toString, "function");
  });

  run.needs("signedIds")(
    "security: every tampered position, and a bare id, give no session; the record is unchanged",
    async ({ client, store, count }) => {
      const { owner, value } = await victim(client);
      store.resetCalls();
      for (let i = 0; i < value.length; i++) {
        if (value[i] === ".") continue;
        const replacement = BASE64URL[(BASE64URL.indexOf(value[i]) + 1) % 64];
        const tampered = value.slice(0, i) + replacement + value.slice(i + 1);
        deepEqual(await client().peek({ cookie: `sid=${tampered}` }), EMPTY, `position ${i}`);
      }
      deepEqual(await client().peek({ cookie: `sid=${value.split(".")[0]}` }), EMPTY, "bare id");
      equal(store.calls.get, 0, "a bad signature is caught before the store");
      equal(store.calls.set, 0);
      equal(await count(), 1);
      deepEqual((await owner.peek()).data, { user: "ada" });
    },
  );

  run.needs("signedIds")(
    "security: a validly signed id unknown to the store is not adopted",
    async ({ client, backing, count }) => {
      const id = generateId();
      const planted = new SignedToken([SECRET]).write(id);
      const visitor = client();
      visitor.cookie = planted;
      deepEqual(await visitor.peek(), EMPTY);
      equal(await count(), 0, "no record for it afterwards");
      await visitor.request("/set?key=user&value=eve");
      ok(!visitor.cookie!.startsWith(id), "the handler's write gets a fresh id");
      equal(await backing.get(storageKey(id)), undefined);
    },
  );

  run.needs("revocation")(
    "security: login fixation — a planted cookie is worthless after regenerate at login",
    async ({ client, count }) => {
      const attacker = client();
      await attacker.request("/count");
      const planted = attacker.cookie!;
      const victimClient = client();
      victimClient.cookie = planted;
      await victimClient.request("/login?user=ada");
      notEqual(victimClient.cookie!.split(".")[0], planted.split(".")[0]);
      deepEqual(await attacker.peek(), EMPTY, "the attacker's cookie no longer opens anything");
      deepEqual((await victimClient.peek()).data, { pageCount: 0, user: "ada" });
      equal(await count(), 1);
    },
  );

  run.needs("revocation")(
    "security: destroy clears the cookie with the same Path, Domain, Secure and SameSite",
    async ({ client }) => {
      const visitor = client();
      const https = { "x-forwarded-proto": "https" };
      const set = await visitor.request("/count", https);
      const before = visitor.cookie!;
      const cleared = await visitor.request("/logout", https);
      equal(cleared.sessionCookies.length, 1);
      for (const name of ["path", "domain", "secure", "samesite", "httponly"]) {
        equal(cleared.session!.attributes.get(name), set.session!.attributes.get(name), name);
      }
      equal(cleared.session!.attributes.get("secure"), "");
      deepEqual(await client().peek({ cookie: `sid=${before}`, ...https }), EMPTY);
    },
    { trustProxy: true, cookie: { domain: "localhost", path: "/", sameSite: "Strict" } },
  );

  run.needs("serverRecords")(
    "security: an old cookie replayed after expiry gives no session and the record is removed",
    async ({ client, clock, count }) => {
      const { value } = await victim(client);
      clock.now += 61_000;
      deepEqual(await client().peek({ cookie: `sid=${value}` }), EMPTY);
      equal(await count(), 0);
    },
    { idleTimeout: 60 },
  );

  run.needs("serverRecords")(
    "security: a hanging store times out into the error handler",
    async ({ client, store }) => {
      const { value } = await victim(client);
      const release = store.hold("get");
      try {
        const started = Date.now();
        const result = await client().request("/peek", { cookie: `sid=${value}` });
        equal(result.status, 503);
        equal(result.body, sessionErrorBody(options, "SessionStoreError"));
        deepEqual(result.sessionCookies, []);
        ok(Date.now() - started < 3000);
      } finally {
        release();
      }
    },
    { storeTimeout: 0.2 },
  );

  run(
    "security: 100 overlapping requests with 100 cookies and random delays each see their own data",
    async ({ client }) => {
      const clients = Array.from({ length: 100 }, () => client());
      await Promise.all(clients.map((c, i) => c.request(`/set?key=user&value=u${i}`)));
      const results = await Promise.all(
        clients.map((c) => c.request(`/peek?delay=${Math.floor(Math.random() * 30)}`)),
      );
      results.forEach((result, i) => deepEqual(JSON.parse(result.body).data, { user: `u${i}` }));
    },
  );

  run.needs("signedIds")(
    "security: 10,000 requests with no cookie, random ids or bad signatures create and write nothing",
    async ({ client, store, count }) => {
      const { value } = await victim(client);
      const signature = value.split(".")[1];
      store.resetCalls();
      await inBatches(10_000, 100, async (i) => {
        const cookie = i % 3 === 0
          ? undefined
          : i % 3 === 1
          ? `sid=${generateId()}`
          : `sid=${generateId()}.${signature}`;
        const result = await client().request("/peek", cookie ? { cookie } : {});
        if (result.status !== 200 || result.sessionCookies.length !== 0) {
          throw new Error(`request ${i}: status ${result.status}, ${result.sessionCookies.length} cookies`);
        }
      });
      equal(store.calls.set, 0);
      equal(await count(), 1);
    },
  );

  const events: SecurityEvent[] = [];
  run.needs("signedIds")(
    "security: bad cookies raise security events carrying the storage key, never the id",
    async ({ client }) => {
      events.length = 0;
      const { value } = await victim(client);
      const [id, signature] = value.split(".");
      await client().peek({ cookie: `sid=${id}.${signature.replace(/^./, (c) => c === "A" ? "B" : "A")}` });
      await client().peek({ cookie: "sid=../../etc" });
      const unknownId = generateId();
      await client().peek({ cookie: `sid=${new SignedToken([SECRET]).write(unknownId)}` });
      await sleep(20);
      const types = events.map((e) => e.type);
      ok(types.includes("bad-signature"), types.join());
      ok(types.includes("malformed-cookie"), types.join());
      ok(types.includes("unknown-session"), types.join());
      const logged = JSON.stringify(events);
      ok(!logged.includes(id) && !logged.includes(unknownId), "no id in events");
      const unknown = events.filter((e) => e.type === "unknown-session");
      ok(unknown.some((e) => e.idHash === storageKey(unknownId)), "the unknown id's storage key");
      ok(unknown.every((e) => /^s1_[A-Za-z0-9_-]{43}$/.test(e.idHash!)));
    },
    { onSecurityEvent: (event) => events.push(event) },
  );

  const budgetEvents: SecurityEvent[] = [];
  run.needs("serverRecords")(
    "security: the 4096-byte cookie budget: a value filling it is read, one byte more is dropped unread",
    async ({ client, store }) => {
      // RFC 6265bis section 5.6: name and value together at most 4096 bytes; "sid" leaves 4093.
      const limit = 4096 - "sid".length;
      budgetEvents.length = 0;
      const atLimit = await client().peek({ cookie: `sid=${"a".repeat(limit)}` });
      equal(atLimit.isNew, true);
      await sleep(10);
      deepEqual(
        budgetEvents.map((e) => e.type),
        ["malformed-cookie"],
        "a value of exactly the budget is read",
      );
      budgetEvents.length = 0;
      const over = await client().peek({ cookie: `sid=${"a".repeat(limit + 1)}` });
      equal(over.isNew, true);
      await sleep(10);
      deepEqual(
        budgetEvents,
        [{ type: "oversized-cookie" }],
        "one byte over the budget is dropped before it is looked at, and reported",
      );
      equal(store.calls.get, 0, "neither reached the store");
    },
    { onSecurityEvent: (event) => budgetEvents.push(event) },
  );
}
