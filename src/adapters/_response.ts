// Adding the session cookie to a finished fetch Response.

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

/** The request facts the core needs, read from a fetch `Request`. */
export function requestFacts(request: Request): {
  cookie: string | null;
  https: boolean;
  forwardedProto: string | null;
} {
  return {
    cookie: request.headers.get("cookie"),
    https: request.url.startsWith("https:"),
    forwardedProto: request.headers.get("x-forwarded-proto"),
  };
}
