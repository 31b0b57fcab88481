/**
 * Errors the session library throws at request time. Construction-time
 * mistakes are plain `TypeError`s that name the option.
 *
 * @module
 */

/** What the core was doing with the store when it failed. */
export type StoreOperation = "read" | "write" | "delete";

/** A plain-text response: what a framework's default error handling sends for these errors. */
function textResponse(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/**
 * A store call failed or timed out. It reaches the framework's error handler;
 * the request gets no session cookie and nothing is written.
 *
 * Every framework's default error handling answers it with 503 Service
 * Unavailable, without a handler of the app's own: Express, Opine, Koa and Oak
 * read `status` (and `expose`, which is `false`: the body is the status text,
 * never the backend's message), Hono calls `getResponse()`, and the fetch and
 * Fresh adapters answer it with `getResponse()` themselves, because
 * `Deno.serve` and Fresh answer any error they do not know with 500.
 *
 * The message never contains a session id or a secret. For a write that timed
 * out it says whether the write may still be applied (see docs/stores.md,
 * "Timed-out writes").
 *
 * @example
 * ```ts
 * import { SessionStoreError } from "./errors.ts";
 *
 * const error = new SessionStoreError("read", new Error("connection refused"));
 * console.log(error.message); // "Cannot read session from store: connection refused"
 * console.log(error.status); // 503
 * const response = error.getResponse();
 * console.log(response.status, await response.text()); // 503 "Service Unavailable"
 * ```
 */
export class SessionStoreError extends Error {
  /** The failed operation. */
  readonly operation: StoreOperation;
  /** HTTP status a framework should answer with: the service is unavailable. */
  readonly status = 503;
  /** The same status under the name some Node frameworks read (Express's final handler, Koa). */
  readonly statusCode = 503;
  /**
   * Whether a framework may show the message to the client (Koa, Oak, the
   * `http-errors` convention): no, it names the backend's failure.
   */
  readonly expose = false;

  /**
   * The store failed while the core was doing `operation`.
   *
   * @param operation What the core was doing.
   * @param cause The store's own error, kept as `cause`.
   */
  constructor(operation: StoreOperation, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    const verb = operation === "read"
      ? "read session from"
      : operation === "write"
      ? "write session to"
      : "delete session from";
    super(`Cannot ${verb} store: ${detail}`, { cause });
    this.name = "SessionStoreError";
    this.operation = operation;
  }

  /**
   * The response to send: 503 with the status text as a plain-text body (not
   * the message). Hono's default error handler sends what this returns.
   *
   * @returns A new `Response` on every call.
   */
  getResponse(): Response {
    return textResponse(503, "Service Unavailable");
  }
}

/**
 * A request tried to update a session that an overlapping request deleted
 * (logout, `destroy()`, `regenerate()`) or that expired meanwhile. The record is
 * not recreated: a logged-out session stays logged out.
 *
 * Every framework's default error handling answers it with 409 Conflict and
 * the message, as for {@linkcode SessionStoreError}.
 *
 * @example
 * ```ts
 * import { SessionConflictError } from "./errors.ts";
 *
 * const error = new SessionConflictError();
 * console.log(error.status, error.expose); // 409 true
 * console.log(error.getResponse().status); // 409
 * ```
 */
export class SessionConflictError extends Error {
  /** HTTP status a framework should answer with. */
  readonly status = 409;
  /** The same status under the name some Node frameworks read (Express's final handler, Koa). */
  readonly statusCode = 409;
  /** Whether a framework may show the message to the client: yes, it names nothing internal. */
  readonly expose = true;

  constructor() {
    super(
      "Cannot save session: it was destroyed or expired by another request while this one ran",
    );
    this.name = "SessionConflictError";
  }

  /**
   * The response to send: 409 with the message as a plain-text body. Hono's
   * default error handler sends what this returns.
   *
   * @returns A new `Response` on every call.
   */
  getResponse(): Response {
    return textResponse(409, this.message);
  }
}

/**
 * A login refused because the user already has `maxSessionsPerUser` live
 * sessions and the app chose `onSessionLimit: "refuse"`. The session is left
 * as it was (not logged in). Status 409: the request conflicts with the
 * user's other sessions; the message names no session.
 *
 * @example
 * ```ts
 * import { SessionLimitError } from "./errors.ts";
 *
 * const error = new SessionLimitError(3);
 * console.log(error.status, error.expose); // 409 true
 * console.log(error.message); // "Cannot log in: this user already has 3 sessions, the most allowed (log out elsewhere first)"
 * ```
 */
export class SessionLimitError extends Error {
  /** HTTP status a framework should answer with. */
  readonly status = 409;
  /** The same status under the name some Node frameworks read (Express's final handler, Koa). */
  readonly statusCode = 409;
  /** Whether a framework may show the message to the client: yes, it names nothing internal. */
  readonly expose = true;
  /** The limit that was reached (`maxSessionsPerUser`). */
  readonly limit: number;

  /**
   * A log-in refused because the user already has `limit` sessions.
   *
   * @param limit The limit that was reached.
   */
  constructor(limit: number) {
    super(
      `Cannot log in: this user already has ${limit} session${
        limit === 1 ? "" : "s"
      }, the most allowed (log out elsewhere first)`,
    );
    this.name = "SessionLimitError";
    this.limit = limit;
  }

  /**
   * The response to send: 409 with the message as a plain-text body.
   *
   * @returns A new `Response` on every call.
   */
  getResponse(): Response {
    return textResponse(409, this.message);
  }
}

/**
 * A store answered in a way the store contract does not allow: a write that
 * is neither `"written"` nor `"gone"`, a create answered `"gone"`, a read that
 * is not a session record. That is a bug in the store (a programming error),
 * not an outage, so its `status` is 500 rather than 503.
 *
 * @example
 * ```ts
 * import { StoreContractError } from "./errors.ts";
 *
 * const error = new StoreContractError("write", 'answered 42, not "written" or "gone"');
 * console.log(error.status); // 500
 * console.log(error.message); // 'The session store broke its contract on write: answered 42, not "written" or "gone"'
 * ```
 */
export class StoreContractError extends Error {
  /** The operation whose answer broke the contract. */
  readonly operation: StoreOperation;
  /** HTTP status a framework should answer with: a server bug. */
  readonly status = 500;

  /**
   * The store answered `operation` in a way its contract does not allow.
   *
   * @param operation What the core was doing.
   * @param detail What the store did wrong (never an id or a value).
   */
  constructor(operation: StoreOperation, detail: string) {
    super(`The session store broke its contract on ${operation}: ${detail}`);
    this.name = "StoreContractError";
    this.operation = operation;
  }
}

/**
 * What a store throws (or rejects with) from `get` when the stored form of a
 * record cannot be parsed: truncated JSON, a missing or invalid `meta`. That
 * is bad data, not a failing backend: the core reports a `corrupt-record`
 * security event, deletes the record and starts a fresh session (no error
 * page).
 *
 * @example
 * ```ts
 * import { CorruptRecordError } from "./errors.ts";
 *
 * const error = new CorruptRecordError("meta is not valid JSON");
 * console.log(error.name, error.message); // "CorruptRecordError" "Stored session record is corrupt: meta is not valid JSON"
 * ```
 */
export class CorruptRecordError extends Error {
  /**
   * A stored record that cannot be read back.
   *
   * @param detail What is wrong with the stored form (never an id or a value).
   * @param options `cause`: the parser's own error.
   */
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`Stored session record is corrupt: ${detail}`, options);
    this.name = "CorruptRecordError";
  }
}

/**
 * A session sealed into its cookie (`CookieStore`) would not fit in one
 * cookie: the whole `Set-Cookie` value (name, sealed value and attributes)
 * is longer than {@linkcode SessionTooLargeError.limit} bytes, the size every
 * browser must store (RFC 6265, section 6.1; RFC 6265bis, section 5.6, limits
 * name and value alone to the same 4096 bytes). A browser would drop such a
 * cookie silently, so the core refuses it at commit, before any header is
 * sent: the request fails with this error, nothing is sent and the client's
 * cookie stays as it was. Keeping that much in a session is a programming
 * error, so its `status` is 500; keep less, or use a server-side store.
 *
 * The message gives the sizes, never the session's content.
 *
 * @example
 * ```ts
 * import { SessionTooLargeError } from "./errors.ts";
 *
 * const error = new SessionTooLargeError(5210, 4096);
 * console.log(error.status, error.size, error.limit); // 500 5210 4096
 * console.log(error.message.startsWith("Cannot send the session cookie: 5210 bytes")); // true
 * ```
 */
export class SessionTooLargeError extends Error {
  /** HTTP status a framework should answer with: a server bug. */
  readonly status = 500;
  /** Bytes the `Set-Cookie` value would have had. */
  readonly size: number;
  /** Bytes it may have: 4096. */
  readonly limit: number;

  /**
   * A `Set-Cookie` value of `size` bytes, over `limit`.
   *
   * @param size Bytes the `Set-Cookie` value would have had.
   * @param limit Bytes it may have.
   */
  constructor(size: number, limit: number) {
    super(
      `Cannot send the session cookie: ${size} bytes of Set-Cookie, over the ${limit}-byte limit of one ` +
        "cookie (RFC 6265, section 6.1). Keep less in the session, or keep it in a server-side store",
    );
    this.name = "SessionTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}
