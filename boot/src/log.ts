// Messages go to stderr (the service's journal) and to /dev/kmsg, which reaches the console even
// when the journal is not up yet — a failure must never be a silent hang.
import { closeSync, openSync, writeSync, constants } from "node:fs";

const STDERR = 2;
const KMSG_ERR = 3;
const KMSG_WARNING = 4;
const KMSG_INFO = 6;
const KMSG_DEBUG = 7;

export class Log {
  private kmsg: number | undefined;
  constructor(useKmsg: boolean) {
    if (!useKmsg) return;
    try {
      this.kmsg = openSync("/dev/kmsg", constants.O_WRONLY);
    } catch {
      /* not writable (not root, or no /dev): stderr only */
    }
  }
  private emit(level: number, msg: string): void {
    // writeSync, not process.stderr: Node-style streams cost milliseconds to set up.
    try {
      writeSync(STDERR, `particle-boot: ${msg}\n`);
    } catch {
      /* no stderr: kmsg below still has it */
    }
    if (this.kmsg === undefined) return;
    // One kmsg record per line, each tagged with the priority.
    for (const line of msg.split("\n")) {
      try {
        writeSync(this.kmsg, `<${level}>particle-boot: ${line}\n`);
      } catch {
        /* kmsg rate limits or refuses: stderr already has it */
      }
    }
  }
  info(msg: string): void { this.emit(KMSG_INFO, msg); }
  /** kmsg only, below the console's level: for records nobody should have to read at boot. */
  debug(msg: string): void {
    if (this.kmsg === undefined) return;
    try {
      writeSync(this.kmsg, `<${KMSG_DEBUG}>particle-boot: ${msg}\n`);
    } catch {
      /* rate limited: it was only for diagnosis */
    }
  }
  warn(msg: string): void { this.emit(KMSG_WARNING, `WARNING: ${msg}`); }
  error(msg: string): void { this.emit(KMSG_ERR, msg); }
  close(): void {
    if (this.kmsg !== undefined) closeSync(this.kmsg);
  }
}
