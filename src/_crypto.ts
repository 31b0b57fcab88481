// Session ids, their storage keys, and the cookie token that carries an id: strings in, strings out.
//
// Hashing is @noble/hashes (audited, pure JavaScript, synchronous): see docs/security.md for why it, and
// not node:crypto or Web Crypto, with the measured costs.

import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { encodeBase64Url } from "./_base64url.ts";

export { encodeBase64Url } from "./_base64url.ts";

/** Bytes of randomness in a session id: 192 bits, 32 base64url characters. */
export const ID_BYTES = 24;
/** Length of an id this library generates. */
export const ID_LENGTH = 32;
/** Length of an HMAC-SHA-256 signature in base64url. */
const SIGNATURE_LENGTH = 43;
/**
 * The cookie budget of RFC 6265bis (section 5.6, "Storage Model"): user agents
 * ignore a cookie whose name and value together exceed 4096 octets. The core
 * reads and writes against this one number (see {@linkcode maxCookieValueLength}).
 */
export const COOKIE_BUDGET = 4096;
/** The version prefix of storage keys: a later scheme gets another prefix and can live beside this one. */
export const STORAGE_KEY_PREFIX = "s1_";

const ID = /^[A-Za-z0-9_-]{32}$/;
const encoder = new TextEncoder();

/**
 * The longest cookie value the core reads or writes under a cookie named
 * `name` (ASCII, as cookie names are checked to be): the rest of the
 * {@linkcode COOKIE_BUDGET}. Longer values are dropped before any hashing or
 * store call, and the core refuses to send one.
 */
export function maxCookieValueLength(name: string): number {
  return COOKIE_BUDGET - name.length;
}

// Random bytes are drawn from the CSPRNG in batches: one getRandomValues call costs microseconds on Node
// whatever its size, and every byte is still used for exactly one id.
const RANDOM_BATCH = ID_BYTES * 256;
let randomPool = new Uint8Array(0);
let randomOffset = 0;

/** A new session id: {@linkcode ID_BYTES} bytes from the CSPRNG (Web Crypto), base64url. */
export function generateId(): string {
  if (randomOffset + ID_BYTES > randomPool.length) {
    randomPool = crypto.getRandomValues(new Uint8Array(RANDOM_BATCH));
    randomOffset = 0;
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + ID_BYTES);
  randomOffset += ID_BYTES;
  return encodeBase64Url(bytes);
}

/** Whether a value has the exact shape of an id this library generates. */
export function isWellFormedId(value: string): boolean {
  return value.length === ID_LENGTH && ID.test(value);
}

// The hashing leaf. A new session hashes twice (its signature and its storage key); noble's one-shot calls
// allocate a hash object, its buffers and a digest each time, which measured about 4 µs per signature and
// 2 µs per SHA-256 on Node and Deno, where a whole request costs 10-50 µs. Copying a prepared state into a
// reused instance (`_cloneInto`, part of noble's `Hash` interface), writing the digest into a reused buffer
// (`digestInto`) and writing ASCII text as bytes without `TextEncoder` roughly halve that (docs/security.md
// has the table). The scratch space below is used only inside these functions, synchronously, so no call can
// see another's bytes.
const FRESH_SHA256 = sha256.create();
const scratchSha = sha256.create();
const scratchHmac = hmac.create(sha256, new Uint8Array(32));
const scratchDigest = new Uint8Array(32);
let scratchText = new Uint8Array(64);

/** The bytes of `text`: ASCII written into a reused buffer, anything else UTF-8 encoded. */
function textBytes(text: string): Uint8Array {
  const length = text.length;
  if (scratchText.length < length) scratchText = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return encoder.encode(text);
    scratchText[i] = code;
  }
  return scratchText.subarray(0, length);
}

/** base64url SHA-256 (FIPS 180-4) of the UTF-8 bytes of `text`. */
function sha256Base64Url(text: string): string {
  FRESH_SHA256._cloneInto(scratchSha).update(textBytes(text)).digestInto(scratchDigest);
  return encodeBase64Url(scratchDigest);
}

/** A keyed HMAC-SHA-256: its key blocks absorbed once, reused for every message. */
type KeyedHmac = ReturnType<typeof hmac.create>;

/** base64url HMAC-SHA-256 (RFC 2104) of the UTF-8 bytes of `text` under `keyed`, which stays as it was. */
function hmacBase64Url(keyed: KeyedHmac, text: string): string {
  keyed._cloneInto(scratchHmac).update(textBytes(text)).digestInto(scratchDigest);
  return encodeBase64Url(scratchDigest);
}

/**
 * The key a store keeps the session under: {@linkcode STORAGE_KEY_PREFIX} and
 * the base64url SHA-256 of the id (46 characters). An id carries 192 random
 * bits, so the hash cannot be inverted or guessed, and a dump of the store
 * holds nothing that can be replayed as a cookie. No secret goes in: keys stay
 * the same when secrets rotate and across processes.
 */
export function storageKey(id: string): string {
  return STORAGE_KEY_PREFIX + sha256Base64Url(id);
}

/** The version prefix of user keys ({@linkcode userKey}). */
export const USER_KEY_PREFIX = "u1_";

/**
 * A key-safe name for a user id, for stores that index sessions by user:
 * {@linkcode USER_KEY_PREFIX} and the base64url SHA-256 of the id (46
 * characters, the shape of a storage key), whatever characters the id holds.
 */
export function userKey(userId: string): string {
  return USER_KEY_PREFIX + sha256Base64Url(userId);
}

/** The value of a base64url character (`A`-`Z`, `a`-`z`, `0`-`9`, `-`, `_`); -1 for any other. */
function base64UrlValue(code: number): number {
  if (code >= 65 && code <= 90) return code - 65;
  if (code >= 97 && code <= 122) return code - 71;
  if (code >= 48 && code <= 57) return code + 4;
  return code === 45 ? 62 : code === 95 ? 63 : -1;
}

/** Ids tried before {@linkcode generateIdInGroup} gives up: the chance of needing more is e^-244. */
const GROUP_ATTEMPTS = 1_000_000;

/**
 * A new session id whose storage key's first two hash characters are
 * `group` (e.g. `"Ab"`: the storage key then starts `s1_Ab`), for a store that
 * must keep every session of one user in one Redis Cluster slot. Ids are
 * drawn as {@linkcode generateId} draws them, until one fits: 4,096 tries on
 * average (12 bits), about 2-4 ms, paid once per login. The id keeps its 192
 * random bits; only its hash is constrained, and an attacker who knows the
 * group still faces 2^180 candidates per user.
 *
 * Its own leaf because it runs thousands of times per call: it compares the
 * first 12 bits of each digest with the group's instead of encoding the hash.
 */
export function generateIdInGroup(group: string): string {
  const high = base64UrlValue(group.charCodeAt(0));
  const low = base64UrlValue(group.charCodeAt(1));
  if (group.length !== 2 || high < 0 || low < 0) throw new TypeError(`Invalid storage key group "${group}"`);
  const want = (high << 6) | low;
  for (let attempt = 0; attempt < GROUP_ATTEMPTS; attempt++) {
    const id = generateId();
    FRESH_SHA256._cloneInto(scratchSha).update(textBytes(id)).digestInto(scratchDigest);
    if (((scratchDigest[0] << 4) | (scratchDigest[1] >> 4)) === want) return id;
  }
  throw new Error(`No id found for storage key group "${group}" in ${GROUP_ATTEMPTS} tries`);
}

/**
 * The handle of a stored session, for lists of a user's sessions: `h1_` and
 * 22 base64url characters of SHA-256 over a purpose string and the storage
 * key. It names the session to `revoke()` and nothing more: it is not the
 * cookie value and cannot be turned into it, nor into the storage key.
 */
export function sessionHandle(storageKey: string): string {
  return "h1_" + sha256Base64Url("session handle\0" + storageKey).slice(0, 22);
}

/** What a cookie value carries once it is read and verified. */
export interface Presented {
  /** The session id. */
  readonly id: string;
  /** Its storage key. */
  readonly key: string;
  /** True when it verified with a secret other than the first: send it anew. */
  readonly rotated: boolean;
}

/** Why a cookie value was refused. */
export type Refusal = "malformed" | "bad-signature";

/**
 * How the session cookie carries an id: chosen once when the manager is
 * built, never per request. `SignedToken` and `UnsignedToken` carry an id; a
 * later sealing mode (the whole record in the cookie) fits the same place.
 */
export interface CookieToken {
  /** Reads a cookie value: what it carries, or why it is refused. Never throws. */
  read(value: string): Presented | Refusal;
  /** The cookie value for an id. */
  write(id: string): string;
  /** The longest value `write` gives, checked once against the cookie budget. */
  readonly maxLength: number;
}

/**
 * Answers a token remembers: two generations of this many, so memory stays bounded without iterating (at
 * most 16,384 entries, each the cookie value and its id and storage key: about 300 bytes, some 5 MB). 4,096
 * let a working set of 10,000 returning clients (the bench's `--pool=10000`) miss every time, paying an HMAC
 * and a SHA-256 per request: 8,192 took that read on Deno from 10.7 to 6.5 µs (bench/deno_cold_read.ts, issue 17).
 */
const REMEMBERED = 8192;

/**
 * Remembers the answer for cookie values that passed every check, so a
 * returning client's cookie costs a lookup instead of hashing. Only exact
 * strings that verified are kept, so it cannot accept anything the checks
 * would refuse.
 *
 * The generations are null-prototype objects used as dictionaries, not `Map`s: the value looked up is a
 * fresh string each request (sliced from the `Cookie` header), and on Deno 2.9 (V8 15) a `Map` lookup by a
 * string whose hash is not computed yet cost ≈ 85 ns against ≈ 45 ns for a property lookup, which finds the
 * remembered (internalized) key without hashing into a new table; Node 20, 22 and 24 gain about 35 ns too
 * (bench/results/2026-11-30-issue-17-read-path.md).
 * A value that is no remembered key, `__proto__` or a number included, finds no own property: `undefined`.
 */
class Remembered {
  #current: Record<string, Presented> = Object.create(null);
  #older: Record<string, Presented> = Object.create(null);
  #size = 0;

  get(value: string): Presented | undefined {
    return this.#current[value] ?? this.#older[value];
  }

  add(value: string, presented: Presented): Presented {
    if (this.#size >= REMEMBERED) {
      this.#older = this.#current;
      this.#current = Object.create(null);
      this.#size = 0;
    }
    if (this.#current[value] === undefined) this.#size++;
    this.#current[value] = presented;
    return presented;
  }
}

/** An unsigned cookie: the id itself. Nothing vouches for it but its shape and the store lookup. */
export class UnsignedToken implements CookieToken {
  readonly maxLength = ID_LENGTH;
  #remembered = new Remembered();

  read(value: string): Presented | Refusal {
    const known = this.#remembered.get(value);
    if (known !== undefined) return known;
    if (!isWellFormedId(value)) return "malformed";
    return this.#remembered.add(value, Object.freeze({ id: value, key: storageKey(value), rotated: false }));
  }

  write(id: string): string {
    return id;
  }
}

/** Compares two strings of equal length without stopping at the first difference. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/**
 * A signed cookie: `id.signature`, the signature HMAC-SHA-256 (RFC 2104) of
 * the id under the first secret, base64url. Verifies under each secret in
 * turn, comparing in constant time; only the canonical spelling verifies.
 */
export class SignedToken implements CookieToken {
  readonly maxLength = ID_LENGTH + 1 + SIGNATURE_LENGTH;
  /** One keyed HMAC per secret, its key blocks computed once; cloned per message. */
  #keys: KeyedHmac[];
  #remembered = new Remembered();

  constructor(secrets: string[]) {
    this.#keys = secrets.map((secret) => hmac.create(sha256, encoder.encode(secret)));
  }

  /** The base64url HMAC of `id` under secret number `index`. A method of its own so tests can count calls. */
  signature(index: number, id: string): string {
    return hmacBase64Url(this.#keys[index], id);
  }

  read(value: string): Presented | Refusal {
    const known = this.#remembered.get(value);
    if (known !== undefined) return known;
    if (value.length !== ID_LENGTH + 1 + SIGNATURE_LENGTH || value.charCodeAt(ID_LENGTH) !== 46) {
      return "malformed";
    }
    const id = value.slice(0, ID_LENGTH);
    const signature = value.slice(ID_LENGTH + 1);
    if (!isWellFormedId(id) || !/^[A-Za-z0-9_-]{43}$/.test(signature)) return "malformed";
    for (let i = 0; i < this.#keys.length; i++) {
      if (constantTimeEqual(this.signature(i, id), signature)) {
        const presented = Object.freeze({ id, key: storageKey(id), rotated: i > 0 });
        // Values under older secrets are not remembered: they are sent anew on this request.
        return i === 0 ? this.#remembered.add(value, presented) : presented;
      }
    }
    return "bad-signature";
  }

  /** Not remembered: many new sessions never come back, and one that does is remembered by its first read. */
  write(id: string): string {
    return `${id}.${this.signature(0, id)}`;
  }
}
