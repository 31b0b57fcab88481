// The drop-in example runs the same on express-session and on this library: the same app, the same requests,
// the same answers. Only the cookie differs where this library is stricter (signed id format).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { createApp } from "./express_session_dropin.ts";
import type { SessionFactory } from "./express_session_dropin.ts";
import { serveNodeHandler } from "../src/testing/node_server.ts";

// Loaded untyped: its @types would declare req.session a second time.
const expressSession = createRequire(import.meta.url)("express-session") as SessionFactory;
const SECRET = "drop-in-example-secret-0123456789abcdef";

class Browser {
  cookie = "";
  constructor(readonly origin: string) {}
  async go(path: string) {
    const response = await fetch(this.origin + path, {
      headers: this.cookie ? { cookie: this.cookie } : {},
      redirect: "manual",
    });
    const setCookie = response.headers.getSetCookie().filter((c) => c.startsWith("connect.sid="));
    const last = setCookie.at(-1);
    if (last) this.cookie = /Expires=Thu, 01 Jan 1970/.test(last) ? "" : last.split(";")[0];
    return {
      status: response.status,
      location: response.headers.get("location"),
      body: await response.text(),
      setCookie,
    };
  }
}

const IMPLEMENTATIONS: [string, SessionFactory | undefined][] = [
  ["express-session", expressSession],
  ["this library", undefined],
];

for (const [name, factory] of IMPLEMENTATIONS) {
  test(`the express-session example app on ${name}: counter, cart, login with regenerate and remember-me, reload, logout`, async () => {
    const server = await serveNodeHandler(createApp(SECRET, factory));
    try {
      const browser = new Browser(server.origin);
      assert.equal((await browser.go("/")).body, "views: 1");
      assert.equal((await browser.go("/")).body, "views: 2");
      assert.equal((await browser.go("/cart/add?item=tea")).body, '["tea"]');
      assert.equal((await browser.go("/cart/add?item=milk")).body, '["tea","milk"]');
      assert.equal((await browser.go("/cart/clear")).body, '["views"]');
      assert.equal((await browser.go("/cart/add?item=jam")).body, '["jam"]');

      const before = browser.cookie;
      const login = await browser.go("/login?user=ada&remember=1");
      assert.equal(login.status, 302);
      assert.equal(login.location, "/whoami");
      assert.notEqual(browser.cookie, before, "regenerate gave a new id");
      // express-session states the lifetime as Expires, this library as Max-Age.
      const maxAgeMatch = /Max-Age=(\d+)/i.exec(login.setCookie[0]);
      const expiresMatch = /Expires=([^;]+)/i.exec(login.setCookie[0]);
      const maxAge = maxAgeMatch
        ? Number(maxAgeMatch[1])
        : (Date.parse(expiresMatch?.[1] ?? "") - Date.now()) / 1000;
      assert.ok(Math.abs(maxAge - 14 * 86400) <= 2, `remember me: 14 days (${login.setCookie[0]})`);
      assert.equal((await browser.go("/whoami")).body, '{"user":"ada","hasId":true}');
      assert.equal((await browser.go("/reload")).body, '{"scratch":null,"user":"ada"}');
      // regenerate(callback) starts an empty session, in both.
      assert.equal((await browser.go("/")).body, "views: 1");

      const logout = await browser.go("/logout");
      assert.equal(logout.status, 302);
      assert.equal(browser.cookie, "", "the cookie is cleared");
      assert.equal((await browser.go("/whoami")).body, '{"user":null,"hasId":true}');
      assert.equal((await browser.go("/")).body, "views: 1");
      assert.equal((await browser.go("/")).body, "views: 2");
    } finally {
      await server.close();
    }
  });
}
