// A zod schema built on first use. particle-boot's start-up is benchmarked against a bare Bun
// program, and constructing object/union schemas at module load costs milliseconds (far more
// under QEMU TCG) — for schemas the boot path only needs as types. The type is still the schema's:
// `type X = z.infer<ReturnType<typeof xSchema>>`.
export function lazySchema<T>(build: () => T): () => T {
  let schema: T | undefined;
  return () => (schema ??= build());
}
