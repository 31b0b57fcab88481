// Shared pieces of the adapter suites: secrets, a cookie-keeping client, and per-test setup.

import type { SessionOptions } from "../core.ts";
import type { Store } from "../store.ts";
import { CookieStore } from "../stores/cookie.ts";
import { MemoryStore } from "../stores/memory.ts";
import type { AdapterSuiteOptions, SuiteApp, SuiteFrameworkOptions, SuiteStore } from "./adapter_suite.ts";
import { FaultyStore } from "./faulty_store.ts";
import { skipper } from "./store_suite.ts";
import type { TestFunction } from "./store_suite.ts";

export const SECRET = "suite-secret-0123456789-abcdefghijklmnop";
export const OTHER_SECRET = "suite-secret-rotated-9876543210-zyxwvuts";
/** The CookieStore keys of the suite's cookie-store runs. */
export const COOKIE_KEY = "suite-cookie-key-0123456789-abcdefghijklm";
export const OTHER_COOKIE_KEY = "suite-cookie-key-rotated-9876543210-zyxwv";

/**
 * What a suite case may need of the session store behind the app. Every
 * adapter runs the suite twice: with a `MemoryStore` (counted and faulted
 * through a `FaultyStore`), which has them all, and with a `CookieStore`,
 * which lacks them; the cases that need one are registered as skipped with
 * the reason below, and the cookie store's own cases stand beside them.
 *
 * - `serverRecords`: the test counts, inspects or fails the store's calls
 *   (`store`, `backing`, `count`), or relies on the write policy of a store (a write
 *   whose deadline did not move sends no cookie).
 * - `revocation`: a logged-out or regenerated cookie stops working at once.
 * - `merge`: two overlapping requests that set different keys both persist.
 * - `signedIds`: the test takes apart or forges an `id.signature` cookie, or
 *   sets `secret`.
 * - `perUserIndex`: the test lists or revokes a user's sessions.
 */
export type SuiteCapability = "serverRecords" | "revocation" | "merge" | "signedIds" | "perUserIndex";

/** Which store the app runs on. */
export type SuiteStoreKind = "memory" | "cookie";

/** What a `CookieStore` lacks, and why. */
export const COOKIE_STORE_LACKS: Record<SuiteCapability, string> = {
  serverRecords: "a CookieStore keeps no records on a server: nothing to count, inspect or make fail, and " +
    "every write travels in a new cookie",
  revocation:
    "a sealed cookie stays valid until its own deadline: nothing on a server remembers a logout or " +
    "a regenerate (docs/stores.md; the isRevoked option is the remedy)",
  merge: "the whole record travels in the cookie: of two overlapping requests the last response wins",
  signedIds: "the cookie is a sealed record, not an id.signature pair, and a secret is refused",
  perUserIndex: "a CookieStore keeps sessions in cookies: nothing on a server can list a user's sessions " +
    "or end one (logIn still binds a user; the isRevoked option is the remedy)",
};

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A parsed `Set-Cookie` header. */
export interface ParsedSetCookie {
  name: string;
  value: string;
  attributes: Map<string, string>;
}

export function parseSetCookie(header: string): ParsedSetCookie {
  const [pair, ...rest] = header.split(";");
  const eq = pair.indexOf("=");
  const attributes = new Map<string, string>();
  for (const part of rest) {
    const [key, ...value] = part.trim().split("=");
    attributes.set(key.toLowerCase(), value.join("="));
  }
  return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), attributes };
}

/** A cookie-keeping client for one app. */
export class Client {
  cookie: string | undefined;
  constructor(readonly app: SuiteApp, readonly cookieName = "sid") {}

  /** Sends a request with the kept cookie, unless `headers.cookie` gives a raw header of its own. */
  async request(path: string, headers: Record<string, string> = {}) {
    const init: Record<string, string> = { ...headers };
    if (init.cookie === undefined && this.cookie !== undefined) {
      init.cookie = `${this.cookieName}=${this.cookie}`;
    }
    const response = await this.app.fetch(
      new Request(`http://localhost${path}`, { headers: init, redirect: "manual" }),
    );
    const body = await response.text();
    const all = response.headers.getSetCookie();
    const mine = all.map(parseSetCookie).filter((c) => c.name === this.cookieName);
    const session = mine.at(-1);
    if (session) this.cookie = session.attributes.get("max-age") === "0" ? undefined : session.value;
    return {
      status: response.status,
      body,
      headers: response.headers,
      setCookies: all,
      session,
      sessionCookies: mine,
    };
  }

  /** What `/peek` shows: whether the session is new, and its data. */
  async peek(headers: Record<string, string> = {}) {
    const result = await this.request("/peek", headers);
    return JSON.parse(result.body) as { isNew: boolean; data: Record<string, unknown> };
  }
}

/**
 * What each suite test gets: a fresh app on a fresh store, and a clock it
 * controls. With a server store (a `MemoryStore` unless the suite's
 * `createStore` gives another) the store is counted and faulted; with a
 * `CookieStore` (`kind: "cookie"`) there is no such store, and reading
 * `store`, `backing` or `count` throws: a case that needs them declares
 * `serverRecords`.
 */
export interface Setup {
  app: SuiteApp;
  /** What the app's session middleware was given: `backing`, counted and open to injected faults. */
  store: FaultyStore;
  /** The store under the fault injector, for a test that reads or writes behind the app. */
  backing: Store;
  /** How many unexpired sessions the backing store holds. */
  count(): Promise<number>;
  clock: { now: number };
  kind: SuiteStoreKind;
  client(): Client;
}

/** Registers one suite case; `extra` overrides session options, `framework` asks for framework settings. */
export type Run = (
  title: string,
  body: (setup: Setup) => Promise<void>,
  extra?: SessionOptions,
  framework?: SuiteFrameworkOptions,
) => unknown;

/** A {@linkcode Run} whose `needs(...)` gives a runner for cases that need those capabilities. */
export type Runner = Run & { needs(...capabilities: SuiteCapability[]): Run };

/**
 * Registers suite tests that each get a fresh {@linkcode Setup}, on a
 * `MemoryStore` (`kind: "memory"`) or a `CookieStore` (`kind: "cookie"`,
 * titled `<name> + CookieStore: ...`). Cases that need a capability the
 * store lacks are registered as skipped, with the reason.
 */
export function createRunner(
  test: TestFunction,
  options: AdapterSuiteOptions,
  kind: SuiteStoreKind = "memory",
): Runner {
  const prefix = kind === "cookie" ? `${options.name} + CookieStore` : options.name;
  const skip = skipper(test);
  const register = (needs: SuiteCapability[]): Run => (title, body, extra = {}, framework) => {
    const lacking = kind === "cookie"
      ? needs.find((capability) => capability in COOKIE_STORE_LACKS)
      : undefined;
    if (lacking !== undefined) return skip(`${prefix}: ${title}`, COOKIE_STORE_LACKS[lacking]);
    return test(`${prefix}: ${title}`, async () => {
      const clock = { now: Date.now() };
      const now = () => clock.now;
      let setup: Omit<Setup, "app" | "client">;
      let sessionOptions: SessionOptions;
      let backing: Store | undefined;
      if (kind === "cookie") {
        sessionOptions = { store: new CookieStore({ keys: [COOKIE_KEY] }), now, ...extra };
        const absent = () => {
          throw new Error('this case reads the server-side store: declare needs("serverRecords")');
        };
        setup = Object.defineProperties({ clock, kind }, {
          store: { get: absent },
          backing: { get: absent },
          count: { get: absent },
        }) as Omit<Setup, "app" | "client">;
      } else {
        const suiteStore = await (options.createStore?.(now) ?? memoryStore(now));
        backing = suiteStore.store;
        const store = new FaultyStore(backing);
        const count = async () => await suiteStore.count();
        sessionOptions = { store, secret: SECRET, now, ...extra };
        setup = { store, backing, count, clock, kind };
      }
      try {
        // `secret: undefined` in `extra` asks for the unsigned mode, which means leaving the option out.
        if (sessionOptions.secret === undefined) delete sessionOptions.secret;
        const app = await (framework === undefined
          ? options.createApp(sessionOptions)
          : options.createApp(sessionOptions, framework));
        try {
          const client = () =>
            new Client(app, extra.cookie?.name);
          await body(Object.defineProperties(setup, {
            app: { value: app, enumerable: true },
            client: { value: client, enumerable: true },
          }) as Setup);
        } finally {
          await app.close?.();
        }
      } finally {
        await backing?.close?.();
      }
    });
  };
  return Object.assign(register([]), {
    needs: (...capabilities: SuiteCapability[]) => register(capabilities),
  });
}

/** The suite's default store: a `MemoryStore` on the suite's clock, counted without its expired entries. */
function memoryStore(now: () => number): SuiteStore {
  const memory = new MemoryStore({ now });
  return {
    store: memory,
    count: () => [...memory.keys()].filter((key) => memory.get(key) !== undefined).length,
  };
}
