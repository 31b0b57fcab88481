/**
 * Test helper: another process that takes a lock on a SQLite file and holds it
 * for a while, as a second app, a migration or a backup tool would. The process
 * is the runtime running the tests (Node's own binary, or `deno eval`) with
 * `node:sqlite`, so it needs no other Node on the `PATH` (CI's is older than
 * the ones it tests) and no native package.
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";

/** A lock another process holds. */
export interface HeldLock {
  /** Settles when the process has let the lock go (rolled back, closed) and ended. */
  released: Promise<void>;
  /** Ends the process at once, lock and all. */
  kill(): void;
}

const deno = (globalThis as unknown as { Deno?: { execPath(): string } }).Deno;

/**
 * Starts a process that opens `path`, runs `BEGIN <begin>` and holds that
 * lock for `holdMs` before it rolls back. Resolves once the lock is taken;
 * rejects if the process ends before.
 */
export function holdSqliteLock(
  path: string,
  begin: "IMMEDIATE" | "EXCLUSIVE",
  holdMs: number,
): Promise<HeldLock> {
  // node:sqlite waits 0 ms for a lock by default: wait as an app's connection would, in case the store under
  // test is writing when this one begins.
  const body = `const db = new DatabaseSync(${JSON.stringify(path)}); db.exec("PRAGMA busy_timeout = 5000");
    db.exec("BEGIN ${begin}"); console.log("locked");
    setTimeout(() => { db.exec("ROLLBACK"); db.close(); }, ${holdMs});`;
  const [command, args] = deno === undefined
    ? [process.execPath, ["-e", `const { DatabaseSync } = require("node:sqlite"); ${body}`]]
    : [deno.execPath(), ["eval", `import { DatabaseSync } from "node:sqlite"; ${body}`]];
  // Node 22's node:sqlite warns that it is experimental, on stderr: not the test's output.
  const env = { ...process.env, NODE_NO_WARNINGS: "1" };
  const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "inherit"] });
  const released = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.stdout.on("data", (chunk) => {
      if (String(chunk).includes("locked")) resolve({ released, kill: () => child.kill() });
    });
    child.on("close", (code) => reject(new Error(`the locking process ended first (${code})`)));
  });
}
