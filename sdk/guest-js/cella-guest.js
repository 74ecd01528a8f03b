// Cella's guest SDK for JavaScript: write a backend as a few registered functions and build
// it with componentize-js (`cella build`).
//
//   import { Backend, CellaError } from './cella-guest.js';
//
//   const kv = new Backend({ name: 'kv', description: 'A key-value store per session', version: '0.1.0' });
//   const items = new Map(); // module state is the session's state: one instance per session
//
//   kv.tool('kv:get', { description: 'Read a value', params: { key: 'string: The key.' } }, ({ key }) => {
//     if (!items.has(key)) throw CellaError.notFound(`no such key: ${key}`);
//     return { key, value: items.get(key) };
//   });
//
//   export const guest = kv.exports();
//
// Parameters are declared as `name: 'type'` (`string`, `integer`, `number`, `boolean`,
// `object`, `array`, `any`), with `?` after the type for an optional one and `: text` for its
// description, or as a full JSON Schema object (add `optional: true`). They become the tool's
// JSON Schema, and calls are checked before the function runs: a missing parameter is 4003, a
// wrong type 4004. The function returns any JSON-serialisable value; `undefined` is `null`.
// `{ session: false }` makes a tool stateless (it runs in a fresh, warm instance).
// Lifecycle hooks: `warmup(config)`, `initialize(workerId, config) -> data`, `cleanup()`,
// `shutdown()`.
import { log as hostLog, emit as hostEmit } from 'cella:backend/host@0.1.0';

/** The result codes backends use most (the table in docs/codes.md). */
export const codes = {
  INVALID_INPUT: 4000,
  BUSINESS_FAILURE: 4001,
  INVALID_REQUEST_FORMAT: 4002,
  MISSING_REQUIRED_FIELD: 4003,
  INVALID_PARAMETER_TYPE: 4004,
  NO_RESULTS_FOUND: 4006,
  INTERNAL_ERROR: 5013,
};

/** An error a tool or hook reports: its code and message become the result envelope's. */
export class CellaError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
  static invalidInput(message, data) { return new CellaError(codes.INVALID_INPUT, message, data); }
  static business(message, data) { return new CellaError(codes.BUSINESS_FAILURE, message, data); }
  static invalidParam(message, data) { return new CellaError(codes.INVALID_PARAMETER_TYPE, message, data); }
  static notFound(message, data) { return new CellaError(codes.NO_RESULTS_FOUND, message, data); }
  static internal(message, data) { return new CellaError(codes.INTERNAL_ERROR, message, data); }
}

/** Writes a log line through the host (`trace`, `debug`, `info`, `warn`, `error`). */
export function log(level, message) {
  hostLog(level, String(message));
}

/** Streams output (`stdout` or `stderr`) of the call in progress to a live watcher. */
export function emit(channel, text) {
  hostEmit(channel, String(text));
}

const CHECKS = {
  string: (v) => typeof v === 'string',
  integer: (v) => Number.isInteger(v),
  number: (v) => typeof v === 'number' && Number.isFinite(v),
  boolean: (v) => typeof v === 'boolean',
  object: (v) => v !== null && typeof v === 'object' && !Array.isArray(v),
  array: (v) => Array.isArray(v),
  null: (v) => v === null,
};

function parameter(name, spec) {
  if (typeof spec === 'string') {
    const [head, ...rest] = spec.split(':');
    const optional = head.trim().endsWith('?');
    const type = head.trim().replace(/\?$/, '');
    if (type !== 'any' && !CHECKS[type]) throw new Error(`cella-guest: parameter '${name}' has an unknown type '${type}'`);
    const schema = type === 'any' ? {} : { type };
    const description = rest.join(':').trim();
    if (description) schema.description = description;
    return { name, schema, optional };
  }
  const { optional = false, ...schema } = spec;
  return { name, schema, optional };
}

function fail(error) {
  // componentize-js turns a thrown value into the `err` case of the result.
  if (error instanceof CellaError) {
    throw { code: error.code, message: error.message, data: error.data === undefined ? undefined : JSON.stringify(error.data) };
  }
  log('error', `${error && error.stack ? error.stack : error}`);
  throw { code: codes.INTERNAL_ERROR, message: `${error && error.name ? error.name : 'Error'}: ${error && error.message !== undefined ? error.message : error}`, data: undefined };
}

function parseJson(text, what) {
  try {
    const value = JSON.parse(text || '{}');
    return value === null ? {} : value;
  } catch (e) {
    fail(new CellaError(codes.INVALID_REQUEST_FORMAT, `${what} is not JSON: ${e.message}`));
  }
}

function check(args, params) {
  for (const p of params) {
    const value = args[p.name];
    if (value === undefined || (value === null && p.optional)) {
      if (!p.optional) throw new CellaError(codes.MISSING_REQUIRED_FIELD, `missing required parameter '${p.name}'`);
      continue;
    }
    const types = p.schema.type === undefined ? [] : [].concat(p.schema.type);
    if (types.length && !types.some((t) => CHECKS[t] && CHECKS[t](value))) {
      throw new CellaError(codes.INVALID_PARAMETER_TYPE, `parameter '${p.name}' must be ${types.join(' or ')}, got ${JSON.stringify(value)}`);
    }
  }
}

/** The call in progress: `{ workerId, sessionId, traceId }`. */
let current = null;
export function context() {
  return current;
}

/** A backend: its manifest, tools and lifecycle hooks; `exports()` gives the component's exports. */
export class Backend {
  constructor({ name, description = '', version = '0.1.0' }) {
    this.manifest = { name, description, version };
    this.tools = new Map();
    this.hooks = {};
  }

  /** Registers `fn(params)` as the tool `name` (`type:action`). */
  tool(name, { description = name, params = {}, session = true } = {}, fn) {
    const list = Object.entries(params).map(([n, spec]) => parameter(n, spec));
    const schema = {
      type: 'object',
      properties: Object.fromEntries(list.map((p) => [p.name, p.schema])),
      required: list.filter((p) => !p.optional).map((p) => p.name),
    };
    this.tools.set(name, {
      info: { name, description, paramsSchema: JSON.stringify(schema), needsSession: session },
      params: list,
      fn,
    });
    return this;
  }

  /** Registers `fn(config)`, run once before the warm image is taken. */
  warmup(fn) { this.hooks.warmup = fn; return this; }
  /** Registers `fn(workerId, config) -> data`, run when a session starts. */
  initialize(fn) { this.hooks.initialize = fn; return this; }
  /** Registers `fn()`, run when a session ends. */
  cleanup(fn) { this.hooks.cleanup = fn; return this; }
  /** Registers `fn()`, run at server shutdown. */
  shutdown(fn) { this.hooks.shutdown = fn; return this; }

  /** The object to export as `guest`. */
  exports() {
    const backend = this;
    const hook = (name, ...args) => {
      const fn = backend.hooks[name];
      if (!fn) return undefined;
      try {
        return fn(...args);
      } catch (e) {
        fail(e);
      }
    };
    return {
      describe() {
        return { ...backend.manifest, tools: [...backend.tools.values()].map((t) => t.info) };
      },
      warmup(config) {
        hook('warmup', parseJson(config, 'config'));
      },
      shutdown() {
        try {
          hook('shutdown');
        } catch (e) {
          log('error', `shutdown failed: ${e.message || e}`);
        }
      },
      initialize(workerId, config) {
        const data = hook('initialize', workerId, parseJson(config, 'config'));
        return JSON.stringify(data === undefined || data === null ? {} : data);
      },
      cleanup() {
        hook('cleanup');
      },
      call(name, params, context) {
        const tool = backend.tools.get(name);
        if (!tool) fail(new CellaError(codes.INVALID_REQUEST_FORMAT, `Tool not found: ${name}`));
        const args = parseJson(params, 'params');
        current = context;
        try {
          if (typeof args !== 'object' || Array.isArray(args)) {
            throw new CellaError(codes.INVALID_PARAMETER_TYPE, 'params must be a JSON object');
          }
          check(args, tool.params);
          const result = tool.fn(args);
          return JSON.stringify(result === undefined ? null : result);
        } catch (e) {
          fail(e);
        } finally {
          current = null;
        }
      },
    };
  }
}
