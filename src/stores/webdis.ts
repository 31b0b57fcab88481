/**
 * A store that keeps sessions in Redis through Webdis, Redis's HTTP interface,
 * with `fetch` only: it runs wherever `fetch` does (Deno Deploy, edge and
 * serverless functions, browsers' workers, Node, Bun).
 *
 * @module
 */

import { rejectUnknownStoreOptions } from "../_options.ts";
import { timeoutError } from "./_redis_scripts.ts";
import {
  checkCommonOptions,
  COMMON_OPTION_HINTS,
  optionError,
  RedisSessionStore,
  type RedisStoreCommonOptions,
  type RedisTransport,
} from "./_redis_store.ts";

/** Options for {@linkcode WebdisStore}. */
export interface WebdisStoreOptions extends RedisStoreCommonOptions {
  /**
   * The Webdis root URL, e.g. `http://127.0.0.1:7379`. Credentials in it
   * (`http://user:secret@host:7379`) are sent as HTTP Basic auth, for ACLs
   * with `http_basic_auth`.
   */
  url: string;
  /** Prefix of every session key. Default `"session_"`, as in version 1. */
  keyPrefix?: string;
  /** The fetch function. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Headers sent with every request, e.g. `{ authorization: "Basic ..." }`. */
  headers?: HeadersInit;
  /** Milliseconds a request may take before it fails. Default `5000`. */
  timeoutMs?: number;
  /**
   * The clock for expiry checks, in milliseconds since the epoch. When
   * given, it decides on every call; by default the store judges at the time
   * the core hands it (`Date.now()` for a call made outside the core; see
   * `storeTime`). Native expiry (`PEXPIREAT`) follows the Redis server's clock.
   */
  now?: () => number;
}

/** Every {@linkcode WebdisStoreOptions} name (the type checker keeps the list complete): others are refused. */
const OPTION_NAMES = Object.keys(
  {
    url: true,
    keyPrefix: true,
    fetch: true,
    headers: true,
    timeoutMs: true,
    now: true,
  } satisfies Record<keyof WebdisStoreOptions, true>,
);

function invalid(option: string, rule: string): TypeError {
  return optionError("WebdisStore", option, rule);
}

/**
 * Percent-encodes one command argument for Webdis. Beyond
 * `encodeURIComponent`, it encodes the characters that function leaves alone
 * but Webdis or URL parsing read: `.` (Webdis takes `.ext` as an output
 * format, and `.`/`..` segments are path steps) and `!'()*~`, so only
 * `[A-Za-z0-9_-]` travels raw.
 */
export function encodeWebdisArgument(argument: string): string {
  return encodeURIComponent(argument).replace(
    /[.!'()*~]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** A fetch failure's message; Node's is only "fetch failed", with the reason in `cause`. */
function networkReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { message?: string; code?: string } | undefined;
  const detail = cause?.message || cause?.code;
  return detail && !error.message.includes(detail) ? `${error.message} (${detail})` : error.message;
}

/** `btoa` of UTF-8 text. */
function base64(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/**
 * Keeps each session in one Redis hash behind Webdis: the same store as
 * `RedisStore` over another transport, with the same layout, Lua scripts and
 * native expiry (the two can share a database): `keyPrefix` + the storage
 * key, user keys in fields `d:<key>`, metadata in `meta`, flash values in
 * `flash`, `PEXPIREAT` on every write.
 *
 * Every command goes in the body of a `POST` to the Webdis root, each
 * argument percent-encoded, never in the URL path: no key or value can end an
 * argument, start another command, be cut short by `.ext` or `..`
 * handling, or exceed a URL length limit (1 MB values work).
 *
 * One HTTP request per operation: `EVALSHA` of the read, write or delete
 * script (falling back to `EVAL` once after a Redis restart). The write
 * script applies updates per key and only while the record exists. Every
 * reply carries back the request's unique tag and the key it touched, and a
 * reply that does not match is refused: Webdis before 0.1.20 (Debian ships
 * 0.1.9) can write the late reply of a request whose client went away, after
 * a `CLIENT PAUSE` say, to another client (fixed in 0.1.20, commit
 * d28dd3e), and that must be a 503, never another user's session. The next
 * few requests after a refused reply ask Webdis to close their connection,
 * so a connection left out of step by it is closed once it is next used
 * (where fetch holds the connection to Webdis itself: not in browsers, on
 * Workers or through a proxy). Use Webdis 0.1.20 or later where you
 * can (docs/stores.md, "Replies Webdis mixes up"). Writes carry a deadline
 * the script checks against Redis's clock, so a write that timed out is not
 * applied later. Webdis errors, HTTP errors (403 from an ACL, 5xx), bodies
 * that are not Webdis JSON, mismatched replies, network failures and timeouts
 * all reject; only a missing record reads as `undefined`.
 *
 * The Webdis ACL must allow `EVALSHA` and `EVAL`.
 *
 * @example
 * ```ts ignore
 * import { WebdisStore } from "./webdis.ts";
 *
 * const store = new WebdisStore({ url: "http://127.0.0.1:7379", keyPrefix: "session_" });
 * console.log(await store.get("unknown-id")); // undefined
 * ```
 */
export class WebdisStore extends RedisSessionStore {
  /**
   * A store over Webdis; usable at once (nothing to connect).
   *
   * @param options The Webdis URL, key prefix, fetch function, headers and timeout.
   * @throws {TypeError} naming the option, when an option is invalid or unknown.
   */
  constructor(options: WebdisStoreOptions) {
    if (typeof options !== "object" || options === null) throw invalid("url", "is required");
    rejectUnknownStoreOptions("WebdisStore", options, OPTION_NAMES, COMMON_OPTION_HINTS);
    const common = checkCommonOptions("WebdisStore", options);
    super(new WebdisTransport(options, common.timeoutMs), { ...common, hashTags: false, waitForReplicas: 0 });
  }
}

/**
 * Requests sent with `Connection: close` after a reply proved to belong to
 * another request (see `WebdisTransport.outOfStep`).
 */
const OUT_OF_STEP_CLOSES = 8;

/**
 * Webdis over `fetch`: each command is the body of a `POST` to the Webdis
 * root. Every request stands alone, so there is nothing to close, and a
 * `WAIT` could land on another Redis connection than the write: no
 * `waitForReplicas`.
 */
class WebdisTransport implements RedisTransport {
  #url: string;
  #fetch: typeof fetch;
  #headers: Headers;
  /** `#headers` with `Connection: close`. */
  #closingHeaders: Headers;
  /** How many of the next requests ask Webdis to close their connection. */
  #closing = 0;
  #timeout: number;

  constructor(options: WebdisStoreOptions, timeoutMs: number) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw invalid("url", "must be an http:// or https:// URL");
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw invalid("url", "must be an http:// or https:// URL");
    }
    const fetchFunction = options.fetch ?? globalThis.fetch;
    if (typeof fetchFunction !== "function") throw invalid("fetch", "must be a function");
    let headers: Headers;
    try {
      headers = new Headers(options.headers);
    } catch {
      throw invalid("headers", "must be a Headers object, an object or a list of name/value pairs");
    }
    // fetch refuses URLs with credentials: send them as Basic auth instead.
    if ((url.username !== "" || url.password !== "") && !headers.has("authorization")) {
      const user = decodeURIComponent(url.username);
      const password = decodeURIComponent(url.password);
      headers.set("authorization", `Basic ${base64(`${user}:${password}`)}`);
    }
    url.username = "";
    url.password = "";
    if (!url.pathname.endsWith("/")) url.pathname += "/";
    headers.set("content-type", "text/plain; charset=utf-8");
    this.#url = url.href;
    // Called unbound: some fetch implementations throw when `this` is not the global object.
    this.#fetch = (input, init) => fetchFunction(input, init);
    this.#headers = headers;
    this.#closingHeaders = new Headers(headers);
    this.#closingHeaders.set("connection", "close");
    this.#timeout = timeoutMs;
  }

  /**
   * A reply came to the wrong request. Webdis before 0.1.20 (fixed by
   * commit d28dd3e) writes the late reply of a request whose client went
   * away to whichever connection now has that client's socket number. The
   * connection that got it then holds its own request's reply too, and a
   * client that keeps the connection alive hands that to the next request
   * sent over it, which is refused in turn, and so on: on Deno, every later
   * request over it was refused (11 of 11 in a row, in two of three tries).
   * So the next
   * `OUT_OF_STEP_CLOSES` requests ask Webdis to close their connection after
   * answering: an out-of-step connection answers one more request wrongly,
   * and is gone. A header, not an abort: Webdis keeps the socket of a request
   * that asked for the close open until its reply is written, so that reply
   * cannot reach a reused socket number. Fetch hands out an idle connection
   * before it opens one, so the out-of-step connection is usually among the
   * next few requests' (the next on Deno, the one after on Node, in
   * `redis_fault_test.ts`); if it is not, its next wrong reply starts the
   * count again.
   */
  outOfStep(): void {
    this.#closing = OUT_OF_STEP_CLOSES;
  }

  /**
   * Runs one Redis command through Webdis and resolves to its reply. Rejects
   * on anything but a well-formed Webdis JSON answer for this command.
   */
  async send(args: string[]): Promise<unknown> {
    const command = args[0];
    let response: Response;
    let text: string;
    const signal = AbortSignal.timeout(this.#timeout);
    let headers = this.#headers;
    if (this.#closing > 0) {
      this.#closing--;
      headers = this.#closingHeaders;
    }
    try {
      response = await this.#fetch(this.#url, {
        method: "POST",
        headers,
        body: args.map(encodeWebdisArgument).join("/"),
        signal,
        redirect: "error",
      });
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw timeoutError(`Webdis did not answer within ${this.#timeout} ms`, error);
      throw new Error(`Cannot reach Webdis: ${networkReason(error)}`, { cause: error });
    }
    // Bodies are left out of messages: an error page may echo the request, and with it a session id.
    if (response.status === 403) {
      throw new Error(
        `Webdis refused ${command} (HTTP 403): allow it in the Webdis ACL or send the right credentials`,
      );
    }
    if (!response.ok) throw new Error(`Webdis answered ${command} with HTTP ${response.status}`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`Webdis answered ${command} with a body that is not JSON`);
    }
    if (typeof body !== "object" || body === null || !Object.hasOwn(body, command)) {
      // The reply of another command (an `EVALSHA` answering an `EVAL`, say): see `outOfStep`.
      this.outOfStep();
      throw new Error(`Webdis answered ${command} without a "${command}" reply`);
    }
    const reply = (body as Record<string, unknown>)[command];
    // Webdis reports Redis errors as [false, message]; none of the commands used here answers that shape.
    if (Array.isArray(reply) && reply[0] === false) {
      throw new Error(`Redis ${command} failed: ${String(reply[1])}`);
    }
    return reply;
  }
}
