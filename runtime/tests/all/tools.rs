//! Tools, manifests, envelopes and codes (S-1, S-10, S-20 … S-25).

use crate::common::*;
use cella_runtime::codes;
use cella_runtime::tools::Resolved;
use serde_json::json;

#[tokio::test]
async fn s1_start_loads_every_enabled_backend_and_registers_its_tools() {
    let sb = sandbox_with(json!({"resources": {"notebook": {"enabled": false}}})).await;
    let names: Vec<&str> = sb.backends().map(|b| &*b.name).collect();
    assert_eq!(names, ["faulty", "kv", "rag"], "S-23: a disabled resource is not loaded");
    let listed: Vec<String> = sb.tools(false).iter().map(|t| t.full_name.clone()).collect();
    for tool in ["kv:set", "kv:get", "kv:incr", "kv:delete", "kv:keys", "rag:search", "rag:stats"] {
        assert!(listed.contains(&tool.to_string()), "{tool} missing from {listed:?}");
    }
    assert!(!listed.iter().any(|t| t.starts_with("faulty:")), "[HIDDEN] tools are left out by default");
    assert!(sb.tools(true).iter().any(|t| t.full_name == "faulty:trap"));
    assert_eq!(sb.tools_count(), sb.tools(true).len());
}

#[tokio::test]
async fn s20_s21_s22_manifests_describe_three_kinds_of_backend() {
    let sb = sandbox().await;
    let kv = sb.backend("kv").unwrap();
    assert_eq!((kv.guest_name.as_str(), kv.version.as_str()), ("kv", "0.1.0"));
    assert!(!kv.description.is_empty());
    // Session backend: every tool needs a session.
    assert!(kv.tools.iter().all(|t| t.needs_session));
    // Shared backend: stateless tools only.
    assert!(sb.backend("rag").unwrap().tools.iter().all(|t| !t.needs_session));
    // Hybrid: both.
    let nb = &sb.backend("notebook").unwrap().tools;
    assert!(nb.iter().any(|t| t.needs_session) && nb.iter().any(|t| !t.needs_session));
}

#[tokio::test]
async fn tool_schemas_come_from_the_parameter_types() {
    let sb = sandbox().await;
    let set = sb.tool_schema("kv:set").unwrap();
    let schema = &set.input_schema;
    assert_eq!(schema["type"], "object");
    assert!(schema["properties"]["key"].is_object() && schema["properties"]["value"].is_object(), "{schema}");
    assert_eq!(schema["required"], json!(["key", "value"]));
    let incr = &sb.tool_schema("incr").unwrap().input_schema;
    assert_eq!(incr["required"], json!(["key"]), "`by` has a default");
    assert!(sb.tool_schema("kv.set").is_none(), "the schema lookup does not normalise");
}

#[tokio::test]
async fn s10_the_envelope_carries_code_message_data_and_meta() {
    let sb = sandbox().await;
    let w = worker("s10");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    let env = exec(&sb, &w, "kv:set", json!({"key": "a", "value": 1})).await;
    assert_eq!((env.code, env.message.as_str()), (0, "success"));
    let meta = serde_json::to_value(&env.meta).unwrap();
    for key in ["tool", "execution_time_ms", "resource_type", "session_id", "trace_id"] {
        assert!(meta.get(key).is_some(), "meta.{key} missing: {meta}");
    }
    assert_eq!(meta["tool"], "kv:set");
    assert_eq!(meta["resource_type"], "kv");
    assert!(meta["execution_time_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(meta["trace_id"].as_str().unwrap().len(), 36);
    assert!(meta.get("temporary_session").is_none());
}

#[tokio::test]
async fn tool_names_normalise_as_agentflow_does() {
    let sb = sandbox().await;
    let w = worker("names");
    for name in ["kv:incr", "kv.incr", "kv_incr", "kv-incr", "incr"] {
        let env = exec(&sb, &w, name, json!({"key": "x"})).await;
        assert_eq!(env.meta.tool.as_deref(), Some("kv:incr"), "{name}");
        ok(env);
    }
    let missing = exec(&sb, &w, "kv:nope", json!({})).await;
    assert_eq!(missing.code, codes::INVALID_REQUEST_FORMAT);
    assert_eq!(missing.message, "Tool not found: kv:nope");
    assert_eq!(missing.data, json!({"action": "kv:nope"}));
}

#[tokio::test]
async fn an_ambiguous_simple_name_lists_its_candidates() {
    let sb = sandbox_with(json!({"resources": {"kv2": {"component": "builtin:kv"}}})).await;
    assert!(matches!(sb.resolve_tool("kv2.get"), Resolved::Found(t) if t.full_name == "kv2:get"));
    let env = exec(&sb, &worker("amb"), "get", json!({"key": "k"})).await;
    assert_eq!(env.code, codes::INVALID_REQUEST_FORMAT);
    assert_eq!(env.data["candidates"], json!(["kv:get", "kv2:get"]));
    assert!(env.message.starts_with("Ambiguous tool name 'get'"), "{}", env.message);
}

#[tokio::test]
async fn s24_bad_parameters_and_tool_errors_get_their_codes() {
    let sb = sandbox().await;
    let w = worker("s24");
    sb.create_session(&w, "kv", json!({}), None).await.unwrap();
    let missing = exec(&sb, &w, "kv:get", json!({})).await;
    assert_eq!(missing.code, codes::MISSING_REQUIRED_FIELD, "{missing:?}");
    assert!(missing.message.contains("key"));
    let wrong = exec(&sb, &w, "kv:incr", json!({"key": "k", "by": "lots"})).await;
    assert_eq!(wrong.code, codes::INVALID_PARAMETER_TYPE, "{wrong:?}");
    // Parameters that are not an object cannot reach the facade (its `Params` is a map); the
    // doors refuse them where they read the request (tests/e2e/routes.rs).
    let not_found = exec(&sb, &w, "kv:get", json!({"key": "absent"})).await;
    assert_eq!(not_found.code, codes::NO_RESULTS_FOUND);
    // A tool may return any code, the seeds' included.
    for code in [1002, 2002, 5000] {
        let env = exec(&sb, &w, "faulty:fail", json!({"code": code})).await;
        assert_eq!((env.code, env.message.as_str()), (code, "failed on purpose"));
    }
    // The session survives tool errors.
    ok(exec(&sb, &w, "kv:set", json!({"key": "still", "value": "here"})).await);
}

#[tokio::test]
async fn s25_cleanup_errors_are_logged_never_raised() {
    let sb = sandbox().await;
    let w = worker("s25");
    let id = sb.create_session(&w, "faulty", json!({"fail_cleanup": true}), None).await.unwrap().session.session_id;
    let info = sb.destroy_session(&w, "faulty").await.expect("destroy succeeds although cleanup failed");
    assert_eq!(info.session_id, id);
    let lines = logs_matching(&id);
    assert!(
        lines.iter().any(|(_, _, m)| m.contains("cleanup failed") && m.contains("cleanup failed on purpose")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn rag_search_ranks_passages_with_bm25_scores() {
    let sb = sandbox().await;
    let w = worker("rag");
    let data =
        ok(exec(&sb, &w, "rag:search", json!({"query": "inverse document frequency saturation", "top_k": 2})).await);
    let results = data["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["document"], "bm25.md");
    assert!(results[0]["score"].as_f64().unwrap() >= results[1]["score"].as_f64().unwrap());
    assert!(data["context"].as_str().unwrap().contains("inverse document frequency"));
    let none = ok(exec(&sb, &w, "rag:search", json!({"query": "zebra"})).await);
    assert_eq!(none["results"], json!([]));
    assert_eq!(exec(&sb, &w, "rag:search", json!({"query": " "})).await.code, codes::INVALID_PARAMETER_TYPE);
    let stats = ok(exec(&sb, &w, "rag:stats", json!({})).await);
    assert_eq!(stats["documents"], 4);
}

#[tokio::test]
async fn notebook_sessions_use_shared_glossary_and_private_notes() {
    let sb = sandbox().await;
    let (a, b) = (worker("nb-a"), worker("nb-b"));
    let init = sb.create_session(&a, "notebook", json!({"max_notes": 5}), None).await.unwrap();
    assert_eq!(init.session.data["glossary_terms"], 2, "warmup's glossary is in every session");
    sb.create_session(&b, "notebook", json!({}), None).await.unwrap();
    let written =
        ok(exec(&sb, &a, "notebook:write", json!({"title": "limits", "text": "An epoch deadline stops loops."})).await);
    assert_eq!(written["glossary_terms"], json!(["epoch"]));
    let lookup = ok(exec(&sb, &a, "notebook:lookup", json!({"term": "Epoch"})).await);
    assert_eq!(lookup["mentioned_in"], json!(["limits"]));
    assert_eq!(lookup["definition"], "A counter the host advances.");
    let other = ok(exec(&sb, &b, "notebook:lookup", json!({"term": "epoch"})).await);
    assert_eq!(other["mentioned_in"], json!([]), "notes are private to a session");
    let glossary = exec(&sb, &b, "notebook:glossary", json!({})).await;
    assert_eq!(glossary.meta.session_id, None, "a stateless tool runs outside the session");
    assert_eq!(ok(glossary)["terms"], json!(["epoch", "trap"]));
}

#[tokio::test]
async fn a_pinned_component_loads_only_with_its_sha256() {
    let path = cella_runtime::config::home::home().component("kv").unwrap();
    let sha = cella_runtime::cache::sha256_hex(&std::fs::read(path).unwrap());
    let sb = sandbox_with(json!({"resources": {"kv": {"sha256": format!("sha256:{sha}")}}})).await;
    assert!(sb.backend("kv").is_some());
    let wrong = "0".repeat(64);
    let config = config_with(json!({"resources": {"kv": {"sha256": wrong}}}));
    let err = cella_runtime::Sandbox::start(config).await.err().expect("a mismatch refuses to load").to_string();
    assert!(err.contains("does not match its pinned sha256") && err.contains(&sha), "{err}");
}
