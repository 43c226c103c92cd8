/** Prometheus metrics of one server (its own registry, so several servers in one process do not collide). */
import * as client from 'prom-client';

export interface ServerMetrics {
  registry: client.Registry;
  queueDepth: client.Gauge;
  queueWait: client.Histogram;
  batchSize: client.Histogram<'kind'>;
  batchTokens: client.Histogram<'kind'>;
  requestDuration: client.Histogram<'route' | 'status'>;
  errors: client.Counter<'route' | 'code'>;
  inFlight: client.Gauge;
}

export function createMetrics(): ServerMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'nla_ar_process_' });
  const registers = [registry];
  return {
    registry,
    queueDepth: new client.Gauge({ name: 'nla_ar_queue_depth', help: 'Items (explanations, texts, activations) waiting for the engine', registers }),
    queueWait: new client.Histogram({
      name: 'nla_ar_queue_wait_seconds',
      help: 'Time an item waited in the queue before its engine call started',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    batchSize: new client.Histogram({
      name: 'nla_ar_batch_size',
      help: 'Items per engine call',
      labelNames: ['kind'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    }),
    batchTokens: new client.Histogram({
      name: 'nla_ar_batch_tokens',
      help: 'Prompt tokens per engine call',
      labelNames: ['kind'],
      buckets: [16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768],
      registers,
    }),
    requestDuration: new client.Histogram({
      name: 'nla_ar_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    errors: new client.Counter({ name: 'nla_ar_errors_total', help: 'Error responses by route and code', labelNames: ['route', 'code'], registers }),
    inFlight: new client.Gauge({ name: 'nla_ar_requests_in_flight', help: 'HTTP requests being handled', registers }),
  };
}
