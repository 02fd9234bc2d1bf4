// An HTTP proxy on 127.0.0.1 in front of a registry that counts what the registry served: the bytes
// of every response body, by request. The download benchmarks and the pull-through cache test read
// "what did this update cost" from it, rather than from what the client says it fetched. It can also
// play a registry that goes away in the middle of a download (`cutAfter`).
import { createServer, request, type IncomingMessage, type Server } from "node:http";

export interface Served {
  method: string;
  /** Path and query, as the client sent them. */
  url: string;
  status: number;
  /** Response body bytes (what crossed the wire after the headers). */
  bytes: number;
}

export interface CountingProxy {
  /** host:port clients use instead of the registry's. */
  host: string;
  /** Every response completed since start (or the last reset), in completion order. */
  served: Served[];
  /** Body bytes served since start (or the last reset). */
  bytes: () => number;
  /** Bytes of blob downloads only (GET …/blobs/sha256:…), since start or the last reset. */
  blobBytes: () => number;
  reset: () => void;
  /**
   * The registry goes away during the next response whose URL matches: after `bytes` of its body
   * (and once `when()` holds, so the test decides what completed first) the connection drops, and
   * every later request is cut too, until `restore()`.
   */
  cutAfter: (match: (url: string) => boolean, bytes: number, when?: () => boolean) => void;
  /** Whether the cut has happened. */
  isGone: () => boolean;
  restore: () => void;
  stop: () => Promise<void>;
}

interface Cut {
  match: (url: string) => boolean;
  bytes: number;
  when: () => boolean;
}

export const isBlobGet = (s: Served): boolean => s.method === "GET" && /\/blobs\/sha256:[0-9a-f]{64}/.test(s.url);

export function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const [upHost, upPort] = upstream.split(":") as [string, string];
  let served: Served[] = [];
  let cut: Cut | undefined;
  let gone = false;
  const server: Server = createServer((req, res) => {
    if (gone) {
      req.socket.destroy();
      return;
    }
    const cutHere = cut && cut.match(req.url ?? "") ? cut : undefined;
    const up = request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: { ...req.headers, host: upstream } }, (ur: IncomingMessage) => {
      // Locations the registry hands out name itself; the client must keep coming through here.
      const headers = { ...ur.headers };
      if (typeof headers.location === "string") headers.location = headers.location.replace(`//${upstream}/`, `//${proxyHost}/`);
      res.writeHead(ur.statusCode ?? 502, headers);
      const entry: Served = { method: req.method ?? "", url: req.url ?? "", status: ur.statusCode ?? 0, bytes: 0 };
      ur.on("data", (c: Buffer) => {
        entry.bytes += c.length;
        if (!cutHere || entry.bytes < cutHere.bytes) return;
        ur.pause();
        ur.unpipe(res);
        const drop = () => {
          if (!cutHere.when()) return void setTimeout(drop, 20);
          gone = true;
          cut = undefined;
          res.destroy();
          up.destroy();
        };
        drop();
      });
      ur.on("end", () => served.push(entry));
      ur.pipe(res);
    });
    up.on("error", (e) => { res.writeHead(502); res.end(`counting proxy: ${upstream}: ${e.message}`); });
    req.pipe(up);
  });
  let proxyHost = "";
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      proxyHost = `127.0.0.1:${(server.address() as { port: number }).port}`;
      resolve({
        host: proxyHost,
        get served() { return served; },
        bytes: () => served.reduce((n, s) => n + s.bytes, 0),
        blobBytes: () => served.filter(isBlobGet).reduce((n, s) => n + s.bytes, 0),
        reset: () => { served = []; },
        cutAfter: (match, bytes, when = () => true) => { cut = { match, bytes, when }; },
        isGone: () => gone,
        restore: () => { cut = undefined; gone = false; },
        stop: () => new Promise<void>((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}
