// `particle switch IMAGE`: stage an image as the next boot. The deployment records the reference,
// so once it is booted `particle upgrade` follows that image.
import { UsageError } from "../cli.ts";
import { parseImageRef } from "../oci/transport.ts";
import stageCommand from "./stage.ts";

export default async function (args: string[], opts: Record<string, any>): Promise<void> {
  const spec = args[0]!;
  if (!parseImageRef(spec)) throw new UsageError(`switch ${spec}: not an image reference (expected docker://NAME, oci:PATH[:TAG], oci-archive:PATH, docker-archive:PATH or containers-storage:NAME)`);
  await stageCommand([spec], opts);
}
