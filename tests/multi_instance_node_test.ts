// Many app instances, one store: two separate app processes, Express on Node (A) and Hono on Deno (B),
// share one store and are driven over real HTTP. One variant per shared store (PostgreSQL, Redis Cluster); a
// new store adds a variant below and a case in tests/multi_instance/_store.ts. The Redis Cluster variant also
// kills a master under load while its replica is promoted.
// Node only: it orchestrates the processes (both runtimes run anyway, one per instance).
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { redisText, reportUnavailable, testCluster, waitFor } from "../src/stores/_test_servers.ts";
import type { TestCluster } from "../src/stores/_test_servers.ts";
import { testDatabase } from "../src/stores/_test_postgres.ts";
import { keySlot, redisKey } from "../src/stores/_redis_store.ts";
import { storageKey } from "../src/_crypto.ts";
import { STORE_CONFIG_VARIABLE, type StoreConfig } from "./multi_instance/_store.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A shared store the two instances use, prepared by the test and removed afterwards. */
interface StoreVariant {
  name: string;
  prepare(): Promise<
    { config: StoreConfig; dispose(): Promise<void>; cluster?: TestCluster } | { unavailable: string }
  >;
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
  {
    name: "Redis Cluster",
    async prepare() {
      // Three masters with a replica each, and a spare replica that Redis migrates to a master left
      // without one. Every write waits for one replica (WAIT 1), and a master without a replica refuses
      // writes at once (min-replicas-to-write 1) instead of making WAIT time out.
      const started = await testCluster({
        replicas: 1,
        spareReplicas: 1,
        args: [
          "--min-replicas-to-write",
          "1",
          "--min-replicas-max-lag",
          "10",
          "--cluster-require-full-coverage",
          "no",
        ],
      });
      if (started.unavailable !== undefined) return started;
      return {
        config: {
          kind: "redis-cluster",
          rootNodes: started.cluster.rootNodes,
          keyPrefix: `mi${Date.now().toString(36)}_`,
          waitForReplicas: 1,
        },
        dispose: () => started.cluster.stop(),
        cluster: started.cluster,
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

/** Whether `slot` is in one of a master's `CLUSTER NODES` slot ranges. */
function servesSlot(ranges: string[], slot: number): boolean {
  return ranges.some((range) => {
    const [from, to = from] = range.split("-").map(Number);
    return slot >= from && slot <= to;
  });
}

/**
 * The Redis Cluster failover test: users whose sessions live on one master
 * and users elsewhere write through both instances; the master is killed
 * (SIGKILL) and its only replica is promoted. Requests for its slots answer
 * 503 until the new master serves them (reads) and has a replica again
 * (writes: WAIT 1, min-replicas-to-write 1; Redis migrates the spare replica
 * to it), then 200; the other users are served throughout; and every write
 * acknowledged before, during or after is read back.
 */
async function failover(
  [a, b]: [Instance, Instance],
  cluster: TestCluster,
  keyPrefix: string,
  name: string,
): Promise<void> {
  const topology = await cluster.topology();
  const masters = topology.filter((node) => node.flags.includes("master"));
  const replicasOf = (id: string) => topology.filter((node) => node.masterId === id);
  const victim = masters.find((master) => replicasOf(master.id).length === 1);
  assert.ok(victim, "a master with one replica");
  assert.ok(masters.some((master) => replicasOf(master.id).length === 2), "a spare replica elsewhere");
  const heir = cluster.node(replicasOf(victim.id)[0].port);

  // Users until six live on the victim's slots and six elsewhere (the slot follows the cookie's id).
  const users: Array<{ cookie: string; onVictim: boolean }> = [];
  for (
    let i = 0;
    users.filter((u) => u.onVictim).length < 6 || users.filter((u) => !u.onVictim).length < 6;
    i++
  ) {
    assert.ok(i < 200, "sessions land on every master");
    const created = await (i % 2 ? a : b).request(`/set?key=user&value=u${i}`);
    assert.equal(created.status, 200, created.body);
    const id = created.cookie!.slice("sid=".length).split(".")[0];
    const onVictim = servesSlot(victim.slots, keySlot(redisKey(keyPrefix, storageKey(id), true)));
    if (users.filter((u) => u.onVictim === onVictim).length < 6) {
      users.push({ cookie: created.cookie!, onVictim });
    }
  }
  const initial = await Promise.all(
    users.map(async ({ cookie }) => (await a.peek(cookie)).data.user as string),
  );
  const acked = users.map((_, u) => new Map([["user", initial[u]]]));
  const sent = users.map((_, u) => new Map([["user", initial[u]]]));
  const unknown = users.map(() => new Set<string>());

  let killedAt = Number.POSITIVE_INFINITY;
  let stop = false;
  const log: Array<{ onVictim: boolean; kind: "read" | "write"; at: number; status: number }> = [];
  const worker = (instance: Instance, prefix: string, u: number) => async () => {
    const { cookie, onVictim } = users[u];
    for (let n = 0; !stop; n++) {
      // Writes (/set: a read and a write), and between them reads (/peek).
      if (n % 2 === 1) {
        const result = await instance.request("/peek", cookie);
        log.push({ onVictim, kind: "read", at: Date.now(), status: result.status });
        if (result.status !== 200) await sleep(20);
        continue;
      }
      const key = `${prefix}${n}`;
      const value = `${u}:${key}`;
      sent[u].set(key, value);
      const result = await instance.request(`/set?key=${key}&value=${encodeURIComponent(value)}`, cookie);
      log.push({ onVictim, kind: "write", at: Date.now(), status: result.status });
      if (result.status === 200 && result.body === "ok") acked[u].set(key, value);
      else {
        unknown[u].add(key);
        await sleep(20);
      }
    }
  };
  const load = users.flatMap((_, u) => [worker(a, "a", u)(), worker(b, "b", u)()]);
  await waitFor(
    "writes on every user before the kill",
    () => Promise.resolve(acked.every((keys) => keys.size >= 4)),
    10_000,
  );

  killedAt = Date.now();
  process.kill(cluster.node(victim.port).pid!, "SIGKILL");
  let promotedAt = 0;
  await waitFor("the replica's promotion", async () => {
    const promoted = (await redisText(heir, "INFO replication")).includes("role:master");
    if (promoted) promotedAt = Date.now();
    return promoted;
  }, 20_000);
  // Writes need a replica of the new master (WAIT 1): Redis migrates the spare replica to it.
  let replicaAt = 0;
  const replicaJoined = waitFor("a replica of the new master", async () => {
    const joined = /connected_slaves:[1-9]/.test(await redisText(heir, "INFO replication"));
    if (joined) replicaAt = Date.now();
    return joined;
  }, 30_000);
  const after = (onVictim: boolean, kind: "read" | "write") =>
    log.filter((entry) => entry.onVictim === onVictim && entry.kind === kind && entry.at > killedAt);
  // Served again: a full second in which every request of every user answered 200.
  await waitFor("every request to answer 200 again for a second", () => {
    const recent = log.filter((entry) => entry.at > Date.now() - 1000);
    const failedLast = Math.max(...log.filter((entry) => entry.status !== 200).map((entry) => entry.at));
    return Promise.resolve(
      Date.now() - failedLast > 1000 && recent.some((entry) => entry.onVictim && entry.kind === "write"),
    );
  }, 30_000);
  stop = true;
  await Promise.all(load);
  await replicaJoined;

  const statuses = (onVictim: boolean) =>
    new Set(log.filter((entry) => entry.onVictim === onVictim).map((e) => e.status));
  assert.deepEqual([...statuses(false)], [200], "the users on the other masters were served throughout");
  assert.deepEqual(
    [...statuses(true)].sort(),
    [200, 503],
    "the victim's users got 503 during the failover, never another error",
  );
  const victimReads = after(true, "read");
  const victimWrites = after(true, "write");
  assert.ok(
    victimReads.some((e) => e.status === 503) && victimWrites.some((e) => e.status === 503),
    "503 during the failover",
  );
  // When the victim's slots failed, relative to the kill: the first and the last 503 of each kind.
  const window = (entries: typeof log) => {
    const failed = entries.filter((entry) => entry.status !== 200).map((entry) => entry.at - killedAt);
    return `${Math.min(...failed)}-${Math.max(...failed)} ms`;
  };
  let landed = 0;
  for (const [u, { cookie }] of users.entries()) {
    for (const instance of [a, b]) {
      const { isNew, data } = await instance.peek(cookie);
      assert.equal(isNew, false, `user ${u}'s session survived (${instance.name})`);
      for (const [key, value] of acked[u]) {
        assert.equal(data[key], value, `user ${u}: acknowledged ${key} is kept (${instance.name})`);
      }
      for (const [key, value] of Object.entries(data)) {
        assert.equal(sent[u].get(key), value, `user ${u}: ${key}=${value} was never sent`);
        assert.ok(
          acked[u].has(key) || unknown[u].has(key),
          `user ${u}: ${key} was neither acknowledged nor refused`,
        );
      }
      if (instance === b) landed += Object.keys(data).filter((key) => !acked[u].has(key)).length;
    }
    // And every user writes again through both instances.
    for (const instance of [a, b]) {
      assert.equal((await instance.request(`/set?key=final&value=${u}`, cookie)).status, 200);
    }
  }
  const count = (entries: typeof log, status?: number) =>
    entries.filter((e) => status === undefined || e.status === status).length;
  console.log(
    `multi-instance (${name}) failover figures: master :${victim.port} killed with SIGKILL; replica :${heir.port} ` +
      `promoted after ${promotedAt - killedAt} ms, with a replica again after ${
        replicaAt - killedAt
      } ms; on the victim's slots reads answered 503 from ` +
      `${window(victimReads)} and writes from ${window(victimWrites)} after the kill, 200 after that ` +
      `(${count(victimReads, 503)} of ${victimReads.length} reads and ${count(victimWrites, 503)} of ` +
      `${victimWrites.length} writes answered 503 after the kill); the other masters' users made ` +
      `${count(after(false, "read")) + count(after(false, "write"))} requests after the kill, all 200; ` +
      `${acked.reduce((n, keys) => n + keys.size, 0)} acknowledged keys all read back through A and B; ` +
      `${unknown.reduce((n, keys) => n + keys.size, 0)} writes answered 503, ${landed} of them landed`,
  );
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

  if (prepared.cluster !== undefined && prepared.config.kind === "redis-cluster") {
    const { cluster, config } = prepared;
    test(
      title(
        "a master killed under load while its replica is promoted: its slots answer 503, then 200; no acknowledged write is lost",
      ),
      async () => await failover(await instances(), cluster, config.keyPrefix, variant.name),
    );
  }

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
