// Cookie header reading and Set-Cookie writing: strings in, strings out.

import { rejectUnknownOptions } from "./_options.ts";

/** The most values of one cookie name looked at; more are ignored. */
const MAX_VALUES = 8;

/**
 * Returns the values of every cookie called `name` in a `Cookie` header, in
 * order, without decoding them. No regular expressions, no object keyed by
 * cookie name (so `__proto__` is just a name). Values longer than `maxLength`
 * are skipped without being copied; `onOversized` is told of each.
 *
 * Linear in the header's length whatever its shape: every character is looked
 * at a bounded number of times. The next `;` and the next `=` are each found
 * by a search that starts past the previous one, never again from the start
 * of every segment (a search for `=` from each segment of `;;;;…` or
 * `a;a;a;…` would scan the rest of the header every time: quadratic).
 */
export function readCookieValues(
  header: string | null | undefined,
  name: string,
  maxLength: number,
  onOversized?: () => void,
): string[] {
  if (!header) return [];
  // The first value is kept apart, and the array made once the header is read: a header naming the cookie
  // once (nearly every request) then costs a one-element array instead of an empty one grown by `push` to
  // 17 slots: 33 → 27 ns over decoding a one-cookie header on Deno, and less garbage
  // (bench/results/2026-11-30-issue-17-read-path.md).
  let first: string | undefined;
  let more: string[] | undefined;
  let found = 0;
  const length = header.length;
  let start = 0;
  // The first "=" at or after `start`, or `length` when there is none: searched again only once passed.
  let eq = -1;
  while (start < length && found < MAX_VALUES) {
    let end = header.indexOf(";", start);
    if (end < 0) end = length;
    if (eq < start) {
      eq = header.indexOf("=", start);
      if (eq < 0) eq = length;
    }
    if (eq > start && eq < end) {
      let keyStart = start;
      let keyEnd = eq;
      while (keyStart < keyEnd && isSpace(header.charCodeAt(keyStart))) keyStart++;
      while (keyEnd > keyStart && isSpace(header.charCodeAt(keyEnd - 1))) keyEnd--;
      if (
        keyEnd - keyStart === name.length &&
        header.startsWith(name, keyStart)
      ) {
        let valueStart = eq + 1;
        let valueEnd = end;
        while (valueStart < valueEnd && isSpace(header.charCodeAt(valueStart))) valueStart++;
        while (valueEnd > valueStart && isSpace(header.charCodeAt(valueEnd - 1))) valueEnd--;
        if (
          valueEnd - valueStart >= 2 && header.charCodeAt(valueStart) === 34 &&
          header.charCodeAt(valueEnd - 1) === 34
        ) {
          valueStart++;
          valueEnd--;
        }
        if (valueEnd - valueStart > maxLength) onOversized?.();
        else if (valueEnd > valueStart) {
          const value = header.slice(valueStart, valueEnd);
          if (found++ === 0) first = value;
          else (more ??= [first!]).push(value);
        }
      }
    }
    start = end + 1;
  }
  return more ?? (first === undefined ? [] : [first]);
}

function isSpace(code: number): boolean {
  return code === 32 || code === 9;
}

/** The `SameSite` attribute values. */
export type SameSite = "Strict" | "Lax" | "None";

/** Options for the session cookie. Every attribute is checked when the middleware is built. */
export interface CookieOptions {
  /**
   * Cookie name. Default `"sid"`. A `__Host-` name requires `path: "/"`, no `domain`, and makes the cookie
   * `Secure`; a `__Secure-` name makes it `Secure`. The prefixes are matched in any case, as browsers do
   * (RFC 6265bis, section 4.1.3).
   */
  name?: string;
  /** `Path` attribute. Default `"/"`. */
  path?: string;
  /** `Domain` attribute. Default: none (host-only cookie, the safest choice). */
  domain?: string;
  /** `SameSite` attribute. Default `"Lax"`. `"None"` requires `secure: true`. */
  sameSite?: SameSite | "strict" | "lax" | "none";
  /**
   * `Secure` attribute. Default `"auto"`: set when the request arrived over
   * https (see the `trustProxy` option for TLS-terminating proxies).
   */
  secure?: boolean | "auto";
  /** `HttpOnly` attribute. Default `true`: scripts in the page cannot read the id. */
  httpOnly?: boolean;
  /** `Partitioned` attribute (CHIPS). Default `false`; requires `Secure`. */
  partitioned?: boolean;
  /**
   * Whether session cookies carry `Max-Age` (they expire with the session's
   * idle deadline). Default `true`. `false` sends browser-session cookies,
   * which the browser drops when it closes (RFC 6265bis, section 5.6.2); the
   * timeouts still end sessions on the server. One session can choose
   * otherwise with `session.setLifetime()`.
   */
  persistent?: boolean;
}

/** Every `CookieOptions` name. */
export const COOKIE_OPTION_NAMES: readonly string[] = [
  "name",
  "path",
  "domain",
  "sameSite",
  "secure",
  "httpOnly",
  "partitioned",
  "persistent",
];

const COOKIE_HINTS: Readonly<Record<string, string>> = {
  maxAge: 'the cookie lives as long as the session: set the "idleTimeout" and "absoluteTimeout" ' +
    "options (seconds), or session.setLifetime(seconds | null) for one session",
  expires: 'the cookie lives as long as the session: set the "idleTimeout" and "absoluteTimeout" ' +
    "options (seconds), or session.setLifetime(seconds | null) for one session",
};

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PATH = /^\/[\x21-\x3A\x3C-\x7E]*$/; // visible ASCII except ";"
const DOMAIN = /^\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

function optionError(option: string, detail: string): TypeError {
  return new TypeError(`Invalid session option "${option}": ${detail}`);
}

/** Builds `Set-Cookie` values for one validated set of cookie options. */
export class CookieWriter {
  /** The cookie name. */
  readonly name: string;
  /** Whether cookies carry `Max-Age` unless a session chose otherwise. */
  readonly persistent: boolean;
  #plainSuffix: string;
  #secureSuffix: string;
  #secure: boolean | "auto";

  /** Validates the options; throws a `TypeError` naming the bad option. */
  constructor(options: CookieOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw optionError("cookie", "must be an object of cookie attributes");
    }
    rejectUnknownOptions(options, COOKIE_OPTION_NAMES, "cookie.", COOKIE_HINTS);
    const name = options.name ?? "sid";
    if (typeof name !== "string" || !TOKEN.test(name)) {
      throw optionError(
        "cookie.name",
        "must be a non-empty cookie token without spaces, separators or control characters",
      );
    }
    const path = options.path ?? "/";
    if (typeof path !== "string" || !PATH.test(path)) {
      throw optionError(
        "cookie.path",
        'must start with "/" and contain only visible ASCII characters other than ";"',
      );
    }
    const domain = options.domain;
    if (domain !== undefined && (typeof domain !== "string" || !DOMAIN.test(domain))) {
      throw optionError("cookie.domain", "must be a host name such as example.com");
    }
    const sameSiteInput = options.sameSite ?? "Lax";
    const sameSite = typeof sameSiteInput === "string"
      ? ({ strict: "Strict", lax: "Lax", none: "None" } as const)[
        sameSiteInput.toLowerCase() as "strict" | "lax" | "none"
      ]
      : undefined;
    if (sameSite === undefined) {
      throw optionError("cookie.sameSite", 'must be "Lax", "Strict" or "None"');
    }
    let secure = options.secure ?? "auto";
    if (secure !== true && secure !== false && secure !== "auto") {
      throw optionError("cookie.secure", 'must be true, false or "auto"');
    }
    // Browsers match the prefixes case-insensitively (RFC 6265bis, section 4.1.3): "__host-sid" must meet
    // the __Host- rules too, or the cookie built would be one browsers drop.
    const lowerName = name.toLowerCase();
    const hostPrefix = lowerName.startsWith("__host-");
    if (hostPrefix || lowerName.startsWith("__secure-")) {
      if (secure === false) {
        throw optionError("cookie.secure", `a cookie named "${name}" must be Secure`);
      }
      secure = true;
    }
    if (hostPrefix && domain !== undefined) {
      throw optionError("cookie.domain", "must be absent for a __Host- cookie");
    }
    if (hostPrefix && path !== "/") {
      throw optionError("cookie.path", 'must be "/" for a __Host- cookie');
    }
    if (sameSite === "None" && secure !== true) {
      throw optionError(
        "cookie.sameSite",
        '"None" requires cookie.secure: true (browsers reject it otherwise)',
      );
    }
    if (options.partitioned && secure !== true) {
      throw optionError("cookie.partitioned", "requires cookie.secure: true");
    }
    const httpOnly = options.httpOnly ?? true;
    if (typeof httpOnly !== "boolean") throw optionError("cookie.httpOnly", "must be a boolean");
    const persistent = options.persistent ?? true;
    if (typeof persistent !== "boolean") throw optionError("cookie.persistent", "must be a boolean");
    this.persistent = persistent;

    this.name = name;
    this.#secure = secure;
    let suffix = `; Path=${path}`;
    if (domain !== undefined) suffix += `; Domain=${domain}`;
    if (httpOnly) suffix += "; HttpOnly";
    const sameSitePart = `; SameSite=${sameSite}`;
    this.#plainSuffix = suffix + sameSitePart;
    this.#secureSuffix = suffix + "; Secure" + sameSitePart +
      (options.partitioned ? "; Partitioned" : "");
  }

  #suffix(https: boolean): string {
    const secure = this.#secure === "auto" ? https : this.#secure;
    return secure ? this.#secureSuffix : this.#plainSuffix;
  }

  /**
   * A `Set-Cookie` value carrying `value` for `maxAgeSeconds`, or, with
   * `undefined`, a browser-session cookie (no `Max-Age`: the browser drops it
   * when the session ends, RFC 6265bis section 5.6.2).
   */
  set(value: string, maxAgeSeconds: number | undefined, https: boolean): string {
    return maxAgeSeconds === undefined
      ? `${this.name}=${value}${this.#suffix(https)}`
      : `${this.name}=${value}; Max-Age=${maxAgeSeconds}${this.#suffix(https)}`;
  }

  /** A `Set-Cookie` value that removes the cookie, with the attributes it was set with. */
  clear(https: boolean): string {
    return `${this.name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT${this.#suffix(https)}`;
  }
}
