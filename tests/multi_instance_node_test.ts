// Many app instances, one store: two separate app processes, Express on Node (A) and Hono on Deno (B),
// share one store and are driven over real HTTP. One variant per shared store; a new store (Redis Cluster,
// ...) adds a variant below and a case in tests/multi_instance/_store.ts.
// Node only: it orchestrates the processes (both runtimes run anyway, one per instance).
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { reportUnavailable } from "../src/stores/_test_servers.ts";
import { testDatabase } from "../src/stores/_test_postgres.ts";
import { STORE_CONFIG_VARIABLE, type StoreConfig } from "./multi_instance/_store.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A shared store the two instances use, prepared by the test and removed afterwards. */
interface StoreVariant {
  name: string;
  prepare(): Promise<{ config: StoreConfig; dispose(): Promise<void> } | { unavailable: string }>;
}

const VARIANTS: StoreVariant[] = [
  {
    name: "PostgreSQL",
    async prepare() {
      const db = await testDatabase();
      if ("unavailable" in db) return db;
      // The instances create the table themselves, at the same time: that is part of the test.
      return {
        config: { kind: "postgres", url: db.url, tableName: `${db.schema}.sessions` },
        dispose: db.drop,
      };
    },
  },
];

const running = new Set<ChildProcess>();
// A test process that ends early (a failure, Ctrl-C) takes its instances with it.
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** One running app instance. */
class Instance {
  private constructor(readonly name: string, readonly child: ChildProcess, readonly port: number) {}

  static start(name: string, command: string, args: string[], config: StoreConfig): Promise<Instance> {
    const child = spawn(command, args, {
      cwd: root,
      env: { ...process.env, [STORE_CONFIG_VARIABLE]: JSON.stringify(config), NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    child.once("exit", () => running.delete(child));
    let output = "";
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`${name} did not start within 30 s: ${output.slice(-2000)}`));
      }, 30_000);
      const onData = (chunk: Buffer) => {
        output += chunk;
        const match = /^READY (\d+)$/m.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(new Instance(name, child, Number(match[1])));
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", (chunk) => (output += chunk));
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before it was ready: ${output.slice(-2000)}`));
      });
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends one request with `cookie`; answers the status, body and the new cookie if one was set. */
  async request(path: string, cookie?: string) {
    const response = await fetch(`http://127.0.0.1:${this.port}${path}`, {
      headers: cookie ? { cookie } : {},
      redirect: "manual",
    });
    const body = await response.text();
    const set = response.headers.getSetCookie().find((c) => c.startsWith("sid="));
    const pair = set?.split(";")[0];
    return {
      status: response.status,
      body,
      cookie: pair === "sid=" ? undefined : pair,
      cleared: pair === "sid=",
    };
  }

  async peek(cookie: string): Promise<{ isNew: boolean; data: Record<string, unknown> }> {
    const result = await this.request("/peek", cookie);
    assert.equal(result.status, 200, `${this.name} /peek: ${result.body}`);
    return JSON.parse(result.body);
  }

  /** Kills the process (SIGKILL by default) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill(signal);
    await exited;
  }
}

async function startInstances(config: StoreConfig): Promise<[Instance, Instance]> {
  const deno = join(root, "node_modules", ".bin", "deno");
  return await Promise.all([
    Instance.start("A (Express, Node)", process.execPath, [
      "--import",
      "tsx",
      "tests/multi_instance/express_app.ts",
    ], config),
    Instance.start("B (Hono, Deno)", deno, [
      "run",
      "-A",
      "--no-prompt",
      "tests/multi_instance/hono_deno_app.ts",
    ], config),
  ]);
}

for (const variant of VARIANTS) {
  const prepared = await variant.prepare();
  if ("unavailable" in prepared) {
    reportUnavailable(`multi-instance (${variant.name})`, prepared.unavailable);
    continue;
  }
  const title = (text: string) => `multi-instance (${variant.name}): ${text}`;
  let a: Instance | undefined;
  let b: Instance | undefined;
  let started: Promise<[Instance, Instance]> | undefined;
  const instances = async () => {
    started ??= startInstances(prepared.config).then(([first, second]) => {
      a = first;
      b = second;
      return [first, second];
    });
    return await started;
  };

  test(title("a session created through A is read and written through B, and back"), async () => {
    const [a, b] = await instances();
    const created = await a.request("/set?key=user&value=ada");
    assert.equal(created.status, 200);
    const cookie = created.cookie!;
    assert.ok(cookie, "A set a session cookie");
    assert.deepEqual(await b.peek(cookie), { isNew: false, data: { user: "ada" } });
    assert.equal((await b.request("/set?key=cart&value=3", cookie)).status, 200);
    assert.deepEqual(await a.peek(cookie), { isNew: false, data: { user: "ada", cart: "3" } });
  });

  test(
    title("50 overlapping requests of one user over both instances, each setting its own key, all persist"),
    async () => {
      const [a, b] = await instances();
      const cookie = (await a.request("/set?key=start&value=0")).cookie!;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).request(`/set?key=k${i}&value=${i}`, cookie)),
      );
      assert.deepEqual(results.map((r) => r.status), Array(50).fill(200));
      const expected: Record<string, string> = { start: "0" };
      for (let i = 0; i < 50; i++) expected[`k${i}`] = String(i);
      assert.deepEqual((await a.peek(cookie)).data, expected, "read through A");
      assert.deepEqual((await b.peek(cookie)).data, expected, "read through B");
    },
  );

  test(title("a logout on A is honoured on B at once; a slow write on B after it gets 409"), async () => {
    const [a, b] = await instances();
    const cookie = (await a.request("/set?key=user&value=ada")).cookie!;
    const token = crypto.randomUUID();
    // B loads the session, then waits for the release.
    const slow = b.request(`/slow-set?key=cart&value=1&token=${token}`, cookie);
    const deadline = Date.now() + 10_000;
    while ((await b.request(`/started?token=${token}`)).body !== "yes") {
      assert.ok(Date.now() < deadline, "the slow request never loaded its session");
      await sleep(10);
    }
    const logout = await a.request("/logout", cookie);
    assert.equal(logout.status, 200);
    assert.ok(logout.cleared, "A cleared the cookie");
    assert.deepEqual(await b.peek(cookie), { isNew: true, data: {} }, "B sees the logout at once");
    assert.equal((await b.request(`/release?token=${token}`)).status, 200);
    const late = await slow;
    assert.equal(late.status, 409, late.body);
    assert.equal(late.body, "error:SessionConflictError");
    assert.equal(late.cookie, undefined, "no cookie for the refused write");
    assert.deepEqual(await a.peek(cookie), { isNew: true, data: {} }, "nothing came back, seen from A");
    assert.deepEqual(await b.peek(cookie), { isNew: true, data: {} }, "nor from B");
  });

  test(
    title(
      "A killed with SIGKILL under load: every write it acknowledged is kept, B keeps serving, nothing is invented",
    ),
    async () => {
      const [a, b] = await instances();
      const users = await Promise.all(
        Array.from(
          { length: 16 },
          async (_, u) => (await (u % 2 ? a : b).request(`/set?key=user&value=u${u}`)).cookie!,
        ),
      );
      const acked = new Map<number, Map<string, string>>(
        users.map((_, u) => [u, new Map([["user", `u${u}`]])]),
      );
      const sent = new Map<number, Map<string, string>>(
        users.map((_, u) => [u, new Map([["user", `u${u}`]])]),
      );
      const inFlight = new Map<number, Set<string>>(users.map((_, u) => [u, new Set()]));
      let killed = false;
      let stop = false;
      const counts = { aAcked: 0, aFailed: 0, bAcked: 0, bFailed: 0, bAckedAfterKill: 0 };
      const failures: string[] = [];

      // Every user writes through both instances at once, one request after another on each: keys a<n> via A, b<n> via B.
      const writer = (instance: Instance, prefix: "a" | "b", u: number) => async () => {
        for (let n = 0; !stop; n++) {
          const key = `${prefix}${n}`;
          const value = `${u}:${key}`;
          sent.get(u)!.set(key, value);
          try {
            const result = await instance.request(
              `/set?key=${key}&value=${encodeURIComponent(value)}`,
              users[u],
            );
            if (result.status === 200 && result.body === "ok") {
              acked.get(u)!.set(key, value);
              if (prefix === "a") counts.aAcked++;
              else {
                counts.bAcked++;
                if (killed) counts.bAckedAfterKill++;
              }
            } else {
              throw new Error(`status ${result.status}: ${result.body}`);
            }
          } catch (error) {
            if (prefix === "b") {
              counts.bFailed++;
              failures.push(`B ${key}: ${(error as Error).message}`);
              continue;
            }
            // A died: this write was sent but never acknowledged; it may or may not have landed.
            counts.aFailed++;
            inFlight.get(u)!.add(key);
            return;
          }
        }
      };
      const load = users.flatMap((_, u) => [writer(a, "a", u)(), writer(b, "b", u)()]);
      const loadStarted = Date.now();
      while (counts.aAcked < 300 && Date.now() - loadStarted < 15_000) await sleep(5);
      const killedAt = Date.now();
      killed = true;
      await a.kill("SIGKILL");
      const ackedBeforeKill = counts.aAcked;
      // B goes on serving for a while after the kill.
      while (counts.bAckedAfterKill < 200 && Date.now() - killedAt < 10_000) await sleep(5);
      stop = true;
      await Promise.all(load);

      assert.equal(a.alive, false, "A is dead");
      assert.ok(ackedBeforeKill > 0, "A acknowledged writes before it was killed");
      assert.equal(counts.bFailed, 0, `B failed requests: ${failures.slice(0, 5).join("; ")}`);
      assert.ok(counts.bAckedAfterKill >= 200, `B answered ${counts.bAckedAfterKill} writes after the kill`);
      let landedInFlight = 0;
      for (const [u, cookie] of users.entries()) {
        const { isNew, data } = await b.peek(cookie);
        assert.equal(isNew, false, `user ${u}'s session survived`);
        for (const [key, value] of acked.get(u)!) {
          assert.equal(data[key], value, `user ${u}: acknowledged ${key} is kept`);
        }
        for (const [key, value] of Object.entries(data)) {
          assert.equal(sent.get(u)!.get(key), value, `user ${u}: ${key}=${value} was never sent`);
          if (!acked.get(u)!.has(key)) {
            assert.ok(inFlight.get(u)!.has(key), `user ${u}: ${key} is neither acknowledged nor in flight`);
            landedInFlight++;
          }
        }
      }
      console.log(
        `multi-instance (${variant.name}) kill figures: A acknowledged ${ackedBeforeKill} writes before SIGKILL, ` +
          `${counts.aFailed} were in flight (${landedInFlight} of them landed, ${
            counts.aFailed - landedInFlight
          } did not), ` +
          `B acknowledged ${counts.bAcked} writes (${counts.bAckedAfterKill} after the kill, in ${
            Date.now() - killedAt
          } ms) with ${counts.bFailed} failures; all ${
            [...acked.values()].reduce((n, m) => n + m.size, 0)
          } acknowledged keys read back through B`,
      );
    },
  );

  test(title("stop the instances and remove the shared store"), async () => {
    await a?.kill("SIGTERM");
    await b?.kill("SIGTERM");
    await prepared.dispose();
  });
}
