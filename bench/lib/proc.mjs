// Process plumbing for the harness: free ports, CPU pinning, /proc accounting, servers that announce
// readiness, and stopping only the processes this harness started (by pid).
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import process from "node:process";

export const CLK_TCK = (() => {
  const out = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const value = Number(out.stdout?.trim());
  return Number.isFinite(value) && value > 0 ? value : 100;
})();

export function which(command) {
  const out = spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" });
  return out.status === 0 ? out.stdout.trim() : undefined;
}

/** A port the kernel just handed out; never 6379, which belongs to the system Redis. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => (port === 6379 ? freePort().then(resolve, reject) : resolve(port)));
    });
  });
}

/**
 * Core pinning: the server gets core 0 to itself, the load generator (and Redis, which is part of
 * the client side of the measurement) share the last core. Only with two or more cores and taskset.
 */
export function pinning(cores, enabled) {
  const taskset = which("taskset");
  if (!enabled || !taskset || cores < 2) {
    return { server: [], client: [], note: enabled ? "no pinning (needs taskset and 2+ cores)" : "off" };
  }
  const probe = spawnSync(taskset, ["-c", "0", "true"]);
  if (probe.status !== 0) return { server: [], client: [], note: "no pinning (taskset refused)" };
  const last = cores - 1;
  return {
    server: [taskset, "-c", "0"],
    client: [taskset, "-c", String(last)],
    note: `server on core 0, load generator and Redis on core ${last}`,
  };
}

/** utime + stime of every thread of the process, in clock ticks. */
export function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc(5); index 0 here is field 3.
  return Number(fields[11]) + Number(fields[12]);
}

/** Resident set size in bytes. */
export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

/**
 * Starts a server and resolves once it prints `READY <port>`. A server that prints `SKIP <why>` (or
 * exits first) resolves as skipped instead of failing the run.
 */
export function startServer({ command, args, env, cwd, prefix = [], timeoutMs = 60_000 }) {
  const argv = [...prefix, command, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  return new Promise((resolve) => {
    let settled = false;
    let announced = false;
    const finish = (result) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => {
      stop(child);
      finish({ ok: false, reason: `no READY within ${timeoutMs / 1000} s`, stderr });
    }, timeoutMs);
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const ready = /^READY (\d+)$/m.exec(stdout);
      const skip = /^SKIP (.*)$/m.exec(stdout);
      if (ready && !announced) {
        announced = true;
        const port = Number(ready[1]);
        // Some servers (Oak) announce before the socket accepts: wait until it does.
        waitForPort(port, 10_000).then(
          () => finish({ ok: true, child, pid: child.pid, port, stderr: () => stderr }),
          () =>
            finish({ ok: false, reason: `announced port ${port} but never accepted a connection`, stderr }),
        );
      } else if (skip) {
        finish({ ok: false, skipped: true, reason: skip[1], stderr });
      }
    });
    child.on("exit", (code, signal) => {
      finish({ ok: false, reason: `exited (${signal ?? code}) before READY`, stderr });
    });
  });
}

function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = connect({ host: "127.0.0.1", port });
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error("port closed"));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** SIGTERM, then SIGKILL after a grace period; resolves when the process is gone. */
export function stop(child, graceMs = 10_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    // A server paused by the HTTP phase (SIGSTOP) would only see SIGTERM once continued.
    child.kill("SIGCONT");
    child.kill("SIGTERM");
  });
}

/** Runs a command to completion, collecting its output. */
export function run(argv, { cwd, env, input, timeoutMs = 30 * 60_000, echo = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      if (echo) process.stderr.write(chunk);
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      if (echo) process.stderr.write(chunk);
    });
    if (input !== undefined) child.stdin.end(input);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout, stderr: stderr + String(error) });
    });
  });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
