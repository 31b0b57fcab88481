// Session ids (Web Crypto's CSPRNG), HMAC signing and id hashing.

import { encodeBase64Url } from "./_base64url.ts";
import { HmacSha256, sha256 } from "./_hmac.ts";

export { encodeBase64Url } from "./_base64url.ts";

/** Bytes of randomness in a session id: 192 bits, 32 base64url characters. */
export const ID_BYTES = 24;
/** Length of an id this library generates. */
export const ID_LENGTH = 32;
/**
 * The longest cookie value the core looks at. Longer values are dropped before
 * any HMAC or store call. It leaves room for stores whose handle is larger than
 * an id (an encrypted cookie) inside the 4096-byte cookie budget.
 */
export const MAX_COOKIE_VALUE_LENGTH = 4000;
const HANDLE = /^[A-Za-z0-9_-]+$/;

const encoder = new TextEncoder();

// Random bytes are drawn from the CSPRNG in batches: one getRandomValues call costs microseconds on Node
// whatever its size, and every byte is still used for exactly one id.
const RANDOM_BATCH = ID_BYTES * 256;
let randomPool = new Uint8Array(0);
let randomOffset = 0;

/** A new session id: {@linkcode ID_BYTES} bytes from the CSPRNG, base64url. */
export function generateId(): string {
  if (randomOffset + ID_BYTES > randomPool.length) {
    randomPool = crypto.getRandomValues(new Uint8Array(RANDOM_BATCH));
    randomOffset = 0;
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + ID_BYTES);
  randomOffset += ID_BYTES;
  return encodeBase64Url(bytes);
}

/**
 * Whether a value has the shape of a session handle: base64url characters only,
 * at least as long as a generated id and at most the cookie budget.
 */
export function isWellFormedHandle(value: string): boolean {
  return value.length >= ID_LENGTH &&
    value.length <= MAX_COOKIE_VALUE_LENGTH && HANDLE.test(value);
}

/**
 * Whether a value has the exact shape of an id this library generates. Used
 * for unsigned cookies, where nothing else vouches for the value.
 */
export function isWellFormedId(value: string): boolean {
  return value.length === ID_LENGTH && HANDLE.test(value);
}

/** The outcome of verifying a signed cookie value. */
export interface Verified {
  /** The session handle inside the cookie value. */
  readonly handle: string;
  /** True when it verified with a secret other than the first: re-sign it. */
  readonly rotated: boolean;
}

/** Compares two strings of equal length without stopping at the first difference. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;

/** Signed values a {@linkcode Signer} remembers: two generations of this many. */
const REMEMBERED = 4096;

/**
 * Signs handles with HMAC-SHA-256 under the first secret and verifies them
 * under each secret in turn. Synchronous: see `_hmac.ts` for why it does not
 * use `crypto.subtle`.
 *
 * It remembers the values it verified under the first secret, so a
 * returning client's cookie costs a map lookup instead of two hash
 * compressions. Only exact strings that passed the HMAC are remembered, so
 * the memory cannot accept anything the HMAC would refuse. Two generations of
 * maps bound it without ever iterating one.
 */
export class Signer {
  #keys: HmacSha256[];
  #handles = new Map<string, Verified>();
  #olderHandles = new Map<string, Verified>();

  constructor(secrets: string[]) {
    this.#keys = secrets.map((secret) => new HmacSha256(encoder.encode(secret)));
  }

  #remember(handle: string, value: string): void {
    if (this.#handles.size >= REMEMBERED) {
      this.#olderHandles = this.#handles;
      this.#handles = new Map();
    }
    // One frozen answer per value, handed out on every hit: no allocation on the hot path.
    this.#handles.set(value, Object.freeze({ handle, rotated: false }));
  }

  /**
   * Returns `handle.signature`. Not remembered: many new sessions never come
   * back, and one that does is remembered by its first `verify`.
   */
  sign(handle: string): string {
    // Handles are base64url (checked before any store call), so ASCII as base64Url requires.
    return `${handle}.${this.#keys[0].base64Url(handle)}`;
  }

  /**
   * Verifies `handle.signature`, comparing in constant time. Answers
   * `"malformed"` when the value does not even have the shape of a signed
   * handle, and `"bad-signature"` when no secret verifies it; never throws.
   * Only the canonical spelling of a signature verifies.
   */
  verify(value: string): Verified | "malformed" | "bad-signature" {
    const known = this.#handles.get(value) ?? this.#olderHandles.get(value);
    if (known !== undefined) return known;
    const dot = value.lastIndexOf(".");
    if (dot < 0) return "malformed";
    const handle = value.slice(0, dot);
    const signature = value.slice(dot + 1);
    if (!SIGNATURE.test(signature) || !isWellFormedHandle(handle)) return "malformed";
    for (let i = 0; i < this.#keys.length; i++) {
      if (constantTimeEqual(this.#keys[i].base64Url(handle), signature)) {
        if (i === 0) this.#remember(handle, value);
        return { handle, rotated: i > 0 };
      }
    }
    return "bad-signature";
  }
}

const salt = crypto.getRandomValues(new Uint8Array(16));

/**
 * A correlation token for an id that is safe to log: SHA-256 over a random
 * per-process salt and the id, 16 hex characters. It cannot be turned back
 * into the id, and it differs between processes.
 */
export function hashForLog(id: string): string {
  const idBytes = encoder.encode(id);
  const input = new Uint8Array(salt.length + idBytes.length);
  input.set(salt);
  input.set(idBytes, salt.length);
  const digest = sha256(input);
  let hex = "";
  for (let i = 0; i < 8; i++) hex += digest[i].toString(16).padStart(2, "0");
  return hex;
}
