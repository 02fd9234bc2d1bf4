// JSON text → a value, for every file particle reads through a zod schema (deployment.json, OCI
// index/manifest/config). A key "__proto__" is refused: JSON.parse keeps it as an own property, but
// a schema's output object cannot hold it (assigning it sets the prototype), so a label of that
// name would vanish without a word.
const PROTO = "__proto__";

export function parseJsonText(text: string, where: string): unknown {
  let proto = false;
  let v: unknown;
  try {
    v = JSON.parse(text, (k, x) => {
      if (k === PROTO) proto = true;
      return x;
    });
  } catch (e) {
    throw new Error(`${where}: not valid JSON: ${(e as Error).message}`);
  }
  if (proto) throw new Error(`${where}: a key "${PROTO}" cannot be kept (it is not an ordinary name in JavaScript)`);
  return v;
}
