// The separate metrics listener: plain HTTP, `GET /metrics` only, bound to 127.0.0.1 by default so
// that only a local Prometheus (or node exporter relay) can scrape it without a token. Binding it
// elsewhere is an explicit configuration choice (metrics.host); see docs/operations.md.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MetricsSource {
  contentType(): string;
  text(): Promise<string>;
}

export interface MetricsListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startMetricsListener(source: MetricsSource, host: string, port: number): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(path === '/metrics' ? 405 : 404, { 'content-type': 'text/plain' }).end(path === '/metrics' ? 'method not allowed\n' : 'not found\n');
      return;
    }
    source.text().then(
      (t) => res.writeHead(200, { 'content-type': source.contentType() }).end(t),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n'),
    );
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${h}:${a.port}/metrics`,
    port: a.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
