/**
 * The routes both app instances serve, framework-neutral: each adapter hands
 * the request's session and URL to {@linkcode handle} and sends what it
 * answers; errors (a 409 from a late write) go to the framework's error
 * handler, which answers their `status`.
 *
 * - `GET /set?key=K&value=V`: sets one key.
 * - `GET /peek`: `{ isNew, data }`.
 * - `GET /logout`: destroys the session.
 * - `GET /slow-set?key=K&value=V&token=T`: loads the session, then waits until
 *   `/release?token=T` (at most 10 s) before setting the key.
 * - `GET /started?token=T`: `yes` once that slow request has its session.
 * - `GET /release?token=T`: lets it go on.
 *
 * @module
 */

import type { Session } from "../../src/session.ts";

const waiting = new Map<string, () => void>();

/** Routes that never touch the session (no cookie, no store call). */
export function handleControl(url: URL): { status: number; body: string } | undefined {
  const token = url.searchParams.get("token") ?? "";
  switch (url.pathname) {
    case "/started":
      return { status: 200, body: waiting.has(token) ? "yes" : "no" };
    case "/release": {
      const release = waiting.get(token);
      waiting.delete(token);
      release?.();
      return { status: release ? 200 : 404, body: release ? "released" : "unknown token" };
    }
    case "/health":
      return { status: 200, body: "ok" };
    default:
      return undefined;
  }
}

/** The session routes. */
export async function handle(session: Session, url: URL): Promise<{ status: number; body: string }> {
  const param = (name: string) => url.searchParams.get(name) ?? "";
  switch (url.pathname) {
    case "/set":
      session.set(param("key"), param("value"));
      return { status: 200, body: "ok" };
    case "/peek":
      return { status: 200, body: JSON.stringify({ isNew: session.isNew, data: session.toJSON() }) };
    case "/logout":
      await session.destroy();
      return { status: 200, body: "bye" };
    case "/slow-set": {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        waiting.set(param("token"), () => {
          clearTimeout(timer);
          resolve();
        });
      });
      session.set(param("key"), param("value"));
      return { status: 200, body: "ok" };
    }
    default:
      return { status: 404, body: "not found" };
  }
}

/** The status and body an error handler answers. */
export function errorResponse(error: unknown): { status: number; body: string } {
  const status = (error as { status?: unknown })?.status;
  return { status: typeof status === "number" ? status : 500, body: `error:${(error as Error)?.name}` };
}

/** The session secret both instances share (signed cookies must verify on either). */
export const SECRET = "multi-instance-secret-0123456789-abcdefgh";
