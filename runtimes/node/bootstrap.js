'use strict';
// The Node.js runtime bootstrap: loads the function's handler, then serves
// invocations on a Unix socket (frames: 4-byte big-endian length + JSON).
//
// Started as `/usr/bin/node bootstrap.js` with the environment of the
// "Runtime launch" contract (FAAS_SOCKET, FAAS_HANDLER, FAAS_TASK_ROOT, ...).
//
// Handler styles, as deployed on Lambda: async functions, functions that
// return a promise, the callback style (event, context, callback), plain
// synchronous functions returning a value, context.succeed/fail/done, and
// ES modules (.mjs, or .js under a package.json with "type": "module").
//
// Protocol (one connection at a time, requests answered in order):
//   {"id","ping":true}                          -> {"id","ok":true,"pong":true}
//   {"id","specialise":{"env":{..}}}  (stem cells only, once; see specialise())
//       -> {"id","ok":true,"specialised":true,"import_ms","init_error"}
//   {"id","event","deadline_ms","context":{..}} -> {"id","ok":true,"response":
//       {"statusCode","headers","body","isBase64Encoded"},"logs"}
//                                              or {"id","ok":false,"error":
//       {"type","message","trace"},"logs"}
// A frame over 8 MiB closes the connection; a malformed one gets a
// Runtime.BadRequest answer, then the connection is closed.

const net = require('net');
const fs = require('fs');
const path = require('path');

const FRAME_MAX = 8 * 1024 * 1024;
const env = process.env;

function envInt(name, dflt) {
  const v = parseInt(env[name], 10);
  return Number.isFinite(v) && v >= 0 ? v : dflt;
}

const LOG_MAX = envInt('FAAS_LOG_MAX', 65536);

// --- per-invocation log capture ---------------------------------------------

class LogBuffer {
  constructor(cap) {
    this.cap = cap;
    this.chunks = [];
    this.kept = 0;
    this.total = 0;
  }

  add(b) {
    this.total += b.length;
    const room = this.cap - this.kept;
    if (room <= 0) return;
    if (b.length > room) b = b.subarray(0, room);
    this.chunks.push(b);
    this.kept += b.length;
  }

  text() {
    let data = Buffer.concat(this.chunks);
    if (this.total > this.cap) {
      const marker = (keep) =>
        `[faas: log truncated, ${this.total - keep} bytes dropped]\n`;
      const nl = (keep) => (keep === 0 || data[keep - 1] === 0x0a ? '' : '\n');
      let keep = this.cap;
      for (let i = 0; i < 3; i++) {
        const want = Math.max(0, this.cap - marker(keep).length - nl(keep).length);
        if (want === keep) break;
        keep = want;
      }
      // never cut a UTF-8 sequence in two
      while (keep > 0 && keep < data.length && (data[keep] & 0xc0) === 0x80) keep--;
      data = Buffer.concat([data.subarray(0, keep),
        Buffer.from(nl(keep) + marker(keep))]);
    }
    return data.toString('utf8');
  }
}

let capture = null; // the LogBuffer of the running invocation, or null
const realErrWrite = process.stderr.write.bind(process.stderr);

function toBuffer(chunk, encoding) {
  if (Buffer.isBuffer(chunk)) return Buffer.from(chunk); // a copy: callers reuse buffers
  if (chunk instanceof Uint8Array) return Buffer.from(chunk);
  return Buffer.from(String(chunk),
    typeof encoding === 'string' && Buffer.isEncoding(encoding) ? encoding : 'utf8');
}

// Routes bytes into the invocation's logs, or to the real stderr (outside
// invocations, e.g. while the module loads: the sandbox keeps it).
function out(b) {
  if (capture) capture.add(b);
  else {
    try { realErrWrite(b); } catch (e) { /* stderr gone */ }
  }
}

function capturedWrite(chunk, encoding, cb) {
  out(toBuffer(chunk, encoding));
  if (typeof encoding === 'function') cb = encoding;
  if (typeof cb === 'function') process.nextTick(cb);
  return true;
}

process.stdout.write = capturedWrite;
process.stderr.write = capturedWrite;

// --- the handler -------------------------------------------------------------

class InitError extends Error {
  constructor(type, message, trace) {
    super(message);
    this.type = type;
    this.trace = trace || '';
  }
}

function packageType(file) {
  let dir = path.dirname(file);
  for (;;) {
    const pj = path.join(dir, 'package.json');
    let text = null;
    try { text = fs.readFileSync(pj, 'utf8'); } catch (e) { /* none here */ }
    if (text !== null) {
      try { return JSON.parse(text).type || 'commonjs'; } catch (e) { return 'commonjs'; }
    }
    const up = path.dirname(dir);
    if (up === dir) return 'commonjs';
    dir = up;
  }
}

function esImport(file) {
  const { pathToFileURL } = require('url');
  return import(pathToFileURL(file).href);
}

async function loadModule(base) {
  const exists = (f) => { try { return fs.statSync(f).isFile(); } catch (e) { return false; } };
  if (exists(base + '.mjs')) return esImport(base + '.mjs');
  if (exists(base + '.cjs')) return require(base + '.cjs');
  if (exists(base + '.js')) {
    if (packageType(base + '.js') === 'module') return esImport(base + '.js');
    try {
      return require(base + '.js');
    } catch (e) {
      if (e && e.code === 'ERR_REQUIRE_ESM') return esImport(base + '.js');
      throw e;
    }
  }
  try {
    return require(base); // a directory with index.js, or an exact file name
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(`'${base}'`)) {
      throw new Error(`Cannot find module '${path.basename(base)}' in ${path.dirname(base)}`);
    }
    throw e;
  }
}

function lookup(mod, names) {
  let v = mod;
  for (const n of names) {
    if (v === null || v === undefined) return undefined;
    v = v[n];
  }
  return v;
}

// "file.function", "dir/file.function" or "file.obj.method" (as Lambda:
// the module is everything up to the first dot after the last slash).
async function loadHandler(spec, taskRoot) {
  const slash = spec.lastIndexOf('/');
  const rest = spec.slice(slash + 1);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) {
    throw new InitError('Runtime.MalformedHandlerName',
      `Bad handler '${spec}': expected module.function`);
  }
  const modPath = spec.slice(0, slash + 1) + rest.slice(0, dot);
  const names = rest.slice(dot + 1).split('.');
  let mod;
  const exit = process.exit;
  // never exit before the socket is bound: a module calling process.exit()
  // while it loads fails to import instead
  process.exit = (code) => {
    throw new Error(`process.exit(${code === undefined ? '' : code}) called while loading`);
  };
  try {
    mod = await loadModule(path.resolve(taskRoot, modPath));
  } catch (e) {
    // (without the "Require stack:" list of paths node appends)
    const msg = e instanceof Error
      ? `${e.name}: ${String(e.message).split('\nRequire stack:')[0]}` : String(e);
    throw new InitError('Runtime.ImportModuleError',
      `Unable to import module '${modPath}': ${msg}`,
      (e && e.stack) || String(e));
  } finally {
    process.exit = exit;
  }
  let fn = lookup(mod, names);
  if (fn === undefined && mod && mod.default) fn = lookup(mod.default, names);
  if (typeof fn !== 'function') {
    throw new InitError('Runtime.HandlerNotFound',
      `${modPath}.${names.join('.')} is undefined or not exported`);
  }
  return fn;
}

// --- result mapping ----------------------------------------------------------

class MarshalError extends Error {}

function toJson(v, what) {
  let s;
  try {
    s = JSON.stringify(v);
  } catch (e) {
    throw new MarshalError(`Unable to marshal ${what}: ${e.message}`);
  }
  if (s === undefined) {
    throw new MarshalError(`Unable to marshal ${what}: a ${typeof v} is not JSON`);
  }
  return s;
}

function mapResult(res) {
  if (res === undefined) res = null;
  if (res !== null && typeof res === 'object' && !Array.isArray(res) &&
      'statusCode' in res) {
    let sc = res.statusCode;
    const n = typeof sc === 'string' && /^\s*\d+\s*$/.test(sc) ? Number(sc) : sc;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 100 || n > 599) {
      throw new MarshalError(
        `statusCode must be an integer from 100 to 599, not ${toJson(sc === undefined ? null : sc, 'statusCode')}`);
    }
    sc = n;
    const hdrs = res.headers === undefined || res.headers === null ? {} : res.headers;
    if (typeof hdrs !== 'object' || Array.isArray(hdrs)) {
      throw new MarshalError('headers must be an object');
    }
    const headers = {};
    const mv = res.multiValueHeaders;
    if (mv && typeof mv === 'object') {
      for (const k of Object.keys(mv)) {
        if (Array.isArray(mv[k])) headers[k] = mv[k].map(String).join(', ');
      }
    }
    for (const k of Object.keys(hdrs)) {
      const v = hdrs[k];
      if (v === null || v === undefined) continue;
      headers[k] = typeof v === 'string' ? v
        : typeof v === 'object' ? toJson(v, 'header') : String(v);
    }
    let body = res.body;
    if (body === undefined || body === null) body = '';
    else if (typeof body !== 'string') body = toJson(body, 'body');
    return { statusCode: sc, headers, body, isBase64Encoded: !!res.isBase64Encoded };
  }
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: toJson(res, 'result'),
    isBase64Encoded: false,
  };
}

function errorData(e, forceType) {
  if (e instanceof Error || (e && typeof e === 'object' && 'message' in e && 'stack' in e)) {
    const type = e.name || (e.constructor && e.constructor.name) || 'Error';
    const message = e.message === undefined ? '' : String(e.message);
    if (forceType) {
      return { type: forceType, message: `${type}: ${message}`, trace: String(e.stack || '') };
    }
    return { type, message, trace: String(e.stack || '') };
  }
  let message;
  try {
    message = typeof e === 'string' ? e : e === undefined ? 'undefined' : JSON.stringify(e);
  } catch (err) {
    message = String(e);
  }
  if (message === undefined) message = String(e);
  return { type: forceType || (e === null ? 'null' : typeof e), message, trace: '' };
}

// --- invocation ----------------------------------------------------------------

let handler = null;
let initError = null;
let current = null; // {fail(err, type)} while an invocation runs

function errorAnswer(id, err, logs) {
  return { id, ok: false, error: err, logs };
}

// The timers and immediates of the "nothing left pending" checks below, of
// any invocation: they are not the handler's. (One still pending from an
// earlier invocation once made a baseline look higher than what the
// handler left, and the answer came before context.succeed.)
let ownTimeouts = 0;
let ownImmediates = 0;

function resourceCounts() {
  const m = new Map();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) || 0) + 1);
  if (ownTimeouts) m.set('Timeout', (m.get('Timeout') || 0) - ownTimeouts);
  if (ownImmediates) m.set('Immediate', (m.get('Immediate') || 0) - ownImmediates);
  return m;
}

// Runs fn in an immediate (where the immediate itself is no longer listed
// as active), after delay ms when delay > 0.
function ownSoon(fn, delay) {
  const immediate = () => {
    ownImmediates++;
    setImmediate(() => { ownImmediates--; fn(); });
  };
  if (!delay) { immediate(); return; }
  ownTimeouts++;
  setTimeout(() => { ownTimeouts--; immediate(); }, delay);
}

function invoke(req) {
  return new Promise((resolve) => {
    const id = req.id === undefined ? null : req.id;
    const buf = new LogBuffer(LOG_MAX);
    if (initError) {
      if (initError.trace) buf.add(Buffer.from(initError.trace + '\n'));
      resolve(errorAnswer(id, { type: initError.type, message: initError.message,
        trace: initError.trace }, buf.text()));
      return;
    }
    const c = req.context && typeof req.context === 'object' ? req.context : {};
    let deadline = req.deadline_ms;
    if (typeof deadline !== 'number' || !Number.isFinite(deadline)) {
      deadline = Date.now() + envInt('FAAS_TIMEOUT_MS', 3000);
    }
    let done = false;
    const finish = (isErr, value, forceType) => {
      if (done) return;
      done = true;
      current = null;
      let answer;
      if (isErr) {
        const err = errorData(value, forceType);
        buf.add(Buffer.from(`[ERROR] ${err.trace || `${err.type}: ${err.message}`}\n`));
        capture = null;
        answer = errorAnswer(id, err, buf.text());
      } else {
        capture = null;
        try {
          answer = { id, ok: true, response: mapResult(value), logs: buf.text() };
        } catch (e) { // MarshalError, or a getter of the result that threw
          const message = e instanceof MarshalError ? e.message
            : `Unable to marshal the result: ${e && e.message}`;
          answer = errorAnswer(id, { type: 'Runtime.MarshalError', message,
            trace: '' }, buf.text());
        }
      }
      resolve(answer);
    };
    const str = (v, d) => (v === undefined || v === null || v === '' ? d : String(v));
    const context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: str(c.function_name, env.FAAS_FUNCTION_NAME || ''),
      functionVersion: str(c.function_version, env.FAAS_FUNCTION_VERSION || '$LATEST'),
      invokedFunctionArn: str(c.invoked_function_arn, ''),
      memoryLimitInMB: str(c.memory_limit_in_mb, env.FAAS_MEMORY_MB || '128'),
      awsRequestId: str(c.aws_request_id, id === null ? '' : String(id)),
      logGroupName: str(c.log_group_name, ''),
      logStreamName: str(c.log_stream_name, ''),
      traceId: str(c.trace_id, ''),
      traceparent: str(c.traceparent, ''),
      getRemainingTimeInMillis: () => Math.max(0, Math.floor(deadline - Date.now())),
      succeed: (r) => finish(false, r),
      fail: (e) => finish(true, e),
      done: (e, r) => (e !== undefined && e !== null ? finish(true, e) : finish(false, r)),
    };
    const callback = (e, r) =>
      (e !== undefined && e !== null ? finish(true, e) : finish(false, r));
    current = { fail: (e, type) => finish(true, e, type) };
    capture = buf;
    const baseline = resourceCounts();
    let ret;
    try {
      ret = handler(req.event === undefined ? null : req.event, context, callback);
    } catch (e) {
      finish(true, e);
      return;
    }
    if (done) return;
    if (ret !== null && ret !== undefined && typeof ret.then === 'function') {
      ret.then((v) => finish(false, v), (e) => finish(true, e));
      return;
    }
    if (ret !== undefined) {
      finish(false, ret);
      return;
    }
    // Nothing returned. A callback-style handler answers through its
    // callback, however long the work takes (it may ride on a connection
    // opened by an earlier invocation, so the event loop says nothing).
    // Any other: wait for context.succeed/fail/done or, as Lambda does,
    // answer null once the function left nothing new pending on the loop.
    if (handler.length >= 3) return;
    let delay = 0;
    const check = () => {
      if (done) return;
      const now = resourceCounts();
      for (const [k, n] of now) {
        if (n > (baseline.get(k) || 0)) {
          delay = Math.min(delay ? delay * 2 : 1, 16);
          ownSoon(check, delay);
          return;
        }
      }
      finish(false, null);
    };
    ownSoon(check, 0);
  });
}

process.on('unhandledRejection', (reason) => {
  if (current) current.fail(reason, 'Runtime.UnhandledPromiseRejection');
  else out(Buffer.from(`faas runtime: unhandled rejection outside an invocation: ${
    reason && reason.stack ? reason.stack : String(reason)}\n`));
});

process.on('uncaughtException', (err) => {
  if (current) current.fail(err);
  else out(Buffer.from(`faas runtime: uncaught exception outside an invocation: ${
    err && err.stack ? err.stack : String(err)}\n`));
});

// Invocations run one after another, even across connections.
let chain = Promise.resolve();
function serialized(fn) {
  const p = chain.then(fn);
  chain = p.catch(() => {});
  return p;
}

// --- serving -------------------------------------------------------------------

// JSON.stringify writes a lone surrogate as a \udXXX escape, which strict
// parsers (jansson, in the agent) refuse: make it U+FFFD.
function wellFormed(s) {
  if (!s.includes('\\ud')) return s;
  return s.replace(/(\\+)u(d[89a-f][0-9a-f]{2})/g,
    (m, bs) => (bs.length % 2 ? `${bs.slice(1)}\\ufffd` : m));
}

function sendFrame(sock, obj) {
  if (sock.destroyed) return;
  let data = Buffer.from(wellFormed(JSON.stringify(obj)), 'utf8');
  if (data.length > FRAME_MAX) {
    data = Buffer.from(JSON.stringify(errorAnswer(obj.id, {
      type: 'Runtime.MarshalError',
      message: `The answer is ${data.length} bytes, over the ${FRAME_MAX}-byte frame limit`,
      trace: '',
    }, '')), 'utf8');
  }
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32BE(data.length, 0);
  sock.write(Buffer.concat([hdr, data]));
}

let active = null;
const waiting = [];
const utf8 = new TextDecoder('utf-8', { fatal: true });

function nextConnection() {
  active = null;
  while (waiting.length) {
    const s = waiting.shift();
    if (!s.destroyed) {
      serveConnection(s);
      return;
    }
  }
}

function serveConnection(sock) {
  active = sock;
  let chunks = [];
  let have = 0;
  let need = -1;
  let closed = false;
  const frames = [];
  let busy = false;

  const take = (n) => {
    let all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, have);
    const b = all.subarray(0, n);
    all = all.subarray(n);
    chunks = all.length ? [all] : [];
    have = all.length;
    return b;
  };

  const pump = async () => {
    if (busy) return;
    busy = true;
    while (frames.length && !closed) {
      const frame = frames.shift();
      let req;
      try {
        req = JSON.parse(utf8.decode(frame));
        if (req === null || typeof req !== 'object' || Array.isArray(req)) {
          throw new Error('the request is not a JSON object');
        }
      } catch (e) {
        sendFrame(sock, errorAnswer(null, { type: 'Runtime.BadRequest',
          message: `Malformed request: ${e.message}`, trace: '' }, ''));
        closed = true;
        sock.end();
        break;
      }
      if (req.ping) {
        sendFrame(sock, { id: req.id === undefined ? null : req.id, ok: true, pong: true });
        continue;
      }
      if ('specialise' in req) {
        sendFrame(sock, await serialized(() => specialise(req)));
        continue;
      }
      const answer = await serialized(() => invoke(req));
      sendFrame(sock, answer);
    }
    busy = false;
  };

  sock.on('data', (d) => {
    if (closed) return;
    chunks.push(d);
    have += d.length;
    for (;;) {
      if (need < 0) {
        if (have < 4) break;
        need = take(4).readUInt32BE(0);
        if (need > FRAME_MAX) {
          out(Buffer.from(`faas runtime: frame of ${need} bytes refused, closing\n`));
          closed = true;
          chunks = [];
          sock.destroy();
          return;
        }
      }
      if (have < need) break;
      frames.push(Buffer.from(take(need)));
      need = -1;
    }
    pump();
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    closed = true;
    if (active === sock) nextConnection();
  });
  sock.resume();
}

async function load() {
  const taskRoot = env.FAAS_TASK_ROOT || env.LAMBDA_TASK_ROOT || '/var/task';
  try {
    handler = await loadHandler(env.FAAS_HANDLER || '', taskRoot);
    initError = null;
  } catch (e) {
    initError = e instanceof InitError ? e
      : new InitError('Runtime.ImportModuleError', String(e && e.message), e && e.stack);
    out(Buffer.from(`faas runtime: ${initError.type}: ${initError.message}\n${initError.trace}\n`));
  }
}

// A stem cell (FAAS_STEM=1) starts with no function and is given one, once:
// {"id","specialise":{"env":{..}}} brings its environment (FAAS_HANDLER,
// FAAS_FUNCTION_NAME ...); the provisioner has just mounted its code at
// /var/task (docs/DESIGN.md section 6).
let stem = false;

async function specialise(req) {
  const id = req.id === undefined ? null : req.id;
  const spec = req.specialise;
  const fenv = spec && typeof spec === 'object' ? spec.env : null;
  const bad = (message) => errorAnswer(id, { type: 'Runtime.BadRequest', message, trace: '' }, '');
  if (!stem) return bad('Not a stem cell (or specialised already)');
  if (!fenv || typeof fenv !== 'object' || Array.isArray(fenv)
      || !Object.entries(fenv).every(([k, v]) => typeof v === 'string' && k
        && !k.includes('=') && !(k + v).includes('\0'))) {
    return bad('specialise.env must map names to strings');
  }
  stem = false;
  Object.assign(env, fenv);
  // the cwd is still the empty directory the code was mounted over
  process.chdir(env.FAAS_TASK_ROOT || '/var/task');
  const t0 = process.hrtime.bigint();
  await load();
  return { id, ok: true, specialised: true,
    import_ms: Number(process.hrtime.bigint() - t0) / 1e6,
    init_error: initError ? initError.type : null };
}

async function main() {
  const sockPath = env.FAAS_SOCKET;
  if (!sockPath) {
    realErrWrite('faas runtime: FAAS_SOCKET is not set\n');
    process.exit(2);
  }
  stem = env.FAAS_STEM === '1';
  if (stem) {
    initError = new InitError('Runtime.NotSpecialised', 'This stem cell has no function yet', '');
  } else {
    await load();
  }
  const server = net.createServer({ pauseOnConnect: true }, (sock) => {
    sock.on('error', () => {});
    if (active) waiting.push(sock);
    else serveConnection(sock);
  });
  server.on('error', (e) => {
    realErrWrite(`faas runtime: cannot listen on ${sockPath}: ${e.message}\n`);
    process.exit(1);
  });
  // Bind under a temporary name and rename once listening: the socket file
  // appears only when connections are accepted (watchers see IN_MOVED_TO).
  const tmp = sockPath + '.new';
  for (const p of [tmp, sockPath]) {
    try { fs.unlinkSync(p); } catch (e) { /* not there */ }
  }
  const useTmp = Buffer.byteLength(tmp) < 108;
  server.listen(useTmp ? tmp : sockPath, () => {
    if (useTmp) fs.renameSync(tmp, sockPath);
  });
}

main();
