// node:crypto, loaded on first use. Bun's bundler hoists every `import … from "node:crypto"` to the
// top of the executable, even from modules it otherwise loads lazily, and loading it pulls in
// Node's stream machinery: about half of particle-boot's start-up (53 of 104 ms of CPU on the host,
// seconds under QEMU TCG), for a module that most boots and most commands never call.
import type * as NodeCrypto from "node:crypto";

let mod: typeof NodeCrypto | undefined;

export function nodeCrypto(): typeof NodeCrypto {
  return (mod ??= process.getBuiltinModule("node:crypto") as typeof NodeCrypto);
}
