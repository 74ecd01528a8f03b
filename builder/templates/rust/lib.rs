//! `{{name}}`: a Cella backend. Build it with `cella build`, run it with
//! `cella serve --backend build/{{name}}.wasm`.
use cella_guest::prelude::*;

/// The session's state: every session has its own instance of this value.
#[derive(Default)]
struct Backend {
    greeted: u64,
}

#[derive(Deserialize, JsonSchema)]
struct Greet {
    /// Who to greet.
    name: String,
}

impl cella_guest::Backend for Backend {
    fn info() -> Info {
        Info::new("{{name}}", "A new Cella backend", "0.1.0")
    }

    fn tools(t: &mut Tools<Self>) {
        t.session("{{name}}:greet", "Greet someone; counts the greetings of this session", |b, p: Greet| {
            if p.name.is_empty() {
                return Err(Error::invalid_param("name must not be empty"));
            }
            b.greeted += 1;
            Ok(json!({"greeting": format!("Hello, {}!", p.name), "count": b.greeted}))
        });
    }

    fn initialize(&mut self, _worker_id: &str, _config: Value) -> Result<Value, Error> {
        Ok(json!({}))
    }
}

cella_guest::export_backend!(Backend);
