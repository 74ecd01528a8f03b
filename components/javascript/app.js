// Cella's JavaScript interpreter backend, built with componentize-js (SpiderMonkey inside).
//
// javascript:run {code} runs code like a notebook cell in this session's realm: console
// output is captured (and streamed with host.emit), the value of the last expression is the
// result, and an exception or a syntax error comes back as a structured error. Globals
// persist between runs: `var`, function declarations and `globalThis` properties directly,
// and top-level `let`/`const` too (they are run as `var`, so a later run may redefine them).
import { emit } from 'cella:backend/host@0.1.0';

const VERSION = '0.1.0';

const tools = [
  {
    name: 'javascript:run',
    description:
      'Run JavaScript in this session (globals persist); returns console output, the value of the last expression and a structured error',
    paramsSchema: JSON.stringify({
      type: 'object',
      properties: { code: { type: 'string', description: 'The code to run.' } },
      required: ['code'],
    }),
    needsSession: true,
  },
];

function fail(code, message) {
  // componentize-js turns a thrown value into the `err` case of the result.
  throw { code, message, data: undefined };
}

function show(value) {
  if (typeof value === 'string') return value;
  if (typeof value === 'undefined') return 'undefined';
  if (typeof value === 'function') return `[Function ${value.name || 'anonymous'}]`;
  if (typeof value === 'bigint') return `${value}n`;
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

function capture(channel, parts) {
  return (...args) => {
    const text = args.map(show).join(' ') + '\n';
    parts.push(text);
    emit(channel, text);
  };
}

// Top-level `let`/`const` become `var` so that they persist like the rest of the globals.
function hoist(code) {
  return code.replace(/^(\s*)(?:let|const)(\s)/gm, '$1var$2');
}

function run(code) {
  const stdout = [];
  const stderr = [];
  const saved = globalThis.console;
  const out = capture('stdout', stdout);
  const err = capture('stderr', stderr);
  globalThis.console = { log: out, info: out, debug: out, warn: err, error: err, trace: err };
  let result = null;
  let error = null;
  try {
    const value = (0, eval)(hoist(code));
    result = value === undefined ? null : show(value);
  } catch (e) {
    const isError = e instanceof Error;
    error = {
      name: isError ? e.name : typeof e,
      value: isError ? e.message : show(e),
      traceback: isError ? `${e.name}: ${e.message}\n${e.stack || ''}` : `Uncaught ${show(e)}`,
    };
  } finally {
    globalThis.console = saved;
  }
  return { stdout: stdout.join(''), stderr: stderr.join(''), result, error };
}

export const guest = {
  describe() {
    return { name: 'javascript', description: 'JavaScript interpreter (SpiderMonkey in WebAssembly)', version: VERSION, tools };
  },
  warmup(_config) {
    run('[1, 2, 3].map((x) => x * x).reduce((a, b) => a + b)');
  },
  shutdown() {},
  initialize(_worker, _config) {
    return JSON.stringify({ javascript: 'SpiderMonkey (componentize-js 0.23.0)' });
  },
  cleanup() {},
  call(tool, params, _context) {
    let args;
    try {
      args = JSON.parse(params);
    } catch (e) {
      fail(4002, `params are not JSON: ${e}`);
    }
    if (tool !== 'javascript:run') fail(4002, `unknown tool ${tool}`);
    if (args.code === undefined || args.code === null) fail(4003, "missing required parameter 'code'");
    if (typeof args.code !== 'string') fail(4004, 'code must be a string');
    return JSON.stringify(run(args.code));
  },
};
