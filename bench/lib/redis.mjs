// The harness's own redis-server on a free loopback port, and its INFO commandstats, read over a raw
// RESP socket so counting round trips needs no client library (and adds only INFO calls, which are
// left out of the count).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, sleep, stop } from "./proc.mjs";

function command(port, args, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis ${args[0]}: no reply`));
    }, timeoutMs);
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("connect", () => {
      let out = `*${args.length}\r\n`;
      for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
      socket.write(out);
    });
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      const text = buffer.toString("utf8");
      const lineEnd = text.indexOf("\r\n");
      if (lineEnd < 0) return;
      const head = text.slice(0, lineEnd);
      let reply;
      if (head[0] === "$") {
        const length = Number(head.slice(1));
        if (length < 0) reply = null;
        else {
          if (buffer.length < lineEnd + 2 + length + 2) return;
          reply = buffer.subarray(lineEnd + 2, lineEnd + 2 + length).toString("utf8");
        }
      } else if (head[0] === "-") {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(head.slice(1)));
        return;
      } else {
        reply = head.slice(1);
      }
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    });
  });
}

/**
 * Commands clients sent, as MONITOR sees them: commands a Lua script runs inside the server (listed as
 * "[0 lua]") are not round trips, and INFO (the harness's own) is left out. Stop it to get the count.
 */
export function monitor(port) {
  const socket = connect({ host: "127.0.0.1", port });
  let text = "";
  socket.on("connect", () => socket.write("MONITOR\r\n"));
  socket.on("data", (chunk) => (text += chunk));
  socket.on("error", () => {});
  const ready = new Promise((resolve) => {
    const poll = () => (text.startsWith("+OK") ? resolve() : setTimeout(poll, 5));
    poll();
  });
  return {
    ready,
    async stop() {
      await sleep(150);
      socket.destroy();
      const commands = {};
      let total = 0;
      for (const line of text.split("\r\n")) {
        const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
        if (!match || match[1] === "lua") continue;
        const name = match[2].toLowerCase();
        if (name === "info") continue;
        commands[name] = (commands[name] ?? 0) + 1;
        total++;
      }
      return { total, commands };
    },
  };
}

/** Calls per command since the server started (or the last CONFIG RESETSTAT), INFO excluded. */
export async function commandStats(port) {
  const text = await command(port, ["INFO", "commandstats"]);
  const calls = {};
  for (const line of text.split("\r\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match && match[1] !== "info" && match[1] !== "monitor") calls[match[1]] = Number(match[2]);
  }
  return calls;
}

/** Commands per request between two snapshots: the total and each command's share. */
export function roundTrips(before, after, requests) {
  const perCommand = {};
  let total = 0;
  for (const [name, count] of Object.entries(after)) {
    const delta = count - (before[name] ?? 0);
    if (delta > 0) {
      perCommand[name] = delta / requests;
      total += delta;
    }
  }
  return { total: total / requests, perCommand };
}

export async function startRedis({ binary, prefix = [] }) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "bench-redis-"));
  const argv = [
    ...prefix,
    binary,
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    "--daemonize",
    "no",
    "--loglevel",
    "warning",
  ];
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    try {
      if ((await command(port, ["PING"], 500)) === "PONG") {
        const version = /redis_version:(\S+)/.exec(await command(port, ["INFO", "server"]))?.[1];
        return {
          port,
          pid: child.pid,
          version,
          async stop() {
            await stop(child);
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  await stop(child);
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`redis-server did not start on port ${port}: ${stderr.slice(-500)}`);
}
