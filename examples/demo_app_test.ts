// The demo at the level of requests: every flow of the page, without a browser
// (demo_browser_node_test.ts runs the same flows in Chromium).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createDemoApp, deviceOf, MAX_NAME_LENGTH, MAX_SESSIONS_PER_USER } from "./demo_app.ts";
import { MemoryStore } from "../src/stores/memory.ts";
import { SqliteStore } from "../src/stores/sqlite.ts";
import type { Store } from "../src/store.ts";

const SECRET = "demo-test-secret-0123456789abcdefghij";
const CHROME_LINUX =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
const FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0";

/** A listed session as the page shows it. */
interface Listed {
  device: string;
  current: boolean;
  handle: string;
}

/** A client that keeps the session cookie, like a browser, and reads the last page it got. */
class Browser {
  cookie = "";
  html = "";
  constructor(public app: ReturnType<typeof createDemoApp>, public userAgent = CHROME_LINUX) {}

  async go(path: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    headers.set("user-agent", this.userAgent);
    if (this.cookie) headers.set("cookie", this.cookie);
    const response = await this.app.request(path, { ...init, headers, redirect: "manual" });
    const setCookie = response.headers.get("set-cookie");
    if (setCookie) this.cookie = /Max-Age=0/.test(setCookie) ? "" : setCookie.split(";")[0];
    const html = await response.text();
    if (response.headers.get("content-type")?.startsWith("text/html")) this.html = html;
    return { status: response.status, location: response.headers.get("location"), html, response };
  }

  /** Posts a form of the last page: with its CSRF token unless `form` says otherwise. */
  post(path: string, form: Record<string, string> = {}) {
    return this.go(path, { method: "POST", body: new URLSearchParams({ csrf: this.csrf, ...form }) });
  }

  /** Posts, then follows the redirect as a browser does. */
  async submit(path: string, form: Record<string, string> = {}) {
    const answer = await this.post(path, form);
    assert.equal(answer.status, 303, `POST ${path} redirects`);
    assert.equal(answer.location, "/");
    return (await this.go("/")).html;
  }

  get csrf(): string {
    return /name="csrf" value="([^"]+)"/.exec(this.html)?.[1] ?? "";
  }

  get fingerprint(): string {
    return /id="fingerprint">([0-9a-f]{8})</.exec(this.html)?.[1] ?? "";
  }

  get visits(): string {
    return /id="visits"><b>([^<]*)<\/b>/.exec(this.html)?.[1] ?? "";
  }

  get sessions(): Listed[] {
    return [
      ...this.html.matchAll(
        /data-current="(true|false)">\s*<b class="device">([^<]*)<\/b>[\s\S]*?name="handle" value="([^"]+)"/g,
      ),
    ]
      .map(([, current, device, handle]) => ({ device, current: current === "true", handle }));
  }
}

/** The stores the flows run on: the reference one, and the one `npm run demo` uses. */
const STORES: [string, () => { store: Store; done: () => Promise<void> }][] = [
  ["MemoryStore", () => ({ store: new MemoryStore(), done: () => Promise.resolve() })],
  ["SqliteStore", () => {
    const dir = mkdtempSync(join(tmpdir(), "demo-"));
    const store = new SqliteStore({ path: join(dir, "sessions.db") });
    return {
      store,
      done: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }],
];

/** A test of the demo app, run once on each store. */
function demoTest(name: string, run: (app: ReturnType<typeof createDemoApp>) => Promise<void>): void {
  for (const [kind, make] of STORES) {
    test(`${name} (${kind})`, async () => {
      const { store, done } = make();
      try {
        await run(createDemoApp(store, SECRET));
      } finally {
        await done();
      }
    });
  }
}

demoTest(
  "demo page: the counter counts from 1 and pluralises; the fingerprint stays; the id never shows",
  async (app) => {
    const browser = new Browser(app);
    const first = await browser.go("/");
    assert.equal(first.status, 200);
    assert.equal(browser.visits, "1 visit");
    assert.match(browser.fingerprint, /^[0-9a-f]{8}$/);
    const fingerprint = browser.fingerprint;
    await browser.go("/");
    assert.equal(browser.visits, "2 visits");
    assert.equal(browser.fingerprint, fingerprint, "same session, same fingerprint");
    const id = browser.cookie.slice("sid=".length).split(".")[0];
    assert.equal(id.length, 32);
    assert.ok(!browser.html.includes(id), "the id is never in the page");
    assert.ok(!browser.html.includes(id.slice(0, 12)), "not even a part of it");
    // What the panel says.
    assert.match(browser.html, /<code>visits<\/code> = 2/);
    assert.match(browser.html, /HttpOnly.*\n?.*SameSite=Lax.*Path=\//);
    assert.match(browser.html, /not <code>Secure<\/code> \(this page came over http/);
    assert.match(browser.html, /nobody \(not logged in\)/);
    assert.doesNotMatch(browser.html, /id="your-sessions"/, "no list of sessions before login");
    // A page fit for a phone, with nothing that fails to load.
    assert.match(browser.html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(browser.html, /<link rel="icon" href="data:image\/svg\+xml,/);
    assert.match(first.response.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.match(first.html, /PORT=8001 npm run demo/);
  },
);

test("demo page over https: the panel says the cookie is Secure, and it is", async () => {
  const app = createDemoApp(new MemoryStore(), SECRET);
  const response = await app.request("https://demo.example/");
  assert.match(response.headers.get("set-cookie") ?? "", /; Secure/);
  assert.match(await response.text(), /<code>Secure<\/code> \(sent over https only\)/);
});

test("demo: /favicon.ico is an icon and touches no session; an unknown page is a 404 page", async () => {
  const app = createDemoApp(new MemoryStore(), SECRET);
  const icon = await app.request("/favicon.ico");
  assert.equal(icon.status, 200);
  assert.equal(icon.headers.get("content-type"), "image/svg+xml");
  assert.match(await icon.text(), /^<svg /);
  assert.equal(icon.headers.get("set-cookie"), null);
  const missing = await app.request("/nothing-here");
  assert.equal(missing.status, 404);
  assert.match(await missing.text(), /There is no such page in this demo\./);
});

test("demo: sessions and logins survive a restart (SqliteStore)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "demo-"));
  const path = join(dir, "sessions.db");
  try {
    let store = new SqliteStore({ path });
    const laptop = new Browser(createDemoApp(store, SECRET));
    const phone = new Browser(laptop.app, FIREFOX_ANDROID);
    const visitor = new Browser(laptop.app);
    await visitor.go("/");
    await visitor.go("/");
    const fingerprint = visitor.fingerprint;
    for (const browser of [laptop, phone]) {
      await browser.go("/");
      await browser.submit("/login", { user: "ada" });
    }
    // Restart: a new store on the same file, a new app.
    await store.close();
    store = new SqliteStore({ path });
    const app = createDemoApp(store, SECRET);
    for (const browser of [laptop, phone, visitor]) browser.app = app;
    await visitor.go("/");
    assert.equal(visitor.visits, "3 visits");
    assert.equal(visitor.fingerprint, fingerprint);
    await laptop.go("/");
    assert.match(laptop.html, /Logged in as <b id="user-name">ada<\/b>/);
    assert.deepEqual(laptop.sessions.map(({ device, current }) => ({ device, current })), [
      { device: "Chrome on Linux", current: true },
      { device: "Firefox on Android", current: false },
    ]);
    await laptop.submit("/logout-others");
    await phone.go("/");
    assert.match(phone.html, /id="ended"/);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

demoTest(
  "demo: login gives a new id and keeps the counter; the name is escaped; logout starts afresh",
  async (app) => {
    const browser = new Browser(app);
    await browser.go("/");
    await browser.go("/");
    const before = { cookie: browser.cookie, fingerprint: browser.fingerprint, csrf: browser.csrf };

    const home = await browser.submit("/login", { user: "  Ada <script>  " });
    assert.notEqual(browser.cookie, before.cookie, "a new cookie at login");
    assert.notEqual(browser.fingerprint, before.fingerprint, "a new id at login: the fingerprint changes");
    assert.notEqual(browser.csrf, before.csrf, "a new form token at login");
    assert.equal(browser.visits, "3 visits", "the data is kept");
    assert.match(home, /Welcome, Ada &lt;script&gt;! You have a new session id/);
    assert.match(home, /Logged in as <b id="user-name">Ada &lt;script&gt;<\/b>/);
    assert.doesNotMatch(home, /<script>/);
    assert.match(home, /Expires<\/dt><dd id="expires"><time datetime="[^"]+">[^<]+ UTC<\/time> \(in 24 h\)/);
    assert.deepEqual(browser.sessions.map(({ device, current }) => ({ device, current })), [
      { device: "Chrome on Linux", current: true },
    ]);
    await browser.go("/");
    assert.doesNotMatch(browser.html, /Welcome/, "the flash shows once");

    const loggedIn = browser.cookie;
    const out = await browser.post("/logout");
    assert.equal(out.status, 303);
    assert.notEqual(browser.cookie, loggedIn);
    const after = (await browser.go("/")).html;
    assert.match(after, /You are logged out: the session was deleted and this is a new one/);
    assert.equal(browser.visits, "1 visit", "a new session: the counter starts again");
    assert.match(after, /name="user"/);
    assert.doesNotMatch(after, /id="ended"/, "logging out here is not 'ended elsewhere'");

    // The old cookie names nothing now: presented again, it is a fresh session, told so.
    const replay = new Browser(browser.app);
    replay.cookie = loggedIn;
    await replay.go("/");
    assert.match(replay.html, /id="ended"/);
    assert.equal(replay.visits, "1 visit");
    assert.doesNotMatch(replay.html, /Logged in as/);
  },
);

demoTest(
  "demo: two browsers of one user: both listed, this one marked; log the other out; it is told on its next request",
  async (app) => {
    const laptop = new Browser(app);
    const phone = new Browser(app, FIREFOX_ANDROID);
    await laptop.go("/");
    await laptop.submit("/login", { user: "ada" });
    await phone.go("/");
    await phone.submit("/login", { user: "ada" });
    assert.deepEqual(phone.sessions.map(({ device, current }) => ({ device, current })), [
      { device: "Firefox on Android", current: true },
      { device: "Chrome on Linux", current: false },
    ]);
    await laptop.go("/");
    const listed = laptop.sessions;
    assert.deepEqual(listed.map(({ device, current }) => ({ device, current })), [
      { device: "Chrome on Linux", current: true },
      { device: "Firefox on Android", current: false },
    ]);
    assert.match(laptop.html, /2 sessions/);
    assert.match(laptop.html, /Log out everywhere else/);
    for (const { handle } of listed) assert.match(handle, /^h1_[\w-]{22}$/);

    const phoneForm = phone.csrf;
    const home = await laptop.submit("/revoke", { handle: listed[1].handle });
    assert.match(home, /Logged out Firefox on Android: its next request starts a new, logged-out session\./);
    assert.deepEqual(laptop.sessions.map((s) => s.device), ["Chrome on Linux"]);
    assert.doesNotMatch(laptop.html, /Log out everywhere else/, "no one else to log out");

    // The phone's next request: logged out, and told why.
    await phone.go("/");
    assert.doesNotMatch(phone.html, /Logged in as/);
    assert.match(phone.html, /id="ended">The session your browser had has ended/);
    assert.equal(phone.visits, "1 visit");
    // A form the phone still had open is refused, and does nothing.
    const stale = await phone.post("/logout-others", { csrf: phoneForm });
    assert.equal(stale.status, 403);
    assert.match(stale.html, /Nothing was done/);
    await laptop.go("/");
    assert.match(laptop.html, /Logged in as <b id="user-name">ada<\/b>/);

    // Revoking a session that has already ended says so.
    assert.match(
      await laptop.submit("/revoke", { handle: listed[1].handle }),
      /That session had already ended\./,
    );
    // Revoking this browser's own row logs it out.
    const own = await laptop.submit("/revoke", { handle: laptop.sessions[0].handle });
    assert.match(own, /You are logged out \(this browser\)\./);
    assert.doesNotMatch(own, /Logged in as/);
  },
);

demoTest("demo: log out everywhere else keeps this browser logged in", async (app) => {
  const browsers = [new Browser(app), new Browser(app, FIREFOX_ANDROID), new Browser(app)];
  for (const browser of browsers) {
    await browser.go("/");
    await browser.submit("/login", { user: "ada" });
  }
  const [first, ...others] = browsers;
  await first.go("/");
  assert.equal(first.sessions.length, 3);
  const home = await first.submit("/logout-others");
  assert.match(home, /Logged out 2 other sessions; this one stays logged in\./);
  assert.equal(first.sessions.length, 1);
  assert.ok(first.sessions[0].current);
  for (const other of others) {
    await other.go("/");
    assert.doesNotMatch(other.html, /Logged in as/);
    assert.match(other.html, /id="ended"/);
  }
});

demoTest("demo: a form without this session's token is refused with 403 and changes nothing", async (app) => {
  const victim = new Browser(app);
  const attacker = new Browser(app);
  await victim.go("/");
  await attacker.go("/");
  for (const csrf of ["", "wrong", attacker.csrf, victim.csrf.slice(1)]) {
    const answer = await victim.post("/login", { user: "mallory", csrf });
    assert.equal(answer.status, 403, `token ${JSON.stringify(csrf)}`);
    assert.match(answer.html, /Form refused/);
  }
  const noField = await victim.go("/login", {
    method: "POST",
    body: new URLSearchParams({ user: "mallory" }),
  });
  assert.equal(noField.status, 403);
  for (const path of ["/logout", "/revoke", "/logout-others"]) {
    assert.equal((await victim.post(path, { csrf: "wrong" })).status, 403, path);
  }
  await victim.go("/");
  assert.doesNotMatch(victim.html, /Logged in as/);
  assert.equal(victim.visits, "2 visits", "the same session, untouched");
});

demoTest(`demo: a name is 1 to ${MAX_NAME_LENGTH} characters`, async (app) => {
  const browser = new Browser(app);
  await browser.go("/");
  for (const user of ["", "   ", "x".repeat(MAX_NAME_LENGTH + 1)]) {
    const home = await browser.submit("/login", { user });
    assert.match(home, /A name is 1 to 40 characters\./);
    assert.doesNotMatch(home, /Logged in as/);
  }
  assert.match(await browser.submit("/login", { user: "x".repeat(MAX_NAME_LENGTH) }), /Logged in as/);
});

demoTest(
  `demo: at most ${MAX_SESSIONS_PER_USER} sessions per user: another login ends the oldest`,
  async (app) => {
    const browsers = Array.from({ length: MAX_SESSIONS_PER_USER + 1 }, () => new Browser(app));
    for (const browser of browsers) {
      await browser.go("/");
      await browser.submit("/login", { user: "ada" });
    }
    assert.equal(browsers.at(-1)!.sessions.length, MAX_SESSIONS_PER_USER);
    await browsers[0].go("/");
    assert.match(browsers[0].html, /id="ended"/, "the oldest was logged out");
    await browsers[1].go("/");
    assert.match(browsers[1].html, /Logged in as/);
  },
);

test("demo: a request whose session is logged out while it runs gets the 409 page and saves nothing", async () => {
  // Fault injection: the phone's next read of its record is held until the laptop has revoked it.
  const memory = new MemoryStore();
  let hold: Promise<void> | undefined;
  const store: Store = {
    get: async (key) => {
      const record = memory.get(key);
      if (hold !== undefined) await hold;
      return record;
    },
    set: (key, write) => memory.set(key, write),
    delete: (key) => memory.delete(key),
    listByUser: (userId) => memory.listByUser(userId),
  };
  const app = createDemoApp(store, SECRET);
  const laptop = new Browser(app);
  const phone = new Browser(app, FIREFOX_ANDROID);
  for (const browser of [laptop, phone]) {
    await browser.go("/");
    await browser.submit("/login", { user: "ada" });
  }
  await laptop.go("/");
  const phoneHandle = laptop.sessions.find((s) => !s.current)!.handle;
  const csrf = laptop.csrf;

  let release!: () => void;
  hold = new Promise((resolve) => (release = resolve));
  const late = phone.go("/");
  await new Promise((resolve) => setTimeout(resolve, 10));
  hold = undefined;
  // The laptop's own read is not held: it revokes the phone while the phone's request waits.
  const revoked = await laptop.post("/revoke", { handle: phoneHandle, csrf });
  assert.equal(revoked.status, 303);
  release();
  const answer = await late;
  assert.equal(answer.status, 409);
  assert.match(answer.html, /Session ended meanwhile/);
  assert.equal(answer.response.headers.get("set-cookie"), null);
  await phone.go("/");
  assert.match(phone.html, /id="ended"/);
});

test("deviceOf: a few words from the User-Agent, never the header itself", () => {
  assert.equal(deviceOf(CHROME_LINUX), "Chrome on Linux");
  assert.equal(deviceOf(FIREFOX_ANDROID), "Firefox on Android");
  assert.equal(
    deviceOf(
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    ),
    "Safari on iOS",
  );
  assert.equal(
    deviceOf(
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    ),
    "Edge on Windows",
  );
  assert.equal(deviceOf("curl/8.5.0"), "curl");
  assert.equal(deviceOf("<img src=x onerror=alert(1)>"), "A browser");
  assert.equal(deviceOf(undefined), "A browser");
});

// The demo's own process, started with the arguments of package.json's `demo` script, so these tests run
// what `npm run demo` runs (its flags included: on Node 22, `node:sqlite` warns that it is experimental
// unless the script turns that off, and the port-in-use test holds the demo to one line).
const root = fileURLToPath(new URL("..", import.meta.url));
const demoArgs: string[] = (() => {
  const script: string = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).scripts.demo;
  const [command, ...args] = script.split(" ");
  if (command !== "node") throw new Error(`package.json's demo script does not start with node: ${script}`);
  return args;
})();
// Under Deno, the `node` on PATH runs it (as `npm run demo` would).
const demoNode = "Deno" in globalThis ? "node" : process.execPath;

/** Runs the demo until it exits; its exit code and output. Killed after 20 s. */
function runDemo(
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "demo-data-"));
  const child = spawn(demoNode, demoArgs, {
    cwd: root,
    env: { ...process.env, DEMO_DATA_DIR: dataDir, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const timer = setTimeout(() => child.kill(), 20_000);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

test("demo: a port that is taken gives one clear line and exit code 1, no stack trace", async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, resolve));
  const { port } = blocker.address() as AddressInfo;
  try {
    const { code, stdout, stderr } = await runDemo({ PORT: String(port) });
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      `Port ${port} is already in use (is the demo already running?): stop that program, or choose another ` +
        `port, e.g. PORT=8000 npm run demo\n`,
    );
  } finally {
    blocker.close();
  }
});

test("demo: a PORT that is not a port number gives one clear line and exit code 1", async () => {
  for (const value of ["abc", "70000", "-1"]) {
    const { code, stderr } = await runDemo({ PORT: value });
    assert.equal(code, 1, value);
    assert.equal(stderr, `PORT must be a port number from 0 to 65535, not "${value}".\n`);
  }
});

test("demo: starts on the PORT given and says where", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "demo-data-"));
  const child = spawn(demoNode, demoArgs, {
    cwd: root,
    env: { ...process.env, DEMO_DATA_DIR: dataDir, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((resolve) => child.on("close", resolve));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += chunk;
        if (out.includes("\n")) resolve(out);
      });
      child.on("close", () => reject(new Error(`the demo exited: ${out}`)));
    });
    const match = /^Sessions demo at http:\/\/localhost:(\d+) \(PORT=\1; sessions in .*demo-sessions\.db\)\n$/
      .exec(
        line,
      );
    assert.ok(match, line);
    const response = await fetch(`http://127.0.0.1:${match[1]}/`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /1 visit/);
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
});
