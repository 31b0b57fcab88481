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
