/*
 * `{{name}}`: a Cella backend. Build it with `cella build`, run it with
 * `cella serve --backend build/{{name}}.wasm`.
 */
#include "cella.h"

/* Globals are the session's state: every session has its own instance. */
static long long greeted;

static bool greet(cella_str params, cella_buf *out, cella_error *err) {
    cella_buf name = {0};
    if (!cella_param_string(params, "name", &name, err)) return false;
    bool ok = name.len > 0;
    if (ok) {
        greeted++;
        cella_buf_cstr(out, "{\"greeting\":");
        cella_buf greeting = {0};
        cella_buf_printf(&greeting, "Hello, %s!", name.ptr);
        cella_buf_json_string(out, greeting.ptr, greeting.len);
        cella_buf_printf(out, ",\"count\":%lld}", greeted);
        cella_buf_free(&greeting);
    } else {
        cella_fail(err, CELLA_INVALID_PARAMETER_TYPE, "name must not be empty");
    }
    cella_buf_free(&name);
    return ok;
}

static const cella_tool TOOLS[] = {
    {"{{name}}:greet", "Greet someone; counts the greetings of this session",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"description\":\"Who to greet.\"}},"
     "\"required\":[\"name\"]}",
     true, greet},
};

const cella_backend CELLA_BACKEND = {
    .name = "{{name}}",
    .description = "A new Cella backend",
    .version = "0.1.0",
    .tools = TOOLS,
    .tool_count = sizeof TOOLS / sizeof TOOLS[0],
};
