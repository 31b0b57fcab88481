// The sealed cookie of `CookieStore`: the whole session record, encrypted and authenticated with AES-256-GCM
// (NIST SP 800-38D) through Web Crypto, under keys derived with HKDF-SHA-256 (RFC 5869). Strings in, strings
// out; opening never throws, whatever the value. docs/stores.md ("CookieStore") describes the format.
//
//   value  = base64url( version || salt || iv || ciphertext || tag )      RFC 4648 §5, no padding
//   version: 1 byte, 0x01                 a later format gets another byte and is read beside this one
//   salt:    16 random bytes              names the derived key: K = HKDF-SHA-256(master key, salt, INFO, 32)
//   iv:      12 random bytes              the AES-GCM nonce
//   tag:     16 bytes                     the AES-GCM authentication tag (128 bits)
//   AAD    = version || UTF-8(purpose)    the cookie name by default: a value cannot move to another cookie
//   plaintext = UTF-8 JSON [id, record]   the record with its own deadlines (meta), checked on every open
//
// Why a key per salt and not per message: SP 800-38D §8.3 allows at most 2^32 messages with random nonces
// under one key. Deriving a key from a random salt takes that limit off the master key. Each process draws a
// new salt after MESSAGES_PER_KEY messages, so one derived key sees at most 2^16 nonces (a repeat chance
// under 2^-65) while a seal costs one Web Crypto call instead of two (deriving a key is a call of its own;
// on Node 20 each costs 30-60 µs of CPU, measured in bench/micro.ts).

import { decodeBase64Url, encodeBase64Url } from "./_base64url.ts";
import { isWellFormedId, storageKey } from "./_crypto.ts";
import type { Presented } from "./_crypto.ts";
import { isSessionRecord } from "./store.ts";
import { withoutUnsetEntries } from "./_options.ts";
import type { SessionRecord } from "./store.ts";

/** The format's version byte, the first byte of every sealed value. */
export const SEALED_VERSION = 1;
/** Bytes of the random salt each derived key comes from. */
export const SALT_BYTES = 16;
/** Bytes of the random AES-GCM nonce (the 96 bits SP 800-38D recommends). */
export const IV_BYTES = 12;
/** Bytes of the AES-GCM authentication tag (128 bits). */
export const TAG_BYTES = 16;
/** Bytes before the ciphertext: version, salt and nonce. */
export const HEADER_BYTES = 1 + SALT_BYTES + IV_BYTES;
/** Messages a process seals under one derived key before it draws a new salt. */
export const MESSAGES_PER_KEY = 2 ** 16;
/** The least key material accepted, in bytes: AES-256's key size. */
export const MIN_KEY_BYTES = 32;

const INFO = new TextEncoder().encode("deno-sessions sealed cookie v1");
const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * What the core hands a `CookieStore` once, when a manager is built, to get
 * the sealer for its cookie. A method under this symbol is how the core tells
 * a sealing store from a store of records: it looks once, in its constructor.
 */
export const SEALING: unique symbol = Symbol("sealing store");

/** What an app's revocation check sees of a session whose cookie opened. */
export interface RevocationCheck {
  /** The session id (the same as `session.id`). */
  readonly id: string;
  /** When the session was created (or last regenerated), in milliseconds since the epoch. */
  readonly createdAt: number;
  /** The user `logIn()` bound the session to (`session.userId`), or `undefined` when none is logged in. */
  readonly userId: string | undefined;
  /** The session's data, as sealed. Do not change it. */
  readonly data: Readonly<Record<string, unknown>>;
}

/** A check that refuses sessions the app revoked: `true` (or a promise of it) refuses. */
export type RevocationHook = (session: RevocationCheck) => boolean | Promise<boolean>;

/** A sealing store: what the core looks for, once, on the `store` it is given. */
export interface SealingStore {
  /** The sealer for a cookie called `cookieName`. */
  [SEALING](cookieName: string): Sealer;
}

/** A cookie value that opened: its id, storage key, whether an older key opened it, and the record. */
export interface Opened extends Presented {
  /** The record sealed in the cookie: a fresh copy. */
  readonly record: SessionRecord;
}

/**
 * Why a sealed value was refused: not a sealed value of this version
 * (`malformed`), no key opens it (`bad-signature`: the authentication tag
 * fails, so it was changed, cut, sealed under another key or for another
 * cookie), or it opened but holds no record (`corrupt`).
 */
export type SealRefusal = "malformed" | "bad-signature" | "corrupt";

/** Two generations of at most `size` entries each: bounded memory without iterating. */
class Recent<V> {
  #current = new Map<string, V>();
  #older = new Map<string, V>();
  constructor(readonly size: number) {}

  get(key: string): V | undefined {
    return this.#current.get(key) ?? this.#older.get(key);
  }

  set(key: string, value: V): V {
    if (this.#current.size >= this.size) {
      this.#older = this.#current;
      this.#current = new Map();
    }
    this.#current.set(key, value);
    return value;
  }

  delete(key: string): void {
    this.#current.delete(key);
    this.#older.delete(key);
  }
}

// Random bytes in batches, as for ids (src/_crypto.ts): one getRandomValues call costs microseconds on Node
// whatever its size. Every byte is used once.
const RANDOM_BATCH = 4096;
let randomPool: Uint8Array<ArrayBuffer> = new Uint8Array(0);
let randomOffset = 0;

function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  if (randomOffset + length > randomPool.length) {
    randomPool = crypto.getRandomValues(new Uint8Array(RANDOM_BATCH));
    randomOffset = 0;
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + length);
  randomOffset += length;
  return bytes;
}

/** A salt as a map key: one character per byte. */
function saltKey(salt: Uint8Array): string {
  return String.fromCharCode(...salt);
}

/** The key a process seals under now, and how many more messages it may seal. */
interface SealingKey {
  salt: Uint8Array<ArrayBuffer>;
  key: Promise<CryptoKey>;
  left: number;
}

/** A value that opened with the first key: what a later request presenting it gets, parsed anew. */
interface Known {
  id: string;
  key: string;
  text: string;
}

/**
 * Seals and opens session records for one cookie (one purpose). Made by a
 * `CookieStore` for each manager; internal to the package.
 */
export class Sealer {
  /** The app's revocation check, if it gave one. */
  readonly isRevoked: RevocationHook | undefined;
  #keys: readonly Uint8Array<ArrayBuffer>[];
  #aad: Uint8Array<ArrayBuffer>;
  #bases: (Promise<CryptoKey> | undefined)[];
  #derived = new Recent<Promise<CryptoKey>>(64);
  #sealing: SealingKey | undefined;
  #known = new Recent<Known>(512);

  /**
   * @param keys Master keys, each at least {@linkcode MIN_KEY_BYTES} bytes: the first seals, all open.
   * @param purpose Bound into every value as additional authenticated data.
   * @param isRevoked The app's revocation check.
   */
  constructor(keys: readonly Uint8Array<ArrayBuffer>[], purpose: string, isRevoked?: RevocationHook) {
    this.#keys = keys;
    const purposeBytes = encoder.encode(purpose);
    this.#aad = new Uint8Array(1 + purposeBytes.length);
    this.#aad[0] = SEALED_VERSION;
    this.#aad.set(purposeBytes, 1);
    this.#bases = keys.map(() => undefined);
    this.isRevoked = isRevoked;
  }

  /** The HKDF key of master key `index`, imported once. */
  #base(index: number): Promise<CryptoKey> {
    return this.#bases[index] ??= crypto.subtle.importKey(
      "raw",
      this.#keys[index],
      "HKDF",
      false,
      ["deriveKey"],
    );
  }

  /** The AES-256-GCM key of master key `index` and `salt` (RFC 5869), derived once while it is in use. */
  #derive(index: number, salt: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
    const name = index + saltKey(salt);
    const known = this.#derived.get(name);
    if (known !== undefined) return known;
    const derived = this.#base(index).then((base) =>
      crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: salt.slice(), info: INFO },
        base,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      )
    );
    derived.catch(() => this.#derived.delete(name));
    return this.#derived.set(name, derived);
  }

  /** The key to seal the next message under: a new salt every {@linkcode MESSAGES_PER_KEY} messages. */
  #current(): SealingKey {
    let current = this.#sealing;
    if (current === undefined || current.left === 0) {
      const salt = randomBytes(SALT_BYTES).slice();
      const fresh: SealingKey = { salt, key: this.#derive(0, salt), left: MESSAGES_PER_KEY };
      // Should deriving ever fail, the next message draws a new salt rather than reuse a failed key.
      fresh.key.catch(() => this.#sealing === fresh && (this.#sealing = undefined));
      current = this.#sealing = fresh;
    }
    current.left--;
    return current;
  }

  /**
   * Seals `record` and the session `id` into a cookie value under the first key.
   *
   * @param id The session id.
   * @param record The record to seal, with its deadlines.
   * @returns The base64url cookie value.
   */
  async seal(id: string, record: SessionRecord): Promise<string> {
    const plaintext = encoder.encode(JSON.stringify([id, record]));
    const current = this.#current();
    const out = new Uint8Array(HEADER_BYTES + plaintext.length + TAG_BYTES);
    out[0] = SEALED_VERSION;
    out.set(current.salt, 1);
    const iv = randomBytes(IV_BYTES);
    out.set(iv, 1 + SALT_BYTES);
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: out.subarray(1 + SALT_BYTES, HEADER_BYTES), additionalData: this.#aad },
      await current.key,
      plaintext,
    );
    out.set(new Uint8Array(sealed), HEADER_BYTES);
    return encodeBase64Url(out);
  }

  /**
   * Opens a cookie value: the record it carries, or why it is refused. Tries
   * each key in turn. Values that opened with the first key are remembered
   * (their plaintext), so a returning client's cookie costs a JSON parse; the
   * record is parsed anew every time, so no two requests share an object.
   * Never rejects.
   *
   * @param value The cookie value.
   * @returns The opened session, or a refusal.
   */
  async open(value: string): Promise<Opened | SealRefusal> {
    const known = this.#known.get(value);
    if (known !== undefined) {
      return { id: known.id, key: known.key, rotated: false, record: JSON.parse(known.text)[1] };
    }
    const bytes = decodeBase64Url(value);
    if (bytes === undefined || bytes.length <= HEADER_BYTES + TAG_BYTES || bytes[0] !== SEALED_VERSION) {
      return "malformed";
    }
    const salt = bytes.subarray(1, 1 + SALT_BYTES);
    const iv = bytes.subarray(1 + SALT_BYTES, HEADER_BYTES);
    const sealed = bytes.subarray(HEADER_BYTES);
    for (let index = 0; index < this.#keys.length; index++) {
      let plaintext: ArrayBuffer;
      try {
        plaintext = await crypto.subtle.decrypt(
          { name: "AES-GCM", iv, additionalData: this.#aad },
          await this.#derive(index, salt),
          sealed,
        );
      } catch {
        continue; // the tag did not verify under this key
      }
      return this.#read(value, plaintext, index);
    }
    return "bad-signature";
  }

  /** The session in an authentic plaintext, or `corrupt` when it holds none. */
  #read(value: string, plaintext: ArrayBuffer, index: number): Opened | SealRefusal {
    let text: string;
    let parsed: unknown;
    try {
      text = strictDecoder.decode(plaintext);
      parsed = JSON.parse(text);
    } catch {
      return "corrupt";
    }
    if (!Array.isArray(parsed) || parsed.length !== 2) return "corrupt";
    const [id, record] = parsed;
    if (typeof id !== "string" || !isWellFormedId(id) || !isSessionRecord(record)) return "corrupt";
    const key = storageKey(id);
    // Values opened with an older key are not remembered: they are sealed anew on this request.
    if (index === 0) this.#known.set(value, { id, key, text });
    return { id, key, rotated: index > 0, record };
  }
}

/**
 * Checks the `keys` option of a sealing store: a non-empty list of strings
 * (UTF-8) or byte arrays of at least {@linkcode MIN_KEY_BYTES} bytes each.
 * Returns copies of the bytes.
 *
 * @throws {TypeError} naming the option.
 */
export function readKeys(keys: unknown, option: string): Uint8Array<ArrayBuffer>[] {
  const bad = () =>
    new TypeError(
      `Invalid ${option} option "keys": must be a non-empty list of keys (strings or Uint8Arrays) of at least ` +
        `${MIN_KEY_BYTES} random bytes each, the first sealing and all opening`,
    );
  if (!Array.isArray(keys)) throw bad();
  const present = withoutUnsetEntries<unknown>(
    keys,
    (detail) => new TypeError(`Invalid ${option} option "keys": ${detail}`),
  );
  if (present.length === 0) throw bad();
  return present.map((key) => {
    const bytes = typeof key === "string"
      ? encoder.encode(key)
      : key instanceof Uint8Array
      ? key.slice()
      : undefined;
    if (bytes === undefined || bytes.length < MIN_KEY_BYTES) throw bad();
    return bytes;
  });
}
