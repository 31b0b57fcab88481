/**
 * Errors the session library throws at request time. Construction-time
 * mistakes are plain `TypeError`s that name the option.
 *
 * @module
 */

/** What the core was doing with the store when it failed. */
export type StoreOperation = "read" | "write" | "delete";

/**
 * A store call failed or timed out. It reaches the framework's error handler;
 * the request gets no session cookie and nothing is written.
 *
 * The message never contains a session id or a secret.
 *
 * @example
 * ```ts
 * import { SessionStoreError } from "./errors.ts";
 *
 * const error = new SessionStoreError("read", new Error("connection refused"));
 * console.log(error.message); // "Cannot read session from store: connection refused"
 * console.log(error.status); // 503
 * ```
 */
export class SessionStoreError extends Error {
  /** The failed operation. */
  readonly operation: StoreOperation;
  /** HTTP status a framework should answer with: the service is unavailable. */
  readonly status = 503;

  /**
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
}

/**
 * A request tried to update a session that an overlapping request deleted
 * (logout, `destroy()`, `regenerate()`) or that expired meanwhile. The record is
 * not recreated: a logged-out session stays logged out.
 *
 * @example
 * ```ts
 * import { SessionConflictError } from "./errors.ts";
 *
 * console.log(new SessionConflictError().status); // 409
 * ```
 */
export class SessionConflictError extends Error {
  /** HTTP status a framework should answer with. */
  readonly status = 409;

  constructor() {
    super(
      "Cannot save session: it was destroyed or expired by another request while this one ran",
    );
    this.name = "SessionConflictError";
  }
}
