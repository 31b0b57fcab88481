// Shared pieces of the adapter suites: secrets, a cookie-keeping client, and per-test setup.

import type { SessionOptions } from "../core.ts";
import { MemoryStore } from "../stores/memory.ts";
import type { AdapterSuiteOptions, SuiteApp, SuiteFrameworkOptions, SuiteStore } from "./adapter_suite.ts";
import { FaultyStore } from "./faulty_store.ts";
import type { TestFunction } from "./store_suite.ts";

export const SECRET = "suite-secret-0123456789-abcdefghijklmnop";
export const OTHER_SECRET = "suite-secret-rotated-9876543210-zyxwvuts";

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

/** What each suite test gets: a fresh app on a fresh counted store, and a clock it controls. */
export interface Setup {
  app: SuiteApp;
  /** What the app's session middleware was given: `backing`, counted and open to injected faults. */
  store: FaultyStore;
  /** The real store behind `store` (a MemoryStore unless the suite's `createStore` says otherwise). */
  backing: SuiteStore;
  clock: { now: number };
  client(): Client;
}

/**
 * Registers suite tests that each get a fresh {@linkcode Setup}; `extra`
 * overrides session options, `framework` asks for framework settings.
 */
export function createRunner(test: TestFunction, options: AdapterSuiteOptions) {
  return (
    title: string,
    body: (setup: Setup) => Promise<void>,
    extra: SessionOptions = {},
    framework?: SuiteFrameworkOptions,
  ) =>
    test(`${options.name}: ${title}`, async () => {
      const clock = { now: Date.now() };
      const now = () => clock.now;
      const backing: SuiteStore = options.createStore
        ? await options.createStore(now)
        : new MemoryStore({ now });
      const store = new FaultyStore(backing);
      const sessionOptions: SessionOptions = { store, secret: SECRET, now, ...extra };
      // `secret: undefined` in `extra` asks for the unsigned mode, which means leaving the option out.
      if (sessionOptions.secret === undefined) delete sessionOptions.secret;
      try {
        const app = await (framework === undefined
          ? options.createApp(sessionOptions)
          : options.createApp(sessionOptions, framework));
        try {
          await body({
            app,
            store,
            backing,
            clock,
            client: () => new Client(app, extra.cookie?.name),
          });
        } finally {
          await app.close?.();
        }
      } finally {
        await backing.close?.();
      }
    });
}
