import { main } from "./cli.ts";

process.exitCode = await main(process.argv0, process.argv.slice(2));
