// `{{name}}`: a Cella backend. Build it with `cella build`, run it with
// `cella serve --backend build/{{name}}.wasm`.
import { Backend, CellaError } from './cella-guest.js';

const backend = new Backend({ name: '{{name}}', description: 'A new Cella backend', version: '0.1.0' });

// Module state is the session's state: every session has its own instance.
let greeted = 0;

backend.initialize(() => ({}));

backend.tool(
  '{{name}}:greet',
  { description: 'Greet someone; counts the greetings of this session', params: { name: 'string: Who to greet.' } },
  ({ name }) => {
    if (name === '') throw CellaError.invalidParam('name must not be empty');
    greeted += 1;
    return { greeting: `Hello, ${name}!`, count: greeted };
  },
);

export const guest = backend.exports();
