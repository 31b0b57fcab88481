// Session ids, HMAC signing and id hashing, on Web Crypto only.

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < BASE64URL.length; i++) DECODE[BASE64URL.charCodeAt(i)] = i;

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
const SIGNATURE_LENGTH = 43; // 32 bytes of HMAC-SHA-256, base64url without padding
const HANDLE = /^[A-Za-z0-9_-]+$/;

const encoder = new TextEncoder();

/** Encodes bytes as base64url without padding. */
export function encodeBase64Url(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += BASE64URL[n >> 18] + BASE64URL[(n >> 12) & 63] +
      BASE64URL[(n >> 6) & 63] + BASE64URL[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += BASE64URL[n >> 18] + BASE64URL[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += BASE64URL[n >> 18] + BASE64URL[(n >> 12) & 63] +
      BASE64URL[(n >> 6) & 63];
  }
  return out;
}

/** Decodes canonical unpadded base64url; `undefined` for anything else. */
function decodeBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const digit = code < 128 ? DECODE[code] : -1;
    if (digit < 0) return undefined;
    value = (value << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (value >> bits) & 255;
    }
  }
  // Leftover bits must be zero, or two spellings would decode to one signature.
  if ((value & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}

/** A new session id: {@linkcode ID_BYTES} bytes from the CSPRNG, base64url. */
export function generateId(): string {
  return encodeBase64Url(crypto.getRandomValues(new Uint8Array(ID_BYTES)));
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
  handle: string;
  /** True when it verified with a secret other than the first: re-sign it. */
  rotated: boolean;
}

/** Signs handles with the first secret and verifies them with all of them. */
export class Signer {
  #secrets: string[];
  #keys: Promise<CryptoKey[]> | undefined;

  constructor(secrets: string[]) {
    this.#secrets = secrets;
  }

  #getKeys(): Promise<CryptoKey[]> {
    this.#keys ??= Promise.all(this.#secrets.map((secret) =>
      crypto.subtle.importKey(
        "raw",
        encoder.encode(secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign", "verify"],
      )
    ));
    return this.#keys;
  }

  /** Returns `handle.signature`. */
  async sign(handle: string): Promise<string> {
    const [key] = await this.#getKeys();
    const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(handle));
    return `${handle}.${encodeBase64Url(new Uint8Array(mac))}`;
  }

  /**
   * Verifies `handle.signature` in constant time (Web Crypto's verify).
   * Answers `"malformed"` when the value does not even have the shape of a
   * signed handle, and `"bad-signature"` when no secret verifies it; never
   * throws.
   */
  async verify(value: string): Promise<Verified | "malformed" | "bad-signature"> {
    const dot = value.lastIndexOf(".");
    if (dot < 0 || value.length - dot - 1 !== SIGNATURE_LENGTH) return "malformed";
    const handle = value.slice(0, dot);
    if (!isWellFormedHandle(handle)) return "malformed";
    const signature = decodeBase64Url(value.slice(dot + 1));
    if (signature === undefined) return "malformed";
    const data = encoder.encode(handle);
    const keys = await this.#getKeys();
    for (let i = 0; i < keys.length; i++) {
      if (await crypto.subtle.verify("HMAC", keys[i], signature, data)) {
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
export async function hashForLog(id: string): Promise<string> {
  const idBytes = encoder.encode(id);
  const input = new Uint8Array(salt.length + idBytes.length);
  input.set(salt);
  input.set(idBytes, salt.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  let hex = "";
  for (let i = 0; i < 8; i++) hex += digest[i].toString(16).padStart(2, "0");
  return hex;
}
