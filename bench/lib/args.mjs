// The `--name=value` flags of the bench's small scripts (bench/instructions.mjs, bench/deno_core_ab.mjs):
// an object of name → value, a bare `--name` being "true". bench/run.mjs, with many options to check, has its
// own parser.

/** @param {string[]} argv the arguments after the script, e.g. `process.argv.slice(2)` */
export function flagArgs(argv) {
  return Object.fromEntries(
    argv.map((arg) => {
      const [name, value] = arg.replace(/^--/, "").split("=");
      return [name, value ?? "true"];
    }),
  );
}
