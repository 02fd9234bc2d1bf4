import { main } from "./cli.ts";

// No top-level await: --bytecode compiles to CommonJS, which has none.
void main(process.argv0, process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
