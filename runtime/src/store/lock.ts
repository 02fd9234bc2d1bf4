// One writer at a time per store. flock(2) on particle/lock: the kernel drops it when the holder dies,
// so a crash never leaves a stale lock. The holder writes who it is into the file so a waiting
// command can say whom it waits for. A command that holds the lock may take it again (stage, then
// make bootable): flock locks belong to an open file description, so a second open() in the same
// process would wait for itself; the nested acquire only counts instead.
import { resolve } from "node:path";
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync, constants } from "node:fs";
import { flock } from "../system/libc.ts";

export interface StoreLock {
  release(): void;
}

const held = new Map<string, { fd: number; depth: number }>();

export function acquireLock(lockPath: string, what: string, log: (msg: string) => void, wait = true): StoreLock {
  const key = resolve(lockPath);
  const mine = held.get(key);
  if (mine) {
    mine.depth++;
    let released = false;
    return { release() { if (!released) { released = true; mine.depth--; } } };
  }
  const fd = openSync(lockPath, constants.O_RDWR | constants.O_CREAT, 0o644);
  if (!flock(fd, false, lockPath)) {
    let holder = "";
    try { holder = readFileSync(lockPath, "utf8").trim(); } catch { /* racing writer */ }
    if (!wait) {
      closeSync(fd);
      throw new Error(`the store is locked by another particle command${holder ? ` (${holder})` : ""}: ${lockPath}`);
    }
    log(`waiting for the store lock held by ${holder || "another particle command"}`);
    flock(fd, true, lockPath);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `pid ${process.pid}: particle ${what}\n`, 0);
  const entry = { fd, depth: 1 };
  held.set(key, entry);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      // Nested holders may still be inside: the outermost release is the one that unlocks.
      if (--entry.depth > 0) return;
      held.delete(key);
      try { ftruncateSync(fd, 0); } catch { /* best effort: the lock itself is what matters */ }
      closeSync(fd);
    },
  };
}
