// base64url without padding (RFC 4648 §5), for ids and signatures.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const CODES = Uint8Array.from(ALPHABET, (char) => char.charCodeAt(0));
const decoder = new TextDecoder();
let scratch = new Uint8Array(64);

/**
 * Encodes bytes as base64url without padding. The characters are written as
 * bytes and decoded once: a flat string, and faster than concatenating
 * characters (ids and signatures are made on every new session).
 */
export function encodeBase64Url(bytes: Uint8Array): string {
  const length = Math.ceil((bytes.length * 4) / 3);
  if (scratch.length < length) scratch = new Uint8Array(length);
  const out = scratch;
  let i = 0;
  let j = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[j++] = CODES[n >> 18];
    out[j++] = CODES[(n >> 12) & 63];
    out[j++] = CODES[(n >> 6) & 63];
    out[j++] = CODES[n & 63];
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = (bytes[i] << 16) | (rest === 2 ? bytes[i + 1] << 8 : 0);
    out[j++] = CODES[n >> 18];
    out[j++] = CODES[(n >> 12) & 63];
    if (rest === 2) out[j++] = CODES[(n >> 6) & 63];
  }
  return decoder.decode(out.subarray(0, j));
}

/** The value of each base64url character by char code; 255 for anything else. */
const VALUES = new Uint8Array(128).fill(255);
for (let i = 0; i < ALPHABET.length; i++) VALUES[ALPHABET.charCodeAt(i)] = i;

/**
 * Decodes base64url without padding (RFC 4648 §5), strictly: `undefined` for
 * any character outside the alphabet, padding, a length no encoding has
 * (4n + 1), or unused trailing bits that are not zero. So every byte string
 * has exactly one accepted spelling, the one {@linkcode encodeBase64Url} gives.
 */
export function decodeBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  const length = text.length;
  const rest = length & 3;
  if (rest === 1) return undefined;
  const out = new Uint8Array((length >> 2) * 3 + (rest === 0 ? 0 : rest - 1));
  let invalid = 0;
  let j = 0;
  let i = 0;
  for (; i + 3 < length; i += 4) {
    const a = value(text, i), b = value(text, i + 1), c = value(text, i + 2), d = value(text, i + 3);
    invalid |= a | b | c | d;
    const bits = (a << 18) | (b << 12) | (c << 6) | d;
    out[j++] = bits >> 16;
    out[j++] = (bits >> 8) & 255;
    out[j++] = bits & 255;
  }
  if (rest === 2) {
    const a = value(text, i), b = value(text, i + 1);
    invalid |= a | b | ((b & 15) === 0 ? 0 : 255);
    out[j] = (a << 2) | (b >> 4);
  } else if (rest === 3) {
    const a = value(text, i), b = value(text, i + 1), c = value(text, i + 2);
    invalid |= a | b | c | ((c & 3) === 0 ? 0 : 255);
    out[j++] = (a << 2) | (b >> 4);
    out[j] = ((b & 15) << 4) | (c >> 2);
  }
  return invalid > 63 ? undefined : out;
}

/** The 6-bit value of the character at `index`, or 255 when it is not in the alphabet. */
function value(text: string, index: number): number {
  const code = text.charCodeAt(index);
  return code < 128 ? VALUES[code] : 255;
}
