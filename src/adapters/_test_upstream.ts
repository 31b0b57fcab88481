/**
 * Test helper for the fetch-based adapters (fetch, Fresh, Hono): a handler that proxies another server's
 * response returns it as `fetch()` made it, with immutable headers, and here with two `Set-Cookie` headers
 * of its own. The session cookie must be added and both of the upstream's kept.
 *
 * @module
 */

import assert from "node:assert/strict";
import { serveNodeHandler } from "../testing/node_server.ts";

/**
 * Starts an upstream that answers "upstream" with `up=1` and `up2=2` cookies, and asserts that the response
 * `respond` gives (it is handed the upstream's URL; its handler sets a session value and returns
 * `await fetch(url)`) carries both and exactly one `sid` cookie.
 */
export async function assertProxiedCookiesKept(
  respond: (upstream: string) => Promise<Response>,
): Promise<void> {
  const upstream = await serveNodeHandler((_req, res) => {
    res.setHeader("set-cookie", ["up=1; Path=/", "up2=2; Path=/"]);
    res.end("upstream");
  });
  try {
    const response = await respond(upstream.origin + "/");
    assert.equal(await response.text(), "upstream");
    const cookies = response.headers.getSetCookie();
    assert.deepEqual(cookies.filter((c) => c.startsWith("up")), ["up=1; Path=/", "up2=2; Path=/"]);
    assert.equal(cookies.filter((c) => c.startsWith("sid=")).length, 1, cookies.join(" | "));
  } finally {
    await upstream.close();
  }
}
