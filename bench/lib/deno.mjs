// Where the bench finds Deno: the `deno` npm devDependency's binary (what `npm ci` installs), or its .bin link.
import { existsSync } from "node:fs";
import { join } from "node:path";

/**
 * The Deno binary under `root`'s node_modules, or `undefined` when `npm ci` has not installed it.
 * @param {string} root the repository's root
 */
export function denoBinary(root) {
  return [join(root, "node_modules", "deno", "deno"), join(root, "node_modules", ".bin", "deno")]
    .find((path) => existsSync(path));
}

/**
 * `denoBinary(root)`, or an error that says how to get it, for scripts that cannot run without Deno.
 * @param {string} root the repository's root
 */
export function requireDeno(root) {
  const deno = denoBinary(root);
  if (deno === undefined) {
    throw new Error("Deno is missing: run `npm ci` (it installs the deno devDependency)");
  }
  return deno;
}
