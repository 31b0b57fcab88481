/**
 * Test helper: the adapter suite's app on Hono, for the suite runs of the
 * Hono adapter and of stores tested through a real framework. Every request
 * goes to `handleSuiteRoute`; errors go to the suite's handler, or to Hono's
 * own default when the suite asks for `defaultErrorHandling`.
 *
 * @module
 */

import { Hono } from "hono";
import { session } from "./hono.ts";
import type { SessionEnv } from "./hono.ts";
import type { SessionOptions } from "../core.ts";
import { handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteFrameworkOptions } from "../testing/adapter_suite.ts";

/**
 * Builds the suite's Hono app with the session middleware given exactly `options`, on `HonoClass` (the
 * installed Hono unless another version is given, as `hono_test.ts` does for the oldest one `peerDependencies`
 * allow).
 */
export function honoSuiteApp(
  options: SessionOptions,
  framework?: SuiteFrameworkOptions,
  HonoClass: typeof Hono = Hono,
): { fetch(request: Request): Promise<Response> } {
  // Typed by SessionEnv, not by the npm entry's global augmentation, so a test program that does not load
  // that entry (`deno test` of one store's file) type-checks too.
  const app = new HonoClass<SessionEnv>();
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
