// One writer at a time per store. flock(2) on particle/lock: the kernel drops it when the holder dies,
// so a crash never leaves a stale lock. The holder writes who it is into the file so a waiting
// command can say whom it waits for.
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync, constants } from "node:fs";
import { flock } from "../system/libc.ts";

export interface StoreLock {
  release(): void;
}

export function acquireLock(lockPath: string, what: string, log: (msg: string) => void, wait = true): StoreLock {
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
  return {
    release() {
      try { ftruncateSync(fd, 0); } catch { /* best effort: the lock itself is what matters */ }
      closeSync(fd);
    },
  };
}
