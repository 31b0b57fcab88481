// HMAC-SHA-256 (RFC 2104, FIPS 180-4), synchronous, on typed arrays only.
//
// Why not Web Crypto: `crypto.subtle` is asynchronous, and on Node each HMAC costs 10–25 µs of thread-pool
// round trip — more than a light framework spends on a whole request, and it is on every request that
// reads a signed cookie. The core takes no runtime dependencies, so it cannot use `node:crypto` or a
// package. A keyed hash of a short id is two SHA-256 compressions once the key's inner and outer states are
// precomputed: well under a microsecond here. `_hmac_test.ts` checks every result against Web Crypto on
// random keys and messages.

import { encodeBase64Url } from "./_base64url.ts";

// Int32Array throughout: V8 keeps int32 values unboxed, while a Uint32Array element above 2^31 is read
// as a heap number, which made every round of the compression allocate.
const K = new Int32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);
const INITIAL = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** The message schedule; callers fill its first 16 words with the block before calling `compress`. */
const w = new Int32Array(64);
const block = new Uint8Array(64);

/** Loads a 64-byte block, big-endian, into the first 16 words of the schedule. */
function loadBlock(bytes: Uint8Array, offset: number): void {
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
}

/** Mixes the block in the schedule's first 16 words into `state`. */
function compress(state: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
  state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0;
  state[7] = (state[7] + h) | 0;
}

/**
 * Hashes `message` on from `start`, a state that has already absorbed
 * `absorbed` bytes (a multiple of 64), and returns the 32-byte digest.
 */
function finish(start: Int32Array, absorbed: number, message: Uint8Array): Uint8Array {
  const state = start.slice();
  let offset = 0;
  for (; offset + 64 <= message.length; offset += 64) {
    loadBlock(message, offset);
    compress(state);
  }
  const rest = message.length - offset;
  block.fill(0);
  block.set(message.subarray(offset), 0);
  block[rest] = 0x80;
  if (rest >= 56) {
    loadBlock(block, 0);
    compress(state);
    block.fill(0);
  }
  const bits = (absorbed + message.length) * 8;
  // Message lengths here stay far below 2^53 bits; the high word takes what exceeds 32 bits.
  const high = Math.floor(bits / 0x100000000);
  block[56] = high >>> 24;
  block[57] = high >>> 16;
  block[58] = high >>> 8;
  block[59] = high;
  block[60] = bits >>> 24;
  block[61] = bits >>> 16;
  block[62] = bits >>> 8;
  block[63] = bits;
  loadBlock(block, 0);
  compress(state);
  return wordsToBytes(state);
}

function wordsToBytes(state: Int32Array): Uint8Array {
  const digest = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    digest[i * 4] = state[i] >>> 24;
    digest[i * 4 + 1] = state[i] >>> 16;
    digest[i * 4 + 2] = state[i] >>> 8;
    digest[i * 4 + 3] = state[i];
  }
  return digest;
}

const mac = new Uint8Array(32);

/** base64url (no padding) of the 32 bytes held in 8 big-endian words: 43 characters. */
function wordsToBase64Url(words: Int32Array): string {
  for (let i = 0; i < 8; i++) {
    const word = words[i];
    mac[i * 4] = word >>> 24;
    mac[i * 4 + 1] = word >>> 16;
    mac[i * 4 + 2] = word >>> 8;
    mac[i * 4 + 3] = word;
  }
  return encodeBase64Url(mac);
}

/** SHA-256 of `message`. */
export function sha256(message: Uint8Array): Uint8Array {
  return finish(INITIAL, 0, message);
}

/** The longest ASCII text `HmacSha256.base64Url` hashes in a single block (55 bytes + padding). */
const ONE_BLOCK = 55;
const state = new Int32Array(8);

/** An HMAC-SHA-256 key with its inner and outer states computed once. */
export class HmacSha256 {
  #inner = INITIAL.slice();
  #outer = INITIAL.slice();

  /** @param key The secret key, any length. */
  constructor(key: Uint8Array) {
    const padded = new Uint8Array(64);
    padded.set(key.length > 64 ? sha256(key) : key);
    const pad = new Uint8Array(64);
    for (let i = 0; i < 64; i++) pad[i] = padded[i] ^ 0x36;
    loadBlock(pad, 0);
    compress(this.#inner);
    for (let i = 0; i < 64; i++) pad[i] = padded[i] ^ 0x5c;
    loadBlock(pad, 0);
    compress(this.#outer);
  }

  /** The 32-byte MAC of `message`. */
  digest(message: Uint8Array): Uint8Array {
    return finish(this.#outer, 64, finish(this.#inner, 64, message));
  }

  /**
   * The MAC of an ASCII text (every char code below 128), as 43 base64url
   * characters. For texts of up to 55 characters (every session id) it is two
   * compressions and no allocation besides the result.
   */
  base64Url(text: string): string {
    if (text.length > ONE_BLOCK) {
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      return encodeBase64Url(this.digest(bytes));
    }
    // Inner hash: the text, the 0x80 terminator and the bit length of ipad block + text. Plain loops: the
    // typed-array fill/set builtins cost more than these few words.
    for (let i = 0; i < 16; i++) w[i] = 0;
    const length = text.length;
    for (let i = 0; i < length; i++) w[i >> 2] |= (text.charCodeAt(i) & 0xff) << (24 - 8 * (i & 3));
    w[length >> 2] |= 0x80 << (24 - 8 * (length & 3));
    w[15] = (64 + length) * 8;
    const inner = this.#inner;
    for (let i = 0; i < 8; i++) state[i] = inner[i];
    compress(state);
    // Outer hash: the inner digest (8 words), the terminator, and the bit length of opad block + 32 bytes.
    for (let i = 0; i < 8; i++) w[i] = state[i];
    w[8] = 0x80000000 | 0;
    for (let i = 9; i < 15; i++) w[i] = 0;
    w[15] = (64 + 32) * 8;
    const outer = this.#outer;
    for (let i = 0; i < 8; i++) state[i] = outer[i];
    compress(state);
    return wordsToBase64Url(state);
  }
}
