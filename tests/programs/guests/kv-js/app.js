// `kv` in JavaScript: a key-value store per session, written with the JavaScript guest SDK.
//
// The same backend as `components/kv` (Rust), `tests/programs/guests/kv-python` and `tests/programs/guests/kv-c`;
// all four pass the conformance suite in `tests/conformance/`.
import { Backend, CellaError, log } from '../../../../sdk/guest-js/cella-guest.js';

const kv = new Backend({ name: 'kv', description: 'A key-value store per session', version: '0.1.0' });

// Module state is the session's state: every session has its own instance.
const items = new Map();
let maxKeys = null;
let label = ''; // a name for this deployment (backend config `label`), shown in the hooks' log lines

const I64 = 2n ** 63n;

function set(key, value) {
  if (maxKeys !== null && items.size >= maxKeys && !items.has(key)) {
    throw CellaError.business(`key limit reached (${items.size} keys)`);
  }
  const previous = items.has(key) ? items.get(key) : null;
  items.set(key, value);
  return { key, previous };
}

kv.warmup((config) => {
  label = typeof config.label === 'string' ? config.label : '';
  log('info', `kv warmup ${label}`);
})
  .initialize((_workerId, config) => {
    const limit = config.max_keys;
    if (limit !== undefined && limit !== null && !(Number.isInteger(limit) && limit >= 0)) {
      throw CellaError.invalidParam('max_keys must be a whole number');
    }
    maxKeys = limit === undefined ? null : limit;
    log('info', 'kv session opened');
    return { max_keys: maxKeys };
  })
  .cleanup(() => log('info', `kv session closed with ${items.size} keys`))
  .shutdown(() => log('info', `kv shutdown ${label}`));

kv.tool('kv:set', { description: 'Store a JSON value under a key', params: { key: 'string: The key.', value: 'any: Any JSON value.' } },
  ({ key, value }) => set(key, value))
  .tool('kv:get', { description: 'Read the value stored under a key', params: { key: 'string: The key.' } }, ({ key }) => {
    if (!items.has(key)) throw CellaError.notFound(`no such key: ${key}`);
    return { key, value: items.get(key) };
  })
  .tool('kv:incr', {
    description: 'Add `by` (default 1) to an integer value',
    params: { key: 'string: The key; a missing key counts as 0.', by: 'integer?: How much to add (default 1).' },
  }, ({ key, by }) => {
    const current = items.has(key) ? items.get(key) : 0;
    if (!Number.isInteger(current)) throw CellaError.invalidParam(`value of '${key}' is not an integer`);
    const exact = BigInt(current) + BigInt(by ?? 1);
    if (exact >= I64 || exact < -I64 || !Number.isSafeInteger(Number(exact))) {
      throw CellaError.invalidParam('integer overflow');
    }
    const value = Number(exact);
    set(key, value);
    return { key, value };
  })
  .tool('kv:delete', { description: 'Remove a key', params: { key: 'string: The key.' } },
    ({ key }) => ({ deleted: items.delete(key) }))
  .tool('kv:keys', { description: 'List the keys in order', params: {} },
    () => ({ keys: [...items.keys()].sort() }));

export const guest = kv.exports();
