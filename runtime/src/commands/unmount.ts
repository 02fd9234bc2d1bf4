import { unmountTree } from "../mounts/index.ts";

export default async function (args: string[]): Promise<void> {
  const done = unmountTree(args[0]!, { lazy: true });
  if (done.length === 0) throw new Error(`${args[0]}: nothing is mounted there`);
}
