// Adding the session cookie to a finished fetch Response.

import type { RequestFacts } from "../core.ts";

/**
 * Appends a `Set-Cookie` header, keeping the app's own. Responses made by
 * `Response.redirect()` (and some frameworks) have immutable headers: those
 * are copied first, so the cookie is never silently dropped.
 */
export function withSetCookie(response: Response, setCookie: string): Response {
  try {
    response.headers.append("set-cookie", setCookie);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    copy.headers.append("set-cookie", setCookie);
    return copy;
  }
}

/**
 * The request facts the core needs, read from a fetch `Request`;
 * `X-Forwarded-Proto` only when the manager trusts a proxy.
 */
export function requestFacts(request: Request, trustProxy: boolean): RequestFacts {
  return {
    cookie: request.headers.get("cookie"),
    https: () => request.url.startsWith("https:"),
    forwardedProto: trustProxy ? request.headers.get("x-forwarded-proto") : undefined,
  };
}
