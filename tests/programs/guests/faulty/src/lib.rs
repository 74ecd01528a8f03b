//! `faulty`: a test-only backend that misbehaves on purpose, so the runtime's limits and
//! fault handling can be tested with a real guest: traps, infinite loops, memory bombs,
//! deep recursion, slow tools, and failing warmup, initialize and cleanup.
use cella_guest::prelude::*;

#[derive(Default)]
struct Faulty {
    /// Counts calls in this instance (a fresh instance starts from the warm image's value).
    calls: u64,
    /// Set by warmup, so tests can see the warm image.
    warmed: bool,
    fail_cleanup: bool,
}

#[derive(Deserialize)]
struct BackendConfig {
    #[serde(default)]
    fail_warmup: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SessionConfig {
    fail_initialize: bool,
    trap_initialize: bool,
    fail_cleanup: bool,
    /// How long `initialize` takes, in milliseconds (a slow session start).
    initialize_ms: u64,
}

#[derive(Deserialize, JsonSchema)]
struct Alloc {
    /// How many MiB to allocate and touch.
    mb: usize,
}

#[derive(Deserialize, JsonSchema)]
struct Recurse {
    /// How deep to recurse.
    depth: u64,
}

#[derive(Deserialize, JsonSchema)]
struct Sleep {
    /// How long to sleep, in milliseconds.
    ms: u64,
}

#[derive(Deserialize, JsonSchema)]
struct Echo {
    /// Any value; returned as is.
    value: Value,
}

#[derive(Deserialize, JsonSchema)]
struct Probe {
    /// A directory to list.
    dir: String,
    /// An environment variable to read.
    env: String,
    /// An address to open a TCP connection to (`host:port`).
    addr: String,
}

/// What a probe could reach: `ok: true` with what it saw, or the error.
fn outcome<T: Serialize>(r: Result<T, String>) -> Value {
    match r {
        Ok(v) => json!({"ok": true, "value": v}),
        Err(e) => json!({"ok": false, "error": e}),
    }
}

#[derive(Deserialize, JsonSchema)]
struct WriteFile {
    /// The file.
    path: String,
    /// MiB to write.
    mb: usize,
}

#[derive(Deserialize, JsonSchema)]
struct StatFile {
    /// The file.
    path: String,
}

#[derive(Deserialize, JsonSchema)]
struct Fail {
    /// The error code to return.
    code: i32,
}

/// Recurses on the native (wasm) stack only: no locals live in linear memory, so the wasm
/// stack limit is what overflows, not the shadow stack.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    let below = std::hint::black_box(recurse(depth - 1));
    below + 1
}

impl Backend for Faulty {
    fn info() -> Info {
        Info::new("faulty", "[HIDDEN] A backend that misbehaves on purpose, for tests", env!("CARGO_PKG_VERSION"))
    }

    fn tools(t: &mut Tools<Self>) {
        t.session("faulty:trap", "Traps (unreachable instruction)", |_, _: NoParams| -> Result<Value, Error> {
            std::process::abort()
        })
        .session("faulty:loop", "Loops forever", |f, _: NoParams| -> Result<Value, Error> {
            loop {
                f.calls = std::hint::black_box(f.calls.wrapping_add(1));
            }
        })
        .session("faulty:alloc", "Allocates and touches `mb` MiB", |_, p: Alloc| {
            let mut blocks = Vec::new();
            for i in 0..p.mb {
                blocks.push(vec![i as u8 | 1; 1 << 20]);
            }
            Ok(json!({"allocated_mb": blocks.len()}))
        })
        .session("faulty:recurse", "Recurses `depth` frames deep", |_, p: Recurse| {
            Ok(json!({"depth": recurse(p.depth)}))
        })
        .session("faulty:sleep", "Sleeps `ms` milliseconds (a slow tool)", |_, p: Sleep| {
            std::thread::sleep(std::time::Duration::from_millis(p.ms));
            Ok(json!({"slept_ms": p.ms}))
        })
        .session("faulty:echo", "Returns `value`; counts calls in this session", |f, p: Echo| {
            f.calls += 1;
            Ok(json!({"value": p.value, "calls": f.calls}))
        })
        .session("faulty:fail", "Returns an error with the given code", |_, p: Fail| -> Result<Value, Error> {
            Err(Error::new(p.code, "failed on purpose"))
        })
        .stateless("faulty:probe", "Tries to list a directory, read an environment variable and open a socket", |_, p: Probe| {
            let listing = std::fs::read_dir(&p.dir)
                .map_err(|e| e.to_string())
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned())).collect::<Vec<_>>());
            let env = std::env::var(&p.env).map_err(|e| e.to_string());
            let all_env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            let socket = std::net::TcpStream::connect(&p.addr).map(|_| "connected").map_err(|e| e.to_string());
            Ok(json!({"dir": outcome(listing), "env": outcome(env), "env_names": all_env, "socket": outcome(socket)}))
        })
        .session("faulty:spew", "Writes to stdout without end (1 MiB per write)", |_, _: NoParams| -> Result<Value, Error> {
            use std::io::Write;
            let chunk = vec![b'x'; 1 << 20];
            let mut out = std::io::stdout();
            loop {
                let _ = out.write_all(&chunk);
            }
        })
        .session("faulty:write", "Writes `mb` MiB to the file at `path`", |_, p: WriteFile| {
            std::fs::write(&p.path, vec![7u8; p.mb << 20]).map_err(|e| Error::new(5000, e.to_string()))?;
            Ok(json!({"path": p.path, "mb": p.mb}))
        })
        .session("faulty:stat", "The size of the file at `path`", |_, p: StatFile| {
            let len = std::fs::metadata(&p.path).map_err(|e| Error::not_found(e.to_string()))?.len();
            Ok(json!({"path": p.path, "bytes": len}))
        })
        .stateless(
            "faulty:fresh",
            "Stateless: counts calls in this instance and says if it is warm",
            |f, _: NoParams| {
                f.calls += 1;
                Ok(json!({"calls": f.calls, "warmed": f.warmed}))
            },
        );
    }

    fn warmup(&mut self, config: Value) -> Result<(), Error> {
        let config: BackendConfig = serde_json::from_value(config)?;
        if config.fail_warmup {
            return Err(Error::internal("warmup failed on purpose"));
        }
        self.warmed = true;
        Ok(())
    }

    fn initialize(&mut self, _worker_id: &str, config: Value) -> Result<Value, Error> {
        let config: SessionConfig = serde_json::from_value(config)?;
        if config.trap_initialize {
            std::process::abort();
        }
        if config.fail_initialize {
            return Err(Error::internal("initialize failed on purpose"));
        }
        std::thread::sleep(std::time::Duration::from_millis(config.initialize_ms));
        self.fail_cleanup = config.fail_cleanup;
        Ok(json!({"warmed": self.warmed}))
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        if self.fail_cleanup {
            return Err(Error::internal("cleanup failed on purpose"));
        }
        Ok(())
    }
}

cella_guest::export_backend!(Faulty);
