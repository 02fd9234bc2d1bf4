// `install --target-imgref`: the image an installed machine follows for updates when it reaches the
// registry by another name than the installer did (a build host's 127.0.0.1:5000 is the machine's
// 10.0.2.100). Pure: the two references as typed in, the one to record out.
import { isDockerName, parseImageRef } from "./transport.ts";

const EXPECTED = "expected docker://NAME, oci:PATH[:TAG], oci-archive:PATH, docker-archive:PATH or containers-storage:NAME";

/**
 * The reference to record as the deployment's oci.reference, in the syntax stage records (paths
 * absolute). Only an image source has an image to track: a tree from dir: or tar: records no
 * reference, so a target given with one would be dropped without a word.
 */
export function trackedReference(source: string, target: string, cwd = process.cwd()): string {
  if (!parseImageRef(source, cwd)) {
    throw new Error(`--target-imgref ${target}: the source ${source} is not an image, so the installed system has no image to track (use an image source such as docker://NAME or oci:PATH)`);
  }
  let ref;
  try {
    ref = parseImageRef(target, cwd);
  } catch (e) {
    throw new Error(`--target-imgref: ${(e as Error).message}`);
  }
  if (!ref) throw new Error(`--target-imgref ${target}: not an image reference (${EXPECTED})`);
  if (ref.transport === "docker" && !isDockerName(ref.ref.slice("docker://".length))) {
    throw new Error(`--target-imgref ${target}: not a valid image name (expected docker://[HOST[:PORT]/]PATH[:TAG][@DIGEST], PATH in lowercase)`);
  }
  return ref.ref;
}
