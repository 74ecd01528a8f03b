// Drives a Cella server with Scalebox's own JavaScript SDK (@scalebox/sdk, pinned in
// package.json), unmodified.
//
// Usage: node client.mjs SCENARIO   with SCALEBOX_API_KEY and SCALEBOX_API_URL set, and
// NODE_EXTRA_CA_CERTS naming the CA of the server's certificate (the SDK reaches files and
// health over https). Prints one JSON object: what the scenario observed. The Rust test
// (tests/e2e/scalebox.rs) makes the assertions.

import { ApiClient, CodeInterpreter, Sandbox, Session, SessionExecutor } from '@scalebox/sdk';

const brief = (r) => ({
  success: r.success,
  text: r.text,
  stdout: r.stdout,
  stderr: r.stderr,
  error: r.error ? { name: r.error.name, value: r.error.value } : null,
  sessionId: r.sessionId ?? null,
  files: r.files ? Object.fromEntries(Object.entries(r.files).map(([k, v]) => [k, v.toString()])) : null,
});

async function attempt(work) {
  try {
    return { ok: await work() };
  } catch (e) {
    return { threw: String(e && e.message ? e.message : e) };
  }
}

const scenarios = {
  async python() {
    const out = {};
    const chunks = [];
    const first = await Session.run({
      code: "x = 41\nprint('hello')\nopen('data.txt').read()",
      language: 'python',
      keepAlive: true,
      files: { 'data.txt': 'uploaded over https', '/workspace/sub/b.txt': 'second' },
      onStdout: (text) => chunks.push(text),
    });
    out.first = brief(first);
    out.streamed = chunks;
    const id = first.sessionId;
    out.second = brief(await Session.run({ code: 'x + 1', sessionId: id, keepAlive: true }));
    out.packages = brief(
      await Session.run({ code: 'import six\nsix.PY3', sessionId: id, keepAlive: true, packages: ['six'] }),
    );
    out.error = brief(await Session.run({ code: '1/0', sessionId: id, keepAlive: true }));
    out.print_only = brief(await Session.run({ code: 'print(1)', sessionId: id, keepAlive: true }));
    out.download = brief(
      await Session.run({
        code: "open('/workspace/out.txt', 'w').write('made by code')",
        sessionId: id,
        keepAlive: true,
        downloadFiles: ['/workspace/out.txt'],
      }),
    );
    const renewed = await Session.keepAlive(id, 900000);
    out.renewed_s = (new Date(renewed.expiresAt).getTime() - Date.now()) / 1000;
    const info = await Session.getSession(id);
    out.info = { status: info.status, sandboxId: info.sandboxId, language: info.language };
    out.listed = (await Session.listSessions()).map((s) => s.sessionId ?? s.id);
    await Session.close(id);
    out.after_close = await attempt(() => Session.run({ code: 'x', sessionId: id }));
    return out;
  },

  // The scientific Python's rich results through the SDK's CodeInterpreter: a shown figure
  // as a PNG result of its own, a DataFrame as the main result's HTML.
  async scientific() {
    const first = await Session.run({ code: 'import matplotlib.pyplot as plt', language: 'python', keepAlive: true });
    const sandbox = first.sandbox;
    const { context } = SessionExecutor.sessions.get(first.sessionId);
    const interpreter = new CodeInterpreter(sandbox, sandbox.connectionConfig, new ApiClient(sandbox.connectionConfig));
    const shown = [];
    const r = await interpreter.runCode(
      "import pandas as pd\nplt.figure(figsize=(4, 3), dpi=100)\nplt.plot([1, 2, 3], [4, 1, 9])\nplt.title('rises')\nplt.show()\npd.DataFrame({'a': [1.5, 2]})",
      { context, onResult: (result) => shown.push(result.isMainResult) },
    );
    const png = (b64) => {
      if (!b64) return null;
      const bytes = Buffer.from(b64, 'base64');
      return { signature: bytes.subarray(0, 8).toString('hex'), size: [bytes.readUInt32BE(16), bytes.readUInt32BE(20)] };
    };
    const results = (r.results ?? []).map((x) => ({
      main: x.isMainResult,
      png: png(x.png),
      table: typeof x.html === 'string' && x.html.includes('<table'),
      text: x.text ?? null,
      chart: x.chart ? { type: x.chart.type, title: x.chart.title } : null,
    }));
    await Session.close(first.sessionId);
    return { results, shown, error: r.error ? { name: r.error.name, value: r.error.value } : null };
  },

  async javascript() {
    const out = {};
    const first = await Session.run({ code: "var n = 20; console.log('js says hi'); n + 1", language: 'javascript', keepAlive: true });
    out.first = brief(first);
    out.second = brief(await Session.run({ code: 'n * 2', sessionId: first.sessionId, keepAlive: true }));
    out.error = brief(await Session.run({ code: 'nothing()', sessionId: first.sessionId, keepAlive: true }));
    out.npm = brief(
      await Session.run({ code: '1', sessionId: first.sessionId, keepAlive: true, packages: ['lodash'] }),
    );
    await Session.close(first.sessionId);
    return out;
  },

  async one_shot() {
    // keepAlive false: the SDK never deletes the sandbox; the server's reaper must.
    const r = await Session.run({ code: "print('once')", language: 'python', timeout: 60000 });
    return { run: brief(r) };
  },

  async paused() {
    // Pause over the control plane (the SDK's Session has no pause); the SDK's session reuse
    // sees status "paused", connects (which resumes), and runs.
    const first = await Session.run({ code: 'x = 41', language: 'python', keepAlive: true });
    const id = first.sandbox.sandboxId;
    const r = await fetch(`${process.env.SCALEBOX_API_URL}/v1/sandboxes/${id}/pause`, {
      method: 'POST',
      headers: { 'x-api-key': process.env.SCALEBOX_API_KEY },
    });
    const paused = await r.json();
    const second = brief(await Session.run({ code: 'x + 1', sessionId: first.sessionId, keepAlive: true }));
    await Session.close(first.sessionId);
    return { pause_status: r.status, status: paused.data?.status ?? paused.status, second };
  },

  // A session (a sandbox) kept over a graceful restart of the server (#35): before it...
  async keep_before() {
    const r = await Session.run({
      code: "kept = 41\nopen('kept.txt', 'w').write('over the restart')",
      language: 'python',
      keepAlive: true,
    });
    const context = SessionExecutor.sessions.get(r.sessionId).context;
    return { sandboxId: r.sessionId, context: { id: context.id, language: context.language, cwd: context.cwd } };
  },

  // ...and after it, in a new client process (whose Session table is empty): the sandbox
  // connected to by its id, its context named by its id.
  async keep_after() {
    const { sandboxId, context } = JSON.parse(process.env.CELLA_INPUT);
    const sandbox = await Sandbox.connect(sandboxId);
    const interpreter = new CodeInterpreter(sandbox, sandbox.connectionConfig, new ApiClient(sandbox.connectionConfig));
    const r = await interpreter.runCode("(kept + 1, open('kept.txt').read())", { context });
    await sandbox.kill();
    return brief(r);
  },

  async create_only() {
    const r = await Session.run({
      code: "secret = 'tenant a'",
      language: 'python',
      keepAlive: true,
      files: { 'mark.txt': 'tenant a' },
    });
    return { sandboxId: r.sandbox.sandboxId, token: r.sandbox.envdAccessToken ?? null };
  },
};

const name = process.argv[2];
const result = await scenarios[name]();
console.log(JSON.stringify(result));
process.exit(0);
