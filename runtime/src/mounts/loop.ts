// Loop devices set up with ioctls, for kernels that refuse a file as a mount source (EROFS before
// 6.12, and squashfs always). LOOP_CTL_GET_FREE picks a free device; LOOP_CONFIGURE (5.8+) binds
// the image read-only with autoclear in one call, so the device frees itself when the filesystem
// on it is unmounted — there is nothing for unmountTree to detach afterwards.
//
// system/libc.ts does not export a raw ioctl, so this file opens libc itself; it belongs in
// libc.ts (as `ioctl(fd, request, arg)`) once that file's owner takes it.
import { closeSync, openSync, constants } from "node:fs";
import { isBun, SysError } from "../system/libc.ts";

const LOOP_CTL_GET_FREE = 0x4c82n;
const LOOP_CONFIGURE = 0x4c0an;
const LO_FLAGS_READ_ONLY = 1;
const LO_FLAGS_AUTOCLEAR = 4;
/** struct loop_config: fd u32, block_size u32, loop_info64 (232 bytes), 8 × u64 reserved. */
const LOOP_CONFIG_SIZE = 304;
const INFO_OFFSET = 8;
/** loop_info64: 5 × u64, lo_number, lo_encrypt_type, lo_encrypt_key_size, then lo_flags. */
const LO_FLAGS_OFFSET = INFO_OFFSET + 52;
const LO_FILE_NAME_OFFSET = INFO_OFFSET + 56;
const LO_NAME_SIZE = 64;
const EBUSY = 16;
const ATTEMPTS = 8;

let ffi: { ioctl: (fd: number, req: bigint, arg: any) => number; errno: () => number; ptr: (b: Buffer) => any } | undefined;

function sys() {
  if (ffi) return ffi;
  if (!isBun) throw new Error("loop devices need the Bun runtime (bun:ffi)");
  const spec = "bun:ffi";
  const f = (globalThis as any).require?.(spec) ?? require(spec);
  const lib = f.dlopen("libc.so.6", {
    ioctl: { args: [f.FFIType.i32, f.FFIType.u64, f.FFIType.ptr], returns: f.FFIType.i32 },
    __errno_location: { args: [], returns: f.FFIType.ptr },
  });
  ffi = {
    ioctl: lib.symbols.ioctl,
    errno: () => f.read.i32(lib.symbols.__errno_location(), 0),
    ptr: f.ptr,
  };
  return ffi;
}

function ioctlOrThrow(fd: number, req: bigint, arg: Buffer | null, op: string): number {
  const s = sys();
  const r = s.ioctl(fd, req, arg ? s.ptr(arg) : null);
  if (r < 0) {
    const e = s.errno();
    throw new SysError(op, e, e === EBUSY ? "EBUSY" : `errno ${e}`, `ioctl failed`);
  }
  return r;
}

/**
 * Attaches `image` read-only to a free loop device and returns the device path with an open fd
 * on it. The caller mounts the device, then calls release(): with autoclear, the device is freed
 * when its last user (the mount, or this fd if the mount failed) goes away.
 */
export function attachLoop(image: string): { device: string; release: () => void } {
  const backing = openSync(image, constants.O_RDONLY);
  try {
    const ctl = openSync("/dev/loop-control", constants.O_RDWR);
    try {
      for (let attempt = 0; ; attempt++) {
        const n = ioctlOrThrow(ctl, LOOP_CTL_GET_FREE, null, "LOOP_CTL_GET_FREE on /dev/loop-control");
        const device = `/dev/loop${n}`;
        const fd = openSync(device, constants.O_RDONLY);
        const cfg = Buffer.alloc(LOOP_CONFIG_SIZE);
        cfg.writeUInt32LE(backing, 0);
        cfg.writeUInt32LE(LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR, LO_FLAGS_OFFSET);
        Buffer.from(image).subarray(0, LO_NAME_SIZE - 1).copy(cfg, LO_FILE_NAME_OFFSET);
        try {
          ioctlOrThrow(fd, LOOP_CONFIGURE, cfg, `LOOP_CONFIGURE ${device} with ${image}`);
        } catch (e) {
          closeSync(fd);
          // Another process took the device between GET_FREE and CONFIGURE: ask again.
          if ((e as SysError).errno === EBUSY && attempt < ATTEMPTS) continue;
          throw e;
        }
        return { device, release: () => closeSync(fd) };
      }
    } finally {
      closeSync(ctl);
    }
  } finally {
    // The loop device holds its own reference to the backing file.
    closeSync(backing);
  }
}
