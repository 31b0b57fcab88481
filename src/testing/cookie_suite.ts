/**
 * The cases of sessions sealed into the cookie (`CookieStore`), run against
 * every adapter by `adapterConformanceSuite`, beside the suite's shared cases
 * on the cookie store. They hold the cookie store to its own promises, and
 * state its limits as behaviour: a copied cookie outlives a logout, and of two
 * overlapping requests the last response wins.
 *
 * @module
 */

import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { decodeBase64Url } from "../_base64url.ts";
import type { SecurityEvent, SessionOptions } from "../core.ts";
import { CookieStore } from "../stores/cookie.ts";
import type { CookieStoreOptions } from "../stores/cookie.ts";
import { sessionErrorBody } from "./adapter_suite.ts";
import type { AdapterSuiteOptions } from "./adapter_suite.ts";
import { Client, COOKIE_KEY, createRunner, OTHER_COOKIE_KEY, sleep } from "./_harness.ts";
import type { TestFunction } from "./store_suite.ts";

const EMPTY = { isNew: true, data: {} };
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Registers the cookie store's cases with `test` (called by
 * `adapterConformanceSuite`).
 *
 * @example
 * ```ts ignore
 * import { test } from "node:test";
 * import { cookieStoreSuite } from "./cookie_suite.ts";
 * cookieStoreSuite(test, { name: "my-adapter", createApp });
 * ```
 */
export function cookieStoreSuite(test: TestFunction, options: AdapterSuiteOptions): void {
  const run = createRunner(test, options, "cookie");

  /** Runs `body` against an app of its own on a CookieStore made with `store` options. */
  async function withApp(
    store: Partial<CookieStoreOptions>,
    session: SessionOptions,
    body: (client: () => Client) => Promise<void>,
  ): Promise<void> {
    const app = await options.createApp({
      store: new CookieStore({ keys: [COOKIE_KEY], ...store }),
      ...session,
    });
    try {
      await body(() => new Client(app, session.cookie?.name));
    } finally {
      await app.close?.();
    }
  }

  run(
    "the session travels sealed; a first visit that only reads sets no cookie",
    async ({ client }) => {
      const visitor = client();
      const first = await visitor.request("/peek");
      deepEqual(JSON.parse(first.body), EMPTY);
      deepEqual(first.sessionCookies, []);
      const written = await visitor.request("/set?key=user&value=ada-lovelace");
      equal(written.sessionCookies.length, 1);
      ok(/^[A-Za-z0-9_-]+$/.test(visitor.cookie!), "base64url");
      // The whole value, as text and inside the decoded bytes: a 3-letter probe ("ada") turns up by chance in
      // one random base64url cookie of about 1,500 (it failed CI once).
      const sealed = visitor.cookie!.slice(visitor.cookie!.indexOf("=") + 1);
      ok(!sealed.includes("ada-lovelace"), "nothing readable");
      const bytes = new TextDecoder().decode(decodeBase64Url(sealed) ?? new Uint8Array());
      ok(!bytes.includes("ada-lovelace") && !bytes.includes("user"), "nothing readable once decoded");
      ok(written.setCookies[0].length <= 4096);
      deepEqual(await visitor.peek(), { isNew: false, data: { user: "ada-lovelace" } });
    },
  );

  run(
    "a read sends no cookie (nothing is sealed again); every write does",
    async ({ client }) => {
      const visitor = client();
      await visitor.request("/count");
      const before = visitor.cookie;
      const read = await visitor.request("/peek");
      deepEqual(read.sessionCookies, []);
      const write = await visitor.request("/count");
      equal(write.body, "1");
      equal(write.sessionCookies.length, 1, "the data lives in the cookie: every write sends it");
      notEqual(visitor.cookie, before);
      equal((await visitor.request("/count")).body, "2");
    },
  );

  run(
    "an unchanged session is sealed anew once per half idle window, and its cookie slides",
    async ({ client, clock }) => {
      const visitor = client();
      await visitor.request("/count");
      clock.now += 20_000;
      deepEqual((await visitor.request("/peek")).sessionCookies, [], "not before half the window");
      clock.now += 15_000;
      const late = await visitor.request("/peek");
      equal(late.session?.attributes.get("max-age"), "60", "after half the window");
      clock.now += 50_000; // 85 s after creation, 50 s after the touch
      deepEqual((await visitor.peek()).data, { pageCount: 0 });
      clock.now += 61_000;
      deepEqual(await visitor.peek(), EMPTY, "idle for longer than the window");
    },
    { idleTimeout: 60, absoluteTimeout: 3600 },
  );

  const badEvents: SecurityEvent[] = [];
  run(
    "empty, malformed and oversized Cookie headers give no session, with events",
    async ({ client }) => {
      badEvents.length = 0;
      for (
        const header of [undefined, "", "sid=", "sid", "=v", ";;;", "   ", "sid=;sid=", 'sid=""', "sid=%2F"]
      ) {
        const result = await client().request("/peek", header === undefined ? {} : { cookie: header });
        equal(result.status, 200, JSON.stringify(header));
        deepEqual(JSON.parse(result.body), EMPTY, JSON.stringify(header));
        deepEqual(result.sessionCookies, [], JSON.stringify(header));
      }
      const { cookie } = await written(client);
      for (const huge of ["A".repeat(4094), cookie + "A".repeat(10_240)]) {
        deepEqual(await client().peek({ cookie: `sid=${huge}` }), EMPTY);
      }
      await sleep(10);
      deepEqual(
        badEvents.map((event) => event.type),
        ["malformed-cookie", "oversized-cookie", "oversized-cookie"],
      );
    },
    { onSecurityEvent: (event) => badEvents.push(event) },
  );

  const tamperEvents: SecurityEvent[] = [];
  run(
    "every changed character and every truncation give no session; the real one still opens",
    async ({ client }) => {
      const { owner, cookie } = await written(client);
      tamperEvents.length = 0;
      for (let i = 0; i < cookie.length; i++) {
        const replacement = BASE64URL[(BASE64URL.indexOf(cookie[i]) + 1) % 64];
        const tampered = cookie.slice(0, i) + replacement + cookie.slice(i + 1);
        deepEqual(await client().peek({ cookie: `sid=${tampered}` }), EMPTY, `position ${i}`);
      }
      for (let length = 0; length < cookie.length; length += 7) {
        deepEqual(await client().peek({ cookie: `sid=${cookie.slice(0, length)}` }), EMPTY, `${length} kept`);
      }
      const half = Math.floor(cookie.length / 8) * 4;
      deepEqual(await client().peek({ cookie: `sid=${cookie.slice(half)}${cookie.slice(0, half)}` }), EMPTY);
      ok(tamperEvents.length > cookie.length, "an event for each");
      ok(tamperEvents.every((event) => event.idHash === undefined), "no id is known for these");
      deepEqual((await owner.peek()).data, { user: "ada" });
    },
    { onSecurityEvent: (event) => tamperEvents.push(event) },
  );

  run("with duplicate cookie names the first value that opens wins", async ({ client }) => {
    const ada = await written(client);
    const bob = await written(client, "bob");
    const forged = ada.cookie.slice(0, -2) + (ada.cookie.endsWith("AA") ? "BA" : "AA");
    for (
      const [cookie, user] of [
        [`sid=${forged}; sid=${bob.cookie}`, "bob"],
        [`sid=${ada.cookie}; sid=${bob.cookie}`, "ada"],
        [`sid=${bob.cookie}; sid=${ada.cookie}`, "bob"],
        [`sid=garbage; sid=${ada.cookie}`, "ada"],
      ]
    ) {
      deepEqual((await client().peek({ cookie })).data, { user }, cookie);
    }
  });

  run("a value sealed for another cookie name does not open here", async ({ clock }) => {
    const now = () => clock.now;
    let value = "";
    await withApp({}, { now, cookie: { name: "other" } }, async (client) => {
      const visitor = client();
      await visitor.request("/set?key=user&value=ada");
      value = visitor.cookie!;
    });
    await withApp({}, { now }, async (client) => {
      deepEqual(await client().peek({ cookie: `sid=${value}` }), EMPTY);
    });
  });

  run(
    "keys rotate: an old-key cookie opens and is sealed anew; a dropped key ends it",
    async ({ clock }) => {
      const now = () => clock.now;
      let old = "";
      let resealed = "";
      await withApp({ keys: [OTHER_COOKIE_KEY] }, { now }, async (client) => {
        const visitor = client();
        await visitor.request("/set?key=user&value=ada");
        old = visitor.cookie!;
      });
      await withApp({ keys: [COOKIE_KEY, OTHER_COOKIE_KEY] }, { now }, async (client) => {
        const visitor = client();
        visitor.cookie = old;
        const result = await visitor.request("/peek");
        deepEqual(JSON.parse(result.body).data, { user: "ada" });
        equal(result.sessionCookies.length, 1, "sealed anew with the first key");
        resealed = visitor.cookie!;
        notEqual(resealed, old);
        deepEqual((await visitor.request("/peek")).sessionCookies, [], "once");
      });
      await withApp({ keys: [COOKIE_KEY] }, { now }, async (client) => {
        deepEqual((await client().peek({ cookie: `sid=${resealed}` })).data, { user: "ada" });
        deepEqual(await client().peek({ cookie: `sid=${old}` }), EMPTY, "the dropped key opens nothing");
      });
    },
  );

  run(
    "a session too large for one cookie fails with a 500 SessionTooLargeError and no cookie",
    async ({ client }) => {
      const visitor = client();
      await visitor.request("/set?key=user&value=ada");
      const before = visitor.cookie;
      const result = await visitor.request(`/set?key=big&value=${"x".repeat(3200)}`);
      equal(result.status, 500);
      equal(result.body, "error:SessionTooLargeError");
      deepEqual(result.sessionCookies, []);
      equal(visitor.cookie, before);
      deepEqual((await visitor.peek()).data, { user: "ada" }, "the client's cookie is as it was");
      const fits = await visitor.request(`/set?key=big&value=${"x".repeat(2000)}`);
      equal(fits.status, 200, "a large session that fits is fine");
      ok(fits.setCookies.find((c) => c.startsWith("sid="))!.length <= 4096);
    },
  );

  run(
    "destroy clears the cookie with its attributes; a copy of the old cookie still opens",
    async ({ client }) => {
      const visitor = client();
      const https = { "x-forwarded-proto": "https" };
      const set = await visitor.request("/count", https);
      const copy = visitor.cookie!;
      const cleared = await visitor.request("/logout", https);
      equal(cleared.body, "bye");
      equal(cleared.session!.value, "");
      equal(cleared.session!.attributes.get("max-age"), "0");
      for (const name of ["path", "domain", "secure", "samesite", "httponly"]) {
        equal(cleared.session!.attributes.get(name), set.session!.attributes.get(name), name);
      }
      equal(visitor.cookie, undefined);
      deepEqual(
        (await client().peek({ cookie: `sid=${copy}`, ...https })).data,
        { pageCount: 0 },
        "the documented limit: nothing on a server forgets a sealed cookie before its deadline",
      );
    },
    { trustProxy: true, cookie: { domain: "localhost", sameSite: "Strict" } },
  );

  run(
    "regenerate at login seals the data under a new id; a planted cookie never opens the victim's",
    async ({ client }) => {
      const attacker = client();
      await attacker.request("/count");
      const planted = attacker.cookie!;
      const victim = client();
      victim.cookie = planted;
      const login = await victim.request("/login?user=ada");
      equal(login.sessionCookies.length, 1);
      notEqual(victim.cookie, planted);
      deepEqual((await victim.peek()).data, { pageCount: 0, user: "ada" });
      deepEqual(
        (await attacker.peek()).data,
        { pageCount: 0 },
        "the attacker's cookie holds only its own data",
      );
    },
  );

  run("of two overlapping requests of one user, the last response wins", async ({ client }) => {
    const visitor = client();
    await visitor.request("/set?key=start&value=1");
    const slow = visitor.request("/set?key=a&value=1&delay=80");
    const fast = visitor.request("/set?key=b&value=2");
    await Promise.all([slow, fast]);
    deepEqual(
      (await visitor.peek()).data,
      { start: "1", a: "1" },
      "the slow request answered last: its cookie, without the fast one's key (no per-key merge)",
    );
  });

  for (const [title, path] of [["throws", "/throw"], ["answers 500", "/fail500"]]) {
    run(
      `a handler that ${title} sends no cookie; the old cookie keeps its data`,
      async ({ client }) => {
        const visitor = client();
        await visitor.request("/set?key=user&value=ada");
        const before = visitor.cookie;
        const failed = await visitor.request(path);
        equal(failed.status, 500);
        deepEqual(failed.sessionCookies, []);
        equal(visitor.cookie, before);
        deepEqual((await visitor.peek()).data, { user: "ada" });
      },
    );
  }

  const expiryEvents: SecurityEvent[] = [];
  run(
    "a cookie replayed after its deadline gives no session; events carry the storage key, never the id",
    async ({ client, clock }) => {
      expiryEvents.length = 0;
      const visitor = client();
      await visitor.request("/set?key=user&value=ada");
      clock.now += 61_000;
      deepEqual(await visitor.peek(), EMPTY);
      await sleep(10);
      deepEqual(expiryEvents.map((event) => event.type), ["expired-session"]);
      ok(/^s1_[A-Za-z0-9_-]{43}$/.test(expiryEvents[0].idHash!));
      ok(!JSON.stringify(expiryEvents).includes(visitor.cookie!));
    },
    { idleTimeout: 60, onSecurityEvent: (event) => expiryEvents.push(event) },
  );

  run(
    "isRevoked refuses a revoked session; a failing check reaches the error handler as a 503",
    async ({ clock }) => {
      const now = () => clock.now;
      const revoked = new Set<string>();
      let down = false;
      const events: SecurityEvent[] = [];
      await withApp(
        {
          isRevoked: ({ data }) => {
            if (down) throw new Error("revocation list unreachable");
            return revoked.has(String(data.user));
          },
        },
        { now, onSecurityEvent: (event) => events.push(event) },
        async (client) => {
          const visitor = client();
          await visitor.request("/set?key=user&value=ada");
          deepEqual((await visitor.peek()).data, { user: "ada" });
          down = true;
          const failing = await visitor.request("/peek");
          equal(failing.status, 503);
          equal(failing.body, sessionErrorBody(options, "SessionStoreError"));
          deepEqual(failing.sessionCookies, []);
          down = false;
          revoked.add("ada"); // "log out everywhere" for ada
          deepEqual(await visitor.peek(), EMPTY);
          await sleep(10);
          equal(events.filter((event) => event.type === "revoked-session").length, 1);
        },
      );
    },
  );
}

/** A client with a sealed session of `{ user }`, and its cookie value. */
async function written(client: () => Client, user = "ada"): Promise<{ owner: Client; cookie: string }> {
  const owner = client();
  await owner.request(`/set?key=user&value=${user}`);
  return { owner, cookie: owner.cookie! };
}
