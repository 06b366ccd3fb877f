// BullMQ, the Node peer of the benchmark: the same operations as the Python peers (pb_*.py).
//
//   node pb_bullmq.cjs <op> <n> [start_at]    ops: caps, enqueue, bulk, latency, dag, delayed, worker
//
// Every op but `worker` prints one JSON line, as peers/driver.py does for the Python peers; `worker <c>` runs
// one BullMQ Worker at concurrency <c> until SIGTERM. bench/run.py installs bullmq (bench/node/package.json,
// pinned by its package-lock.json) into bench/.node and the harness sets NODE_PATH to its node_modules.
// Connection: PB_URL, else redis://127.0.0.1:6379/<PB_DB>; keys of the done lists: PB_KEYS (as common.py);
// BullMQ's own key prefix: PB_BULL_PREFIX (default "bull"). One queue, "pb"; the job's name picks the body.
// Defaults everywhere (jobs keep their result: removeOnComplete is off, as every peer persists results).
"use strict";

const { Queue, Worker, FlowProducer } = require("bullmq");
const IORedis = require("ioredis");
const { performance } = require("node:perf_hooks");

const VERSION = require("bullmq/package.json").version;
const URL_ = process.env.PB_URL || `redis://127.0.0.1:6379/${process.env.PB_DB || "10"}`;
const KEYS = process.env.PB_KEYS || "pb";
const DONE_KEY = `${KEYS}:done`;
const DAG_KEY = `${KEYS}:dagdone`;
const LATE_KEY = `${KEYS}:late`;
const PREFIX = process.env.PB_BULL_PREFIX || "bull";
const QUEUE = "pb";
const CONCURRENCY = Number(process.env.PB_BULLMQ_CONCURRENCY || "100");

function connection() {
  // redis://host:port/db or unix:///path/redis.sock?db=N (the test suite's private server)
  const u = new URL(URL_);
  // BullMQ requires maxRetriesPerRequest: null for the blocking connections of a Worker
  const opts = { maxRetriesPerRequest: null };
  if (u.password) opts.password = decodeURIComponent(u.password);
  if (u.protocol === "unix:") {
    return { ...opts, path: decodeURIComponent(u.pathname), db: Number(u.searchParams.get("db") || "0") };
  }
  const db = Number((u.pathname || "/0").slice(1) || "0");
  return { ...opts, host: u.hostname, port: Number(u.port || "6379"), db };
}

const redis = () => new IORedis(connection());
// wall-clock ms: Date.now(), as BullMQ itself times delays (performance.timeOrigin + performance.now() is not
// the wall clock: each process fixes its origin at start, and two processes' origins differ by ms)
const wallMs = () => Date.now();
const now = () => performance.now() / 1000.0; // seconds, monotonic
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const queue = () => new Queue(QUEUE, { connection: connection(), prefix: PREFIX });

async function barrier(startAt) {
  // several producers started together (scaling figure): wait for the common start time
  if (startAt) await sleep(Math.max(0, startAt * 1000 - Date.now()));
}

// ---- the worker: one process, one Worker at concurrency CONCURRENCY -------------------------------------
async function worker(concurrency) {
  const r = redis(); // one client per process for the task bodies, as the Python peers
  const flow = new FlowProducer({ connection: connection(), prefix: PREFIX });
  const bodies = {
    noop: async (job) => {
      await r.rpush(DONE_KEY, job.data.x);
      return job.data.x;
    },
    late: async (job) => {
      await r.rpush(LATE_KEY, `${job.data.x} ${wallMs()}`);
      return null;
    },
    join: async () => {
      await r.rpush(DAG_KEY, 1);
      return 1;
    },
    // the root job fans out itself, as huey's and dramatiq's do: one FlowProducer tree, the join as the
    // parent of the k children (BullMQ runs a parent once all its children are done)
    root: async (job) => {
      const children = [];
      for (let i = 1; i <= job.data.k; i++) children.push({ name: "noop", queueName: QUEUE, data: { x: i } });
      await flow.add({ name: "join", queueName: QUEUE, data: {}, children });
      return null;
    },
  };
  const w = new Worker(QUEUE, (job) => bodies[job.name](job), {
    connection: connection(),
    prefix: PREFIX,
    concurrency,
  });
  w.on("failed", (job, err) => console.error(`job ${job && job.id} failed: ${err}`));
  const stop = async () => {
    await w.close();
    await flow.close();
    r.disconnect();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await w.waitUntilReady();
}

// ---- producer ops ----------------------------------------------------------------------------------------
async function enqueue(q, n) {
  const t0 = now();
  for (let i = 0; i < n; i++) await q.add("noop", { x: i });
  return now() - t0;
}

async function bulk(q, n) {
  const jobs = [];
  for (let i = 0; i < n; i++) jobs.push({ name: "noop", data: { x: i } });
  const t0 = now();
  await q.addBulk(jobs);
  return now() - t0;
}

async function latency(q, n, warmup = 20, timeout = 10) {
  // submit one, BLPOP its completion on a separate connection, next (common.latency_loop)
  const r = redis();
  await r.del(DONE_KEY);
  const out = [];
  for (let i = 0; i < n + warmup; i++) {
    const t0 = performance.now();
    await q.add("noop", { x: i });
    const got = await r.blpop(DONE_KEY, timeout);
    const t1 = performance.now();
    if (got === null) throw new Error(`latency job ${i} not completed within ${timeout}s`);
    if (i >= warmup) out.push(t1 - t0);
  }
  r.disconnect();
  return out;
}

async function dag(q, k) {
  const r = redis();
  await r.del(DAG_KEY);
  const t0 = now();
  await q.add("root", { k });
  const got = await r.blpop(DAG_KEY, 120);
  const secs = now() - t0;
  r.disconnect();
  if (got === null) throw new Error("DAG join not completed");
  return secs;
}

function delays(n) {
  // common.delays: lo..hi interleaved, rounded to 0.1 s
  const lo = Number(process.env.PB_DELAY_LO || "0.5");
  const hi = Number(process.env.PB_DELAY_HI || "2.5");
  if (n <= 1) return Array(n).fill(lo);
  const step = (hi - lo) / (n - 1);
  return Array.from({ length: n }, (_, i) => Math.round((lo + step * ((i * 7919) % n)) * 10) / 10);
}

async function delayed(q, n) {
  // lateness = wall ms at the task body - (wall ms just before the submit call + delay): common.lateness_sync
  const r = redis();
  await r.del(LATE_KEY);
  const ds = delays(n);
  const due = [];
  for (let i = 0; i < n; i++) {
    due[i] = wallMs() + ds[i] * 1000;
    await q.add("late", { x: i }, { delay: Math.round(ds[i] * 1000) });
  }
  const out = [];
  const deadline = Date.now() + (Math.max(0, ...ds) + 30) * 1000;
  while (out.length < n) {
    const left = (deadline - Date.now()) / 1000;
    if (left <= 0) throw new Error(`delayed jobs: ${out.length}/${n} ran before the timeout`);
    const got = await r.blpop(LATE_KEY, Math.max(1, Math.floor(left)));
    if (got === null) continue;
    const [x, ms] = got[1].split(" ");
    out.push(Number(ms) - due[Number(x)]);
  }
  r.disconnect();
  return out;
}

function caps() {
  const script = __filename;
  const workers = {};
  for (const procs of [1, 2, 4]) {
    workers[procs] = {
      cmds: Array(procs).fill([process.execPath, script, "worker", String(CONCURRENCY)]),
      desc: `${procs}x \`node pb_bullmq.cjs worker\` (one BullMQ Worker, concurrency ${CONCURRENCY}; Node ${process.version})`,
    };
  }
  return { version: VERSION, bulk: true, dag: true, delayed: true, setup: false, workers };
}

async function main() {
  const [op, nArg, startArg] = process.argv.slice(2);
  const n = Number(nArg || "0");
  if (op === "worker") return worker(n || CONCURRENCY);
  if (op === "caps") return console.log(JSON.stringify(caps()));
  if (op === "version") return console.log(JSON.stringify({ version: VERSION }));
  const q = queue();
  await q.waitUntilReady();
  let out;
  if (op === "setup") out = {};
  else if (op === "enqueue") {
    const startAt = startArg ? Number(startArg) : null;
    await barrier(startAt);
    const secs = await enqueue(q, n);
    const end = Date.now() / 1000;
    out = { secs, end, started_late: startAt ? end - secs - startAt : 0.0 };
  } else if (op === "bulk") out = { secs: await bulk(q, n), end: Date.now() / 1000 };
  else if (op === "latency") out = { ms: await latency(q, n) };
  else if (op === "dag") out = { secs: await dag(q, n) };
  else if (op === "delayed") out = { ms: await delayed(q, n) };
  else throw new Error(`bad op ${op}`);
  await q.close();
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
