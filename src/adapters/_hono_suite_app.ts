// The adapter suite's Hono app, for hono_test.ts and for the store tests that run the adapter suite through
// Hono (PostgreSQL, Deno KV). Test support only: not in the package's exports.

import { Hono } from "hono";
import { session } from "./hono.ts";
import type { SessionOptions } from "../core.ts";
import { handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteApp, SuiteFrameworkOptions } from "../testing/adapter_suite.ts";

/**
 * A Hono app with the session middleware given `options`, answering every
 * request with the suite's routes, and errors with the suite's handler unless
 * `framework.defaultErrorHandling` asks for Hono's own.
 */
export function honoSuiteApp(options: SessionOptions, framework?: SuiteFrameworkOptions): SuiteApp {
  const app = new Hono();
  app.use(session(options));
  if (!framework?.defaultErrorHandling) {
    app.onError((error, c) => {
      const { status, body } = suiteErrorResponse(error);
      return c.text(body, status as 500);
    });
  }
  app.all("*", async (c) => {
    const result = await handleSuiteRoute(c.get("session"), new URL(c.req.url));
    if (result.appCookie) c.header("set-cookie", result.appCookie, { append: true });
    if (result.redirect) return c.redirect(result.redirect);
    return c.text(result.body, result.status as 200);
  });
  return { fetch: async (request: Request) => await app.fetch(request) };
}
