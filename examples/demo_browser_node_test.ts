// The demo in a real browser: Debian's Chromium (/usr/bin/chromium) driven by playwright-core, which
// downloads nothing. Two browser contexts (a laptop and a phone) log the same user in; the laptop sees both,
// logs the phone out, and the phone's next request is logged out. Along the way: the cookie as the browser
// stored it, the fingerprint changing at login, a page that fits a phone, and no console error, page error or
// failed request. A screenshot of each state goes to .data/screenshots/ (git-ignored) for a person to look at.
//
// The app runs as `npm run demo` runs it, on a SqliteStore (in a temporary folder).
// Without Chromium the test is skipped, saying why; under CI=true it fails instead.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { chromium } from "playwright-core";
import type { BrowserContext, Cookie, Page } from "playwright-core";
import { createDemoApp } from "./demo_app.ts";
import { SqliteStore } from "../src/stores/sqlite.ts";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOTS = fileURLToPath(new URL("../.data/screenshots/", import.meta.url));
const SECRET = "demo-browser-test-secret-0123456789abcdef";
const PHONE_UA =
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
const IDLE_SECONDS = 24 * 3600;

const absent = existsSync(CHROMIUM)
  ? undefined
  : `Chromium is not installed at ${CHROMIUM} (apt-get install chromium); the demo's browser test needs it`;

/** Records everything that goes wrong on a page: console errors and warnings, page errors, failed loads. */
function watch(page: Page, name: string, problems: string[]): void {
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      problems.push(`${name}: console ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on(
    "requestfailed",
    (request) => problems.push(`${name}: request failed: ${request.url()} (${request.failure()?.errorText})`),
  );
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${name}: ${response.status()} for ${response.url()}`);
  });
}

/** The one session cookie of a browser context, as the browser stored it. */
async function sessionCookie(context: BrowserContext): Promise<Cookie> {
  const cookies = (await context.cookies()).filter((cookie) => cookie.name === "sid");
  assert.equal(cookies.length, 1, "one session cookie");
  return cookies[0];
}

/** The attributes the demo promises, as Chromium kept them: checked against what the page says. */
async function checkCookie(context: BrowserContext, page: Page): Promise<Cookie> {
  const cookie = await sessionCookie(context);
  assert.equal(cookie.domain, "127.0.0.1", "a host-only cookie");
  assert.equal(cookie.path, "/");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Lax");
  assert.equal(cookie.secure, false, "not Secure over http");
  // Max-Age was the idle timeout when the cookie was last sent (at most a minute ago here).
  const left = cookie.expires - Date.now() / 1000;
  assert.ok(left > IDLE_SECONDS - 60 && left <= IDLE_SECONDS + 1, `expires in ${left} s`);
  const said = await page.locator("#cookie").textContent();
  assert.match(said ?? "", /HttpOnly[\s\S]*SameSite=Lax[\s\S]*Path=\/[\s\S]*not Secure/);
  return cookie;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? "").trim();
}

/** The rows of "Your sessions": device and whether it is this browser. */
async function listed(page: Page): Promise<{ device: string; current: boolean }[]> {
  const rows = page.locator("#your-sessions li");
  const out = [];
  for (let i = 0; i < await rows.count(); i++) {
    const row = rows.nth(i);
    out.push({
      device: ((await row.locator(".device").textContent()) ?? "").trim(),
      current: (await row.getAttribute("data-current")) === "true",
    });
  }
  return out;
}

async function logIn(page: Page, name: string): Promise<void> {
  await page.getByLabel("Name").fill(name);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#user-name").waitFor();
}

test(
  "demo in Chromium: two browsers of one user, one logs the other out; cookie, fingerprint, phone layout, no console errors",
  {
    skip: absent !== undefined && process.env.CI !== "true" ? absent : false,
    timeout: 120_000,
  },
  async () => {
    if (absent !== undefined) assert.fail(`${absent} (CI=true: the browser test must run)`);
    mkdirSync(SCREENSHOTS, { recursive: true });
    const shot = (page: Page, name: string) =>
      page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

    const dir = mkdtempSync(join(tmpdir(), "demo-browser-"));
    const store = new SqliteStore({ path: join(dir, "sessions.db") });
    const app = createDemoApp(store, SECRET);
    let server: ReturnType<typeof serve> | undefined;
    const port = await new Promise<number>((resolve) => {
      server = serve(
        { fetch: app.fetch, port: 0, hostname: "127.0.0.1" },
        (info: AddressInfo) => resolve(info.port),
      );
    });
    const base = `http://127.0.0.1:${port}/`;
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    const problems: string[] = [];
    try {
      const laptopContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const phoneContext = await browser.newContext({
        viewport: { width: 390, height: 844 },
        deviceScaleFactor: 2,
        isMobile: true,
        hasTouch: true,
        userAgent: PHONE_UA,
      });
      const laptop = await laptopContext.newPage();
      const phone = await phoneContext.newPage();
      watch(laptop, "laptop", problems);
      watch(phone, "phone", problems);

      // First visits: the counter counts from 1; the fingerprint stays while the session does.
      await laptop.goto(base);
      assert.equal(await laptop.title(), "Sessions demo");
      assert.equal(await text(laptop, "#visits"), "1 visit in this session.");
      const anonymous = await text(laptop, "#fingerprint");
      assert.match(anonymous, /^[0-9a-f]{8}$/);
      const firstCookie = await checkCookie(laptopContext, laptop);
      assert.ok(
        !(await laptop.content()).includes(firstCookie.value.split(".")[0]),
        "the id is not in the page",
      );
      // No request for an icon: it is inline. A browser that asks for /favicon.ico anyway gets one.
      assert.match(
        (await laptop.locator('link[rel="icon"]').getAttribute("href")) ?? "",
        /^data:image\/svg\+xml,/,
      );
      assert.equal((await laptopContext.request.get(`${base}favicon.ico`)).status(), 200);
      await laptop.reload();
      assert.equal(await text(laptop, "#visits"), "2 visits in this session.");
      assert.equal(await text(laptop, "#fingerprint"), anonymous);
      await shot(laptop, "1-laptop-before-login");

      // Login: a new id (the fingerprint and the cookie change), the counter carries on.
      await logIn(laptop, "ada");
      assert.match(await text(laptop, "#notice"), /^Welcome, ada!/);
      const laptopFingerprint = await text(laptop, "#fingerprint");
      assert.notEqual(laptopFingerprint, anonymous, "the fingerprint changes at login");
      assert.equal(await text(laptop, "#visits"), "3 visits in this session.");
      const loggedInCookie = await checkCookie(laptopContext, laptop);
      assert.notEqual(loggedInCookie.value, firstCookie.value);
      assert.deepEqual(await listed(laptop), [{ device: "Headless Chrome on Linux", current: true }]);
      assert.match(await text(laptop, "#expires"), /UTC \(in 24 h\)/);
      await shot(laptop, "2-laptop-logged-in");

      // The same user on a phone.
      await phone.goto(base);
      const phoneAnonymous = await text(phone, "#fingerprint");
      await logIn(phone, "ada");
      assert.notEqual(await text(phone, "#fingerprint"), phoneAnonymous);
      await checkCookie(phoneContext, phone);
      assert.deepEqual(await listed(phone), [
        { device: "Chrome on Android", current: true },
        { device: "Headless Chrome on Linux", current: false },
      ]);
      // Readable on a phone: the viewport tag, and nothing wider than the screen.
      assert.equal(
        await phone.locator('meta[name="viewport"]').getAttribute("content"),
        "width=device-width, initial-scale=1",
      );
      const widths = await phone.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        screen: globalThis.innerWidth,
      }));
      assert.ok(
        widths.page <= widths.screen,
        `the page is ${widths.page} px wide on a ${widths.screen} px screen`,
      );
      await shot(phone, "3-phone-logged-in");

      // The laptop sees both, itself marked, and logs the phone out.
      await laptop.reload();
      assert.deepEqual(await listed(laptop), [
        { device: "Headless Chrome on Linux", current: true },
        { device: "Chrome on Android", current: false },
      ]);
      assert.equal(await text(laptop, "#your-sessions li.current .badge"), "this browser");
      await shot(laptop, "4-laptop-two-sessions");
      await laptop.locator('#your-sessions li[data-current="false"]').getByRole("button", { name: "Log out" })
        .click();
      await laptop.getByText("Logged out Chrome on Android").waitFor();
      assert.deepEqual(await listed(laptop), [{ device: "Headless Chrome on Linux", current: true }]);
      assert.equal(await text(laptop, "#fingerprint"), laptopFingerprint, "the laptop keeps its session");
      await shot(laptop, "5-laptop-phone-logged-out");

      // The phone's next request: a new, logged-out session, and the page says so.
      const revokedCookie = await sessionCookie(phoneContext);
      await phone.reload();
      assert.match(await text(phone, "#ended"), /^The session your browser had has ended/);
      assert.equal(await phone.locator("#user-name").count(), 0, "logged out");
      assert.equal(await phone.locator("#your-sessions").count(), 0);
      assert.equal(await text(phone, "#visits"), "1 visit in this session.");
      assert.notEqual((await sessionCookie(phoneContext)).value, revokedCookie.value, "a new session cookie");
      await shot(phone, "6-phone-after-being-logged-out");

      // The phone logs in again; the laptop logs out everywhere else.
      await logIn(phone, "ada");
      await laptop.reload();
      assert.equal((await listed(laptop)).length, 2);
      await laptop.getByRole("button", { name: "Log out everywhere else" }).click();
      await laptop.getByText("Logged out 1 other session; this one stays logged in.").waitFor();
      assert.equal((await listed(laptop)).length, 1);
      await phone.reload();
      assert.equal(await phone.locator("#ended").count(), 1);
      assert.equal(await phone.locator("#user-name").count(), 0);

      // The laptop logs out: the session is deleted, so the counter starts again and the fingerprint changes.
      await laptop.locator('form[action="/logout"]').getByRole("button", { name: "Log out" }).click();
      await laptop.getByText("You are logged out").waitFor();
      assert.equal(await text(laptop, "#visits"), "1 visit in this session.");
      assert.notEqual(await text(laptop, "#fingerprint"), laptopFingerprint);
      assert.equal(await laptop.locator("#ended").count(), 0, "logging out here is not 'ended elsewhere'");
      await checkCookie(laptopContext, laptop);
      await shot(laptop, "7-laptop-logged-out");

      assert.deepEqual(problems, [], "no console error, page error or failed request");
    } finally {
      await browser.close();
      await new Promise((resolve) => server!.close(resolve));
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
