/*
 * `kv` in C: a key-value store per session, written with the C guest SDK (`cella.h`).
 *
 * The same backend as `components/kv` (Rust), `tests/programs/guests/kv-python` and `tests/programs/guests/kv-js`;
 * all four pass the conformance suite in `tests/conformance/`. Values are kept as their raw
 * JSON text, in an array sorted by key (byte order), so `kv:keys` lists them in order.
 */
#include "cella.h"

typedef struct {
    char *key;
    size_t key_len;
    char *value; /* raw JSON */
    size_t value_len;
} entry;

/* Globals are the session's state: every session has its own instance. */
static entry *items;
static size_t count, capacity;
static int64_t max_keys = -1; /* -1: unlimited */
static cella_buf label;        /* a name for this deployment (backend config `label`), for the logs */

static int compare(const char *a, size_t a_len, const char *b, size_t b_len) {
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
    return c ? c : (a_len > b_len) - (a_len < b_len);
}

/* The index of `key`, or where it would go (`*found` says which). */
static size_t find(const char *key, size_t len, bool *found) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = compare(items[mid].key, items[mid].key_len, key, len);
        if (c == 0) { *found = true; return mid; }
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    *found = false;
    return lo;
}

static char *copy(const char *s, size_t len) {
    char *p = (char *)malloc(len + 1);
    if (!p) abort();
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

/* Stores `value` (raw JSON) under `key`; writes {"key","previous"} to `out`. */
static bool store(const cella_buf *key, cella_str value, cella_buf *out, cella_error *err) {
    bool found;
    size_t at = find(key->ptr, key->len, &found);
    if (!found && max_keys >= 0 && (int64_t)count >= max_keys)
        return cella_fail(err, CELLA_BUSINESS_FAILURE, "key limit reached (%zu keys)", count);
    cella_buf_cstr(out, "{\"key\":");
    cella_buf_json_string(out, key->ptr, key->len);
    cella_buf_cstr(out, ",\"previous\":");
    if (found) {
        cella_buf_raw(out, items[at].value, items[at].value_len);
        free(items[at].value);
    } else {
        cella_buf_cstr(out, "null");
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            items = (entry *)realloc(items, capacity * sizeof(entry));
            if (!items) abort();
        }
        memmove(&items[at + 1], &items[at], (count - at) * sizeof(entry));
        items[at].key = copy(key->ptr, key->len);
        items[at].key_len = key->len;
        count++;
    }
    items[at].value = copy(value.ptr, value.len);
    items[at].value_len = value.len;
    cella_buf_cstr(out, "}");
    return true;
}

static bool kv_set(cella_str params, cella_buf *out, cella_error *err) {
    cella_buf key = {0};
    cella_str value;
    bool ok = cella_param_string(params, "key", &key, err) && cella_param_json(params, "value", &value, err) &&
              store(&key, value, out, err);
    cella_buf_free(&key);
    return ok;
}

static bool kv_get(cella_str params, cella_buf *out, cella_error *err) {
    cella_buf key = {0};
    bool ok = cella_param_string(params, "key", &key, err), found = false;
    if (ok) {
        size_t at = find(key.ptr, key.len, &found);
        if (found) {
            cella_buf_cstr(out, "{\"key\":");
            cella_buf_json_string(out, key.ptr, key.len);
            cella_buf_cstr(out, ",\"value\":");
            cella_buf_raw(out, items[at].value, items[at].value_len);
            cella_buf_cstr(out, "}");
        } else {
            ok = cella_fail(err, CELLA_NO_RESULTS_FOUND, "no such key: %s", key.ptr);
        }
    }
    cella_buf_free(&key);
    return ok;
}

static bool kv_incr(cella_str params, cella_buf *out, cella_error *err) {
    cella_buf key = {0};
    int64_t by = 1, current = 0;
    bool given, found, ok = cella_param_string(params, "key", &key, err) && cella_param_int(params, "by", &by, &given, err);
    if (ok) {
        size_t at = find(key.ptr, key.len, &found);
        if (found && !cella_json_int((cella_str){items[at].value, items[at].value_len}, &current)) {
            ok = cella_fail(err, CELLA_INVALID_PARAMETER_TYPE, "value of '%s' is not an integer", key.ptr);
        } else if (__builtin_add_overflow(current, by, &current)) {
            ok = cella_fail(err, CELLA_INVALID_PARAMETER_TYPE, "integer overflow");
        } else {
            char number[32];
            snprintf(number, sizeof number, "%lld", (long long)current);
            cella_buf ignored = {0};
            ok = store(&key, (cella_str){number, strlen(number)}, &ignored, err);
            cella_buf_free(&ignored);
            if (ok) {
                cella_buf_cstr(out, "{\"key\":");
                cella_buf_json_string(out, key.ptr, key.len);
                cella_buf_printf(out, ",\"value\":%s}", number);
            }
        }
    }
    cella_buf_free(&key);
    return ok;
}

static bool kv_delete(cella_str params, cella_buf *out, cella_error *err) {
    cella_buf key = {0};
    bool found = false, ok = cella_param_string(params, "key", &key, err);
    if (ok) {
        size_t at = find(key.ptr, key.len, &found);
        if (found) {
            free(items[at].key);
            free(items[at].value);
            memmove(&items[at], &items[at + 1], (count - at - 1) * sizeof(entry));
            count--;
        }
        cella_buf_printf(out, "{\"deleted\":%s}", found ? "true" : "false");
    }
    cella_buf_free(&key);
    return ok;
}

static bool kv_keys(cella_str params, cella_buf *out, cella_error *err) {
    (void)params; (void)err;
    cella_buf_cstr(out, "{\"keys\":[");
    for (size_t i = 0; i < count; i++) {
        if (i) cella_buf_cstr(out, ",");
        cella_buf_json_string(out, items[i].key, items[i].key_len);
    }
    cella_buf_cstr(out, "]}");
    return true;
}

static bool kv_warmup(cella_str config, cella_error *err) {
    (void)err;
    cella_str value;
    if (!cella_json_field(config, "label", &value) || !cella_json_string(value, &label)) cella_buf_cstr(&label, "");
    cella_log(CELLA_BACKEND_HOST_LEVEL_INFO, "kv warmup %s", label.ptr);
    return true;
}

static bool kv_initialize(cella_str worker_id, cella_str config, cella_buf *out, cella_error *err) {
    (void)worker_id;
    cella_str limit;
    max_keys = -1;
    if (cella_json_field(config, "max_keys", &limit) && !cella_json_is_null(limit)) {
        if (!cella_json_int(limit, &max_keys) || max_keys < 0) {
            max_keys = -1;
            return cella_fail(err, CELLA_INVALID_PARAMETER_TYPE, "max_keys must be a whole number");
        }
    }
    cella_log(CELLA_BACKEND_HOST_LEVEL_INFO, "kv session opened");
    if (max_keys >= 0) cella_buf_printf(out, "{\"max_keys\":%lld}", (long long)max_keys);
    else cella_buf_cstr(out, "{\"max_keys\":null}");
    return true;
}

static bool kv_cleanup(cella_error *err) {
    (void)err;
    cella_log(CELLA_BACKEND_HOST_LEVEL_INFO, "kv session closed with %zu keys", count);
    return true;
}

static void kv_shutdown(void) { cella_log(CELLA_BACKEND_HOST_LEVEL_INFO, "kv shutdown %s", label.ptr ? label.ptr : ""); }

#define KEY "\"key\":{\"type\":\"string\",\"description\":\"The key.\"}"
static const cella_tool TOOLS[] = {
    {"kv:set", "Store a JSON value under a key",
     "{\"type\":\"object\",\"properties\":{" KEY ",\"value\":{\"description\":\"Any JSON value.\"}},\"required\":[\"key\",\"value\"]}",
     true, kv_set},
    {"kv:get", "Read the value stored under a key",
     "{\"type\":\"object\",\"properties\":{" KEY "},\"required\":[\"key\"]}", true, kv_get},
    {"kv:incr", "Add `by` (default 1) to an integer value",
     "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\",\"description\":\"The key; a missing key counts as 0.\"},"
     "\"by\":{\"type\":[\"integer\",\"null\"],\"description\":\"How much to add (default 1).\"}},\"required\":[\"key\"]}",
     true, kv_incr},
    {"kv:delete", "Remove a key", "{\"type\":\"object\",\"properties\":{" KEY "},\"required\":[\"key\"]}", true, kv_delete},
    {"kv:keys", "List the keys in order", "{\"type\":\"object\",\"properties\":{}}", true, kv_keys},
};

const cella_backend CELLA_BACKEND = {
    .name = "kv",
    .description = "A key-value store per session",
    .version = "0.1.0",
    .tools = TOOLS,
    .tool_count = sizeof TOOLS / sizeof TOOLS[0],
    .warmup = kv_warmup,
    .initialize = kv_initialize,
    .cleanup = kv_cleanup,
    .shutdown = kv_shutdown,
};
