'use strict';
/**
 * A Kosmos recommender plugin in Node.js: serves kosmos.v1.RecommenderPluginService.
 *
 *   node server.js --port 50071 [--host 0.0.0.0] [--proto ../../proto]
 *
 * The first line on stdout is "node-example plugin listening on HOST:PORT" (--port 0 picks a
 * free port; tests read it from that line). Logs go to stderr. SIGTERM turns health
 * NOT_SERVING, lets calls in flight finish (at most 5 s) and exits 0.
 *
 * The gRPC plumbing lives here; the model lives in recommender.js. The contract, in short:
 * - One model per shop. Every call names its shop (`shops/{shop}`; '' is the default shop), and
 *   a shop's calls must only ever see that shop's model.
 * - Fit streams the shop's data in chunks (the shop on the first); build a new model and swap it
 *   in for that shop only when the stream ends, so requests never see half a model and a failed
 *   fit keeps the old one.
 * - Before a shop's first Fit, its Recommend/SimilarItems/Explain/PartialFit answer
 *   FAILED_PRECONDITION.
 * - A call outside your capabilities answers UNIMPLEMENTED.
 * - The recommendation service calls with a deadline (250 ms by default) and skips a plugin
 *   that errors or runs late, so answer fast and let the next recommender fill in.
 */

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { CoOccurrence, InvalidArgument, NotFitted } = require('./recommender');

const NAME = 'node-example';
const SERVICE = 'kosmos.v1.RecommenderPluginService';
const GRACE_MS = 5000;
const CAPABILITIES = { cold_start: false, partial_fit: true, explain: true };

// keepCase: field names as in the .proto (customer_id); defaults: absent fields read as ''/[]/0.
const LOADER = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function usage() {
  return 'usage: node server.js [--port N] [--host HOST] [--proto DIR]\n' +
    '  --port   port to listen on; 0 picks a free one (default 50071)\n' +
    '  --host   address to bind (default 127.0.0.1; 0.0.0.0 in a container)\n' +
    '  --proto  directory holding kosmos/v1/*.proto (default $KOSMOS_PROTO_DIR or ../../proto)';
}

function parseArgs(argv) {
  const options = {
    port: 50071,
    host: '127.0.0.1',
    proto: process.env.KOSMOS_PROTO_DIR || path.resolve(__dirname, '..', '..', 'proto'),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--help' || flag === '-h') {
      console.log(usage());
      process.exit(0);
    }
    if (value === undefined || !['--port', '--host', '--proto'].includes(flag)) {
      console.error(`${NAME}: bad argument ${flag}\n${usage()}`);
      process.exit(2);
    }
    options[flag.slice(2)] = flag === '--port' ? Number(value) : value;
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    console.error(`${NAME}: --port must be 0-65535`);
    process.exit(2);
  }
  return options;
}

function loadServices(protoDir) {
  const plugin = protoLoader.loadSync('kosmos/v1/recommender_plugin_service.proto', {
    ...LOADER,
    includeDirs: [protoDir],
  });
  const health = protoLoader.loadSync('grpc/health/v1/health.proto', {
    ...LOADER,
    includeDirs: [path.join(__dirname, 'proto')],
  });
  return {
    Plugin: grpc.loadPackageDefinition(plugin).kosmos.v1.RecommenderPluginService,
    Health: grpc.loadPackageDefinition(health).grpc.health.v1.Health,
  };
}

/** An exception → the gRPC status the contract asks for; anything unexpected is INTERNAL. */
function toStatus(err) {
  if (err instanceof NotFitted) return { code: grpc.status.FAILED_PRECONDITION, details: err.message };
  if (err instanceof InvalidArgument) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  console.error(`${NAME}: internal error:`, err);
  return { code: grpc.status.INTERNAL, details: 'internal error' }; // No stack traces on the wire.
}

function unary(handler) {
  return (call, callback) => {
    try {
      callback(null, handler(call.request));
    } catch (err) {
      callback(toStatus(err));
    }
  };
}

function positiveK(k) {
  if (!(k >= 1)) throw new InvalidArgument('k', 'must be at least 1');
  return k;
}

/** RecommenderPluginService over one CoOccurrence model per shop, each swapped whole by a Fit. */
function pluginService() {
  const models = new Map(); // request's shop ('shops/{shop}', '' the default) → its model
  const fitted = (shop) => {
    const model = models.get(shop);
    if (model === undefined) throw new NotFitted(`${NAME} has not been fitted for shop '${shop}'`);
    return model;
  };
  return {
    GetCapabilities: unary(() => ({ capabilities: CAPABILITIES })),

    Fit(call, callback) {
      const next = new CoOccurrence();
      let shop = null; // from the first chunk
      let failed = null;
      call.on('data', (chunk) => {
        if (shop === null) shop = chunk.shop;
        if (failed) return;
        try {
          for (const id of chunk.item_ids) next.item(id); // the catalog first: stable numbering
          for (const i of chunk.interactions) next.add(i.customer_id, i.item_id, i.weight);
        } catch (err) {
          failed = err;
        }
      });
      call.on('end', () => {
        if (failed) return callback(toStatus(failed));
        models.set(shop || '', next); // No chunk at all: an empty model for the default shop.
        callback(null, {});
      });
      call.on('error', () => {}); // Cancelled or past its deadline: the old model keeps serving.
    },

    PartialFit: unary((request) => {
      const m = fitted(request.shop);
      for (const i of request.interactions) m.add(i.customer_id, i.item_id, i.weight);
      return {};
    }),

    Recommend: unary((request) => {
      if (!request.customer_id) throw new InvalidArgument('customer_id', 'is required');
      const k = positiveK(request.k);
      const items = fitted(request.shop).recommend({
        customerId: request.customer_id,
        k,
        exclude: request.exclude_item_ids,
        filterAlreadySeen: request.filter_already_seen,
        recent: request.recent_interactions,
      });
      return { items };
    }),

    SimilarItems: unary((request) => {
      if (!request.item_id) throw new InvalidArgument('item_id', 'is required');
      const k = positiveK(request.k);
      return { items: fitted(request.shop).similarItems({ itemId: request.item_id, k, exclude: request.exclude_item_ids }) };
    }),

    Explain: unary((request) => ({
      contributions: fitted(request.shop).explain({
        customerId: request.customer_id,
        itemId: request.item_id,
        recent: request.recent_interactions,
      }),
    })),
  };
}

/** grpc.health.v1.Health: what Kubernetes probes and grpcurl ask. */
function healthService() {
  const statuses = new Map([['', 'SERVING'], [SERVICE, 'SERVING']]);
  const watchers = new Set();
  const statusOf = (service) => statuses.get(service) || 'SERVICE_UNKNOWN';
  return {
    handlers: {
      Check(call, callback) {
        if (!statuses.has(call.request.service)) {
          return callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        }
        callback(null, { status: statuses.get(call.request.service) });
      },
      Watch(call) {
        const watcher = { call, last: statusOf(call.request.service) };
        call.write({ status: watcher.last });
        watchers.add(watcher);
        call.on('cancelled', () => watchers.delete(watcher));
      },
    },
    shutDown() {
      for (const name of statuses.keys()) statuses.set(name, 'NOT_SERVING');
      for (const { call } of watchers) {
        call.write({ status: 'NOT_SERVING' });
        call.end(); // Open watches would hold the graceful shutdown forever.
      }
      watchers.clear();
    },
  };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const { Plugin, Health } = loadServices(options.proto);
  const server = new grpc.Server();
  const health = healthService();
  server.addService(Plugin.service, pluginService());
  server.addService(Health.service, health.handlers);
  const address = `${options.host}:${options.port}`;
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`${NAME}: cannot listen on ${address}: ${err.message}`);
      process.exit(2);
    }
    console.log(`${NAME} plugin listening on ${options.host}:${port}`);
  });
  const stop = (signal) => {
    console.error(`${NAME}: received ${signal}, shutting down`);
    health.shutDown();
    setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, GRACE_MS).unref();
    server.tryShutdown(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
