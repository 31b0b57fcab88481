/**
 * Sessions sealed into the cookie: no server-side store at all. The whole
 * record travels in the session cookie, encrypted and authenticated.
 *
 * @module
 */

import { rejectUnknownStoreOptions } from "../_options.ts";
import { readKeys, Sealer, SEALING } from "../_seal.ts";
import type { RevocationHook, SealingStore } from "../_seal.ts";
import type { SessionRecord, Store, WriteResult } from "../store.ts";

export type { RevocationCheck, RevocationHook } from "../_seal.ts";

/** Options of {@linkcode CookieStore}. */
export interface CookieStoreOptions {
  /**
   * Master keys, each at least 32 bytes: strings (their UTF-8 bytes) or
   * `Uint8Array`s. Use 32 random bytes each, e.g. the base64 of
   * `crypto.getRandomValues(new Uint8Array(32))`. The first seals; every key
   * opens, so keys rotate without logging anyone out: put the new key first
   * and keep the old one second until the longest session has expired. A
   * cookie opened with an older key is sealed anew with the first on that
   * request. An entry after the first may be `undefined` (an old key's
   * environment variable not set) and is left out; an undefined first entry
   * is refused.
   */
  keys: readonly (string | Uint8Array | undefined)[];
  /**
   * The purpose bound into every sealed value as additional authenticated
   * data. Default: the cookie name, so a value sealed for one cookie (or one
   * app sharing the keys under another cookie name) never opens as another.
   */
  purpose?: string;
  /**
   * Called after a cookie opens, before its session is used: answer `true`
   * (or a promise of it) to refuse it, as if it had expired (a
   * `revoked-session` security event, a fresh session). This is how a
   * stateless cookie learns about a logout: keep a small server-side list
   * (a "not valid before" time per user, or revoked session ids) and check
   * it here. Rejections and throws fail the request as a store failure
   * (`SessionStoreError`, 503), and the manager's `storeTimeout` applies.
   */
  isRevoked?: RevocationHook;
}

/** Every {@linkcode CookieStoreOptions} name (the type checker keeps the list complete): others are refused. */
const OPTION_NAMES = Object.keys(
  { keys: true, purpose: true, isRevoked: true } satisfies Record<keyof CookieStoreOptions, true>,
);
const USE_KEYS = 'use "keys": a list of keys of 32 bytes or more; the first seals, every key opens';
/** The key's name in iron-session (`password`), @hono/session (`secret`) and oak_sessions (`encryptionKey`). */
const OPTION_HINTS = { password: USE_KEYS, secret: USE_KEYS, encryptionKey: USE_KEYS };

/**
 * Keeps each session in its own cookie, sealed: nothing is stored on the
 * server. Pass it as the `store` option like any other store; the core then
 * seals the whole record (data, flash values and deadlines) into the session
 * cookie at commit and opens it again on the next request. For apps without
 * a store at hand: Deno Deploy without KV, Workers, a static site's one API
 * route.
 *
 * **Format.** base64url (RFC 4648 §5) of a version byte, a 16-byte random
 * salt, a 12-byte random nonce, and the AES-256-GCM ciphertext and 128-bit tag
 * (NIST SP 800-38D) of the JSON record, through Web Crypto on Deno, Node, Bun
 * and Workers alike. The AES key is derived from the first master key and the
 * salt with HKDF-SHA-256 (RFC 5869); each process draws a new salt every
 * 65,536 cookies, so no key comes near the 2^32 random nonces SP 800-38D
 * (section 8.3) allows one key. The cookie name (`purpose`) is authenticated
 * with it, so a value cannot be moved to another cookie. The record's idle
 * and absolute deadlines are inside the sealed value and checked on every
 * request, whatever the browser does with `Max-Age`.
 *
 * **Limits.**
 * - One cookie holds at most 4096 bytes (RFC 6265, section 6.1; RFC 6265bis,
 *   section 5.6). The whole `Set-Cookie` value is measured at commit; a
 *   session that would not fit fails that request with a
 *   `SessionTooLargeError` (500) before any header is sent. The record,
 *   sealed, costs 45 bytes plus its JSON, times 4/3 for base64url: about
 *   2,800 bytes of JSON data fit beside the id, the deadlines and the
 *   cookie's attributes (docs/stores.md has the measurements).
 * - A cookie stays valid until its own deadline: a logged-out cookie that an
 *   attacker copied earlier still opens, unless `isRevoked` refuses it.
 *   `destroy()` clears the browser's copy and `regenerate()` replaces it,
 *   but nothing on a server forgets the old one.
 * - Two overlapping requests of one user each send a whole cookie: the last
 *   response wins, with no per-key merge.
 * - The request and response carry the whole session: keep it small.
 *
 * Tampered, truncated, re-ordered, unknown-version, wrong-key, moved,
 * expired and oversized cookies give a fresh session and a security event
 * (`malformed-cookie`, `bad-signature`, `expired-session`,
 * `oversized-cookie`), never an exception. A `secret` option is refused with
 * this store: its keys protect the cookie.
 *
 * This store keeps nothing itself: `get`, `set` and `delete` throw, as the
 * core never calls them. They exist so it can be passed wherever a `Store`
 * goes.
 *
 * @example
 * ```ts
 * import { SessionManager } from "../core.ts";
 * import { CookieStore } from "./cookie.ts";
 *
 * const key = "a-random-key-of-at-least-32-bytes-0123456789";
 * const sessions = new SessionManager({ store: new CookieStore({ keys: [key] }) });
 * const session = await sessions.load({ cookie: null, https: true });
 * session.set("user", "ada");
 * const setCookie = await sessions.commit(session);
 * console.log(setCookie!.length <= 4096); // true
 * console.log(setCookie!.includes("ada")); // false: sealed
 *
 * const cookie = setCookie!.split(";")[0];
 * const next = await sessions.load({ cookie, https: true });
 * console.log(next.get("user")); // "ada"
 * console.log(await sessions.commit(next)); // undefined: read, not sealed again
 * ```
 */
export class CookieStore implements Store, SealingStore {
  #keys: Uint8Array<ArrayBuffer>[];
  #purpose: string | undefined;
  #isRevoked: RevocationHook | undefined;

  /**
   * Validates `options`.
   *
   * @throws {TypeError} naming the first bad or unknown option.
   */
  constructor(options: CookieStoreOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError('Invalid CookieStore options: expected an object with "keys"');
    }
    rejectUnknownStoreOptions("CookieStore", options, OPTION_NAMES, OPTION_HINTS);
    this.#keys = readKeys(options.keys, "CookieStore");
    const purpose = options.purpose;
    if (purpose !== undefined && (typeof purpose !== "string" || purpose.length === 0)) {
      throw new TypeError('Invalid CookieStore option "purpose": must be a non-empty string');
    }
    this.#purpose = purpose;
    if (options.isRevoked !== undefined && typeof options.isRevoked !== "function") {
      throw new TypeError('Invalid CookieStore option "isRevoked": must be a function');
    }
    this.#isRevoked = options.isRevoked;
  }

  /** The sealer for one manager's cookie. The core calls it once, when the manager is built. */
  [SEALING](cookieName: string): Sealer {
    return new Sealer(this.#keys, this.#purpose ?? cookieName, this.#isRevoked);
  }

  /**
   * Not used: a `CookieStore` keeps no record on the server.
   *
   * @throws {TypeError} always: the record is in the cookie, and the core never asks.
   */
  get(_key: string): SessionRecord | undefined {
    throw notAStore();
  }

  /**
   * Not used: a `CookieStore` keeps no record on the server.
   *
   * @throws {TypeError} always: the record is in the cookie, and the core never asks.
   */
  set(): WriteResult {
    throw notAStore();
  }

  /**
   * Not used: a `CookieStore` keeps no record on the server.
   *
   * @throws {TypeError} always: the record is in the cookie, and the core never asks.
   */
  delete(_key: string): void {
    throw notAStore();
  }
}

function notAStore(): TypeError {
  return new TypeError(
    "A CookieStore keeps nothing on the server: pass it as the `store` option of a SessionManager or " +
      "session() middleware of this package, which seals the session into the cookie",
  );
}
