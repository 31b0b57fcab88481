/**
 * Serves a Node-style request listener (Express, Koa's `app.callback()`...)
 * on a free loopback port as a {@linkcode SuiteApp}, so the adapter suites can
 * drive frameworks that need a real `node:http` server.
 *
 * @module
 */

import { createServer } from "node:http";
import type { RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import type { SuiteApp } from "./adapter_suite.ts";

/**
 * Starts `handler` on 127.0.0.1 and a free port. The returned app's `fetch`
 * sends a request to that server whatever origin the request names; `close`
 * stops the server and its connections.
 *
 * @param handler The request listener to serve.
 * @returns The running app and its origin.
 *
 * @example
 * ```ts
 * import { serveNodeHandler } from "./node_server.ts";
 *
 * const app = await serveNodeHandler((_req, res) => res.end("hi"));
 * const response = await app.fetch(new Request("http://localhost/"));
 * console.log(await response.text()); // "hi"
 * await app.close();
 * ```
 */
export async function serveNodeHandler(
  handler: RequestListener,
): Promise<SuiteApp & { origin: string; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    fetch(request) {
      const url = new URL(request.url);
      return fetch(new Request(origin + url.pathname + url.search, request));
    },
    close() {
      server.closeAllConnections?.();
      return new Promise<void>((resolve, reject) =>
        server.close((error) => error ? reject(error) : resolve())
      );
    },
  };
}

/**
 * Wraps a request listener so that every request's socket says it is TLS
 * (`socket.encrypted`, what a `node:https` socket carries), for testing the
 * `Secure` attribute without a certificate.
 *
 * @param handler The request listener to wrap.
 * @returns A listener that marks the socket, then calls `handler`.
 *
 * @example
 * ```ts
 * import { asTls, serveNodeHandler } from "./node_server.ts";
 *
 * const app = await serveNodeHandler(asTls((req, res) => res.end(String("encrypted" in req.socket))));
 * console.log(await (await app.fetch(new Request("http://localhost/"))).text()); // "true"
 * await app.close();
 * ```
 */
export function asTls(handler: RequestListener): RequestListener {
  return (req, res) => {
    Object.defineProperty(req.socket, "encrypted", { value: true, configurable: true });
    handler(req, res);
  };
}
