// A TCP proxy on loopback that cuts streams, as a flaky network or a proxy with a short
// idle timeout does: the answer to each request `cut` picks is passed on up to
// `afterBodyBytes` bytes past its headers, then both connections are closed. It can also
// hold an answer just before a given text until the test releases it, and it records
// every request line it forwards, so a test can tell what the page asked.

import { connect, createServer } from 'node:net';

const REQUEST_LINE = /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP\/1\.[01]\r\n/;

/**
 * Listens on 127.0.0.1 and forwards to `target` (`http://host:port`). `cut(requestLine)`
 * picks the answers to cut; a cut connection is closed `holdMs` after its last bytes. Resolves with `{url, requests, cuts, holdAt(text), stop()}`.
 */
export async function startCuttingProxy(target, { cut, afterBodyBytes, holdMs = 300 }) {
  const { hostname, port } = new URL(target);
  const requests = [];
  const sockets = new Set();
  let cuts = 0;
  /** While set: the first answer bytes holding `text` wait there (see `holdAt`). */
  let gate = null;
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    for (const s of [client, upstream]) s.on('close', () => sockets.delete(s));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    /** The answer being forwarded: whether to cut it, and its bytes so far. */
    let answer = null;
    client.on('data', (chunk) => {
      // A keep-alive connection carries requests one after another; each starts a packet.
      const line = REQUEST_LINE.exec(chunk.toString('latin1'));
      if (line) {
        requests.push(`${line[1]} ${line[2]}`);
        answer = { cut: cut(`${line[1]} ${line[2]}`), head: '', body: 0 };
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (gate && !gate.client && !answer?.cut) {
        const at = chunk.indexOf(gate.text);
        if (at >= 0) {
          // Everything before the text goes on; the rest waits for release().
          client.write(chunk.subarray(0, at));
          upstream.pause();
          gate.client = client;
          gate.rest = chunk.subarray(at);
          gate.upstream = upstream;
          gate.reached();
          return;
        }
      }
      if (!answer?.cut) return client.write(chunk);
      let start = 0;
      if (answer.body === 0 && !answer.head.endsWith('\r\n\r\n')) {
        const text = chunk.toString('latin1');
        const end = (answer.head + text).indexOf('\r\n\r\n');
        if (end < 0) {
          answer.head += text;
          return client.write(chunk);
        }
        start = end + 4 - answer.head.length;
        answer.head = `${answer.head}${text.slice(0, start)}`;
      }
      const room = afterBodyBytes - answer.body;
      const body = chunk.length - start;
      if (body < room) {
        answer.body += body;
        return client.write(chunk);
      }
      cuts += 1;
      upstream.destroy();
      // The bytes passed on reach the page's reader before the connection goes, as when
      // a network drops a connection between two writes.
      client.write(chunk.subarray(0, start + room));
      setTimeout(() => client.destroy(), holdMs);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    get cuts() {
      return cuts;
    },
    /**
     * Holds the next answer that carries `text` just before it (an answer not cut); resolves
     * with `release()` once that answer reached it.
     */
    holdAt(text) {
      return new Promise((resolve) => {
        gate = {
          text,
          reached: () =>
            resolve(() => {
              const { client, rest, upstream } = gate;
              gate = null;
              client.write(rest);
              upstream.resume();
            }),
        };
      });
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
