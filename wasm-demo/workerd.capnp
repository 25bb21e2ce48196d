# The edge handler in workerd, Cloudflare's open-source Workers runtime (npm `workerd`):
#
#   FERRY_RELAY_USERS="$(node wasm-demo/hash-password.mjs alice)" FERRY_RELAY_ALLOW='127.0.0.1:5000 ghcr.io' \
#     node_modules/@cloudflare/workerd-linux-64/bin/workerd serve wasm-demo/workerd.capnp --experimental \
#     [--socket-addr http=127.0.0.1:PORT]
#
# Build web/pkg first (`just wasm`). Module names resolve relative to the importing module, so
# handler.mjs's `../web/pkg/ferry_wasm.js` is the module named web/pkg/ferry_wasm.js here.
# RELAY_USERS (the relay's own users, a secret: on Cloudflare `wrangler secret put RELAY_USERS`) and RELAY_ALLOW turn
# the job routes on (/jobs); without them they answer 404.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "ferry", worker = .ferryWorker),
    # Registries on loopback and private networks are reachable only because this says so;
    # the handler's RELAY_ALLOW then names which of them a job may reach.
    (name = "registries", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8788", http = (), service = "ferry")],
);

const ferryWorker :Workerd.Worker = (
  modules = [
    (name = "wasm-demo/worker.mjs", esModule = embed "worker.mjs"),
    (name = "wasm-demo/handler.mjs", esModule = embed "handler.mjs"),
    (name = "wasm-demo/jobs.mjs", esModule = embed "jobs.mjs"),
    (name = "wasm-demo/users.mjs", esModule = embed "users.mjs"),
    (name = "web/failure.js", esModule = embed "../web/failure.js"),
    (name = "web/pkg/ferry_wasm.js", esModule = embed "../web/pkg/ferry_wasm.js"),
    (name = "web/pkg/ferry_wasm_bg.wasm", wasm = embed "../web/pkg/ferry_wasm_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
  bindings = [
    (name = "RELAY_USERS", fromEnvironment = "FERRY_RELAY_USERS"),
    (name = "RELAY_ALLOW", fromEnvironment = "FERRY_RELAY_ALLOW"),
  ],
  globalOutbound = "registries",
);
