import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDemoApp } from "./demo_app.ts";
import { SqliteStore } from "../src/stores/sqlite.ts";

const SECRET = "demo-test-secret-0123456789abcdefghij";

class Browser {
  cookie = "";
  constructor(public app: ReturnType<typeof createDemoApp>) {}
  async go(path: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    if (this.cookie) headers.set("cookie", this.cookie);
    const response = await this.app.request(path, { ...init, headers, redirect: "manual" });
    const setCookie = response.headers.get("set-cookie");
    if (setCookie) this.cookie = /Max-Age=0/.test(setCookie) ? "" : setCookie.split(";")[0];
    return {
      status: response.status,
      location: response.headers.get("location"),
      html: await response.text(),
    };
  }
  post(path: string, form: Record<string, string> = {}) {
    return this.go(path, { method: "POST", body: new URLSearchParams(form) });
  }
}

test("demo: counter, login with regenerate, flash, logout with destroy; the counter survives a restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "demo-"));
  const path = join(dir, "sessions.db");
  try {
    let store = new SqliteStore({ path });
    const browser = new Browser(createDemoApp(store, SECRET));
    assert.match((await browser.go("/")).html, /Visited page 0 times/);
    assert.match((await browser.go("/")).html, /Visited page 1 times/);

    const idBefore = browser.cookie;
    const login = await browser.post("/login", { user: "Ada <script>" });
    assert.equal(login.status, 303);
    assert.notEqual(browser.cookie.split(".")[0], idBefore.split(".")[0], "a new id at login");
    const home = (await browser.go("/")).html;
    assert.match(home, /Welcome, Ada &lt;script&gt;!/);
    assert.match(home, /Visited page 2 times/);
    assert.doesNotMatch((await browser.go("/")).html, /Welcome/, "the flash shows once");

    // Restart: a new store on the same file, a new app.
    await store.close();
    store = new SqliteStore({ path });
    browser.app = createDemoApp(store, SECRET);
    assert.match((await browser.go("/")).html, /Visited page 4 times/);

    await browser.post("/logout");
    const after = (await browser.go("/")).html;
    assert.match(after, /You are logged out\./);
    assert.match(after, /Visited page 0 times/, "a fresh session after logout");
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
