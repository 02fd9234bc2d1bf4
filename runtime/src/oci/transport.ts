// Image references in skopeo's syntax (containers-transports(5)). Pure: a string in, a typed
// reference out. Paths are made absolute, so a recorded reference still means the same image when
// `particle upgrade` runs from another directory.
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";

export const Transport = z.enum(["docker", "oci", "oci-archive", "docker-archive", "containers-storage"]);
export type Transport = z.infer<typeof Transport>;

export const ImageRef = z.object({
  transport: Transport,
  /** The whole reference as skopeo takes it, e.g. "docker://quay.io/x/y:tag", "oci:/srv/layout:v2". */
  ref: z.string(),
});
export type ImageRef = z.infer<typeof ImageRef>;

const PATH_TRANSPORTS: ReadonlySet<string> = new Set(["oci", "oci-archive", "docker-archive"]);

/** The reference, or undefined when `spec` names no image transport (it may be dir:/tar:). */
export function parseImageRef(spec: string, cwd = process.cwd()): ImageRef | undefined {
  if (spec.startsWith("docker://")) {
    if (spec.length === "docker://".length) throw new Error(`image ${spec}: missing the image name after docker://`);
    return { transport: "docker", ref: spec };
  }
  const m = /^([a-z-]+):(.*)$/s.exec(spec);
  if (!m) return undefined;
  const t = Transport.safeParse(m[1]);
  if (!t.success) return undefined;
  let rest = m[2]!;
  if (t.data === "docker") throw new Error(`image ${spec}: the docker transport is written docker://NAME`);
  if (rest === "") throw new Error(`image ${spec}: missing ${t.data === "containers-storage" ? "the image name" : "the path"} after "${t.data}:"`);
  if (PATH_TRANSPORTS.has(t.data) && !isAbsolute(rest)) rest = resolve(cwd, rest);
  return { transport: t.data, ref: `${t.data}:${rest}` };
}

// distribution's reference grammar (github.com/distribution/reference): [host[:port]/]path[:tag][@digest].
const HOST_PART = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const HOST = `(?:${HOST_PART}(?:\\.${HOST_PART})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?`;
const PATH_PART = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const TAG = "\\w[\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const DOCKER_NAME = new RegExp(`^(?:${HOST}/)?${PATH_PART}(?:/${PATH_PART})*(?::${TAG})?(?:@${DIGEST})?$`);

/**
 * Whether the part after docker:// is a well-formed name. parseImageRef leaves that to skopeo, which
 * checks a source as it pulls it; a reference that is only recorded (install --target-imgref) is
 * first pulled by the installed machine's upgrade, too late to say it was mistyped.
 */
export function isDockerName(name: string): boolean {
  return DOCKER_NAME.test(name);
}
