// The fetch adapter behind a real Deno.serve socket: Deno only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { session } from "./fetch.ts";
import type { SessionOptions } from "../core.ts";
import { adapterConformanceSuite, handleSuiteRoute, suiteErrorResponse } from "../testing/adapter_suite.ts";
import type { SuiteFrameworkOptions } from "../testing/adapter_suite.ts";

function createApp(options: SessionOptions, framework?: SuiteFrameworkOptions) {
  const handler = session(options)(async (request, current) => {
    const result = await handleSuiteRoute(current, new URL(request.url));
    const headers = new Headers();
    if (result.appCookie) headers.append("set-cookie", result.appCookie);
    if (result.redirect) {
      headers.set("location", result.redirect);
      return new Response(null, { status: 302, headers });
    }
    return new Response(result.body, { status: result.status, headers });
  });
  const onError = (error: unknown) => {
    const { status, body } = suiteErrorResponse(error);
    return new Response(body, { status });
  };
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    // Without onError, Deno.serve's default: it logs the error and answers 500.
    ...(framework?.defaultErrorHandling ? {} : { onError }),
  }, handler);
  const origin = `http://127.0.0.1:${server.addr.port}`;
  return {
    fetch: (request: Request) => {
      const url = new URL(request.url);
      return fetch(new Request(origin + url.pathname + url.search, request));
    },
    close: () => server.shutdown(),
  };
}

adapterConformanceSuite(test, { name: "Deno.serve", createApp, answersSessionErrors: true });

test("Deno.serve: the handler gets Deno's ServeHandlerInfo", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    session()((_req, current, info) => {
      current.set("remote", info.remoteAddr.hostname);
      return new Response(info.remoteAddr.hostname);
    }),
  );
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    assert.equal(await response.text(), "127.0.0.1");
    assert.equal(response.headers.getSetCookie().length, 1);
  } finally {
    await server.shutdown();
  }
});
