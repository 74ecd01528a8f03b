//! Guests that misbehave: each gets its code, ends only its own session (or call), and the
//! sandbox and the other sessions keep working.

use crate::common::*;
use cella_runtime::codes;
use cella_runtime::sandbox::CreateStatus;
use cella_runtime::{Caller, Config, Sandbox};
use serde_json::{Value, json};
use std::time::Duration;

/// A bystander with a faulty session that has counted one call.
async fn bystander(sb: &Sandbox) -> Caller {
    let w = worker("bystander");
    sb.create_session(&w, "faulty", json!({}), None).await.unwrap();
    assert_eq!(ok(exec(sb, &w, "faulty:echo", json!({"value": 1})).await)["calls"], 1);
    w
}

/// The bystander's session still works and kept its state.
async fn bystander_unharmed(sb: &Sandbox, w: &Caller) {
    let data = ok(exec(sb, w, "faulty:echo", json!({"value": 2})).await);
    assert_eq!(data["calls"], 2, "the other session kept its state");
}

/// Runs `tool` in a fresh faulty session and checks the code and that the session ended.
async fn fault_ends_session(
    sb: &Sandbox,
    tool: &str,
    params: Value,
    timeout: Option<Duration>,
    code: i32,
) -> cella_runtime::Envelope {
    let w = worker("faulter");
    sb.create_session(&w, "faulty", json!({}), None).await.unwrap();
    let env = match timeout {
        Some(t) => exec_timeout(sb, &w, tool, params, t).await,
        None => exec(sb, &w, tool, params).await,
    };
    assert_eq!(env.code, code, "{env:?}");
    assert_eq!(env.data["session_ended"], true, "{env:?}");
    let listed = sb.list_sessions(&w);
    assert_eq!(listed[0].status, "error", "the faulted session is listed in error state");
    let next = exec(sb, &w, "faulty:echo", json!({"value": 0})).await;
    assert_eq!(next.code, codes::RESOURCE_NOT_INITIALIZED, "the next call gets a clear error: {next:?}");
    assert!(next.message.contains("session ended by a fault"), "{}", next.message);
    // Destroying it and starting again works.
    sb.destroy_session(&w, "faulty").await.unwrap();
    sb.create_session(&w, "faulty", json!({}), None).await.unwrap();
    assert_eq!(ok(exec(sb, &w, "faulty:echo", json!({"value": 0})).await)["calls"], 1);
    env
}

#[tokio::test]
async fn a_trap_ends_only_its_own_session() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    let env = fault_ends_session(&sb, "faulty:trap", json!({}), None, codes::GUEST_TRAPPED).await;
    assert_eq!(env.data["fault"], "trap");
    assert!(env.message.starts_with("guest trapped"), "{}", env.message);
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn an_infinite_loop_times_out_while_other_sessions_keep_working() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    let looping = {
        let sb = sb.clone();
        tokio::spawn(async move {
            fault_ends_session(&sb, "faulty:loop", json!({}), Some(Duration::from_millis(500)), codes::TIMEOUT_ERROR)
                .await
        })
    };
    // While the loop spins, other calls are served (the looping guest yields every tick).
    let w = worker("during");
    for i in 0..20 {
        ok(exec(&sb, &w, "kv:set", json!({"key": "k", "value": i})).await);
    }
    let env = looping.await.unwrap();
    assert_eq!(env.message, "Tool execution timed out after 0.5s");
    assert_eq!(env.data["timeout"], 0.5);
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    let env = fault_ends_session(&sb, "faulty:alloc", json!({"mb": 1000}), None, codes::MEMORY_LIMIT).await;
    assert!(env.message.contains("64 MiB"), "{}", env.message);
    // Allocating within the limit works.
    let w = worker("small");
    assert_eq!(ok(exec(&sb, &w, "faulty:alloc", json!({"mb": 8})).await)["allocated_mb"], 8);
    bystander_unharmed(&sb, &other).await;
}

/// A resource's own `memory_mb` is its instances' limit, below the pool's slot; one above
/// the slot is refused at load with both numbers.
#[tokio::test]
async fn a_resource_may_have_less_memory_than_the_pool() {
    let sb = sandbox_with(json!({"resources": {"faulty": {"memory_mb": 16}}})).await;
    let env = fault_ends_session(&sb, "faulty:alloc", json!({"mb": 32}), None, codes::MEMORY_LIMIT).await;
    assert!(env.message.contains("16 MiB"), "{}", env.message);
    assert_eq!(ok(exec(&sb, &worker("small"), "faulty:alloc", json!({"mb": 8})).await)["allocated_mb"], 8);
    let mut value = base_config();
    merge(&mut value, json!({"resources": {"faulty": {"memory_mb": 65}}}));
    let err = Config::from_json(&value.to_string(), &repo_root()).unwrap_err().to_string();
    assert!(err.contains("resources.faulty.memory_mb") && err.contains("(64)"), "{err}");
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack_and_ends_the_session() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    let env =
        fault_ends_session(&sb, "faulty:recurse", json!({"depth": 100_000_000u64}), None, codes::GUEST_TRAPPED).await;
    assert_eq!(env.data["fault"], "stack_overflow");
    assert_eq!(env.message, "guest trapped: stack overflow");
    assert_eq!(ok(exec(&sb, &worker("shallow"), "faulty:recurse", json!({"depth": 100})).await)["depth"], 100);
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn a_slow_tool_is_cut_at_its_deadline() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    let w = worker("slow");
    assert_eq!(ok(exec(&sb, &w, "faulty:sleep", json!({"ms": 20})).await)["slept_ms"], 20);
    fault_ends_session(
        &sb,
        "faulty:sleep",
        json!({"ms": 60_000}),
        Some(Duration::from_millis(300)),
        codes::TIMEOUT_ERROR,
    )
    .await;
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn a_failing_initialize_leaves_an_error_session() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    for config in [json!({"fail_initialize": true}), json!({"trap_initialize": true})] {
        let w = worker("badinit");
        let created = sb.create_session(&w, "faulty", config.clone(), None).await.unwrap();
        assert_eq!(created.status, CreateStatus::Failed, "{config}");
        assert_eq!(created.session.status, "error");
        let error = created.session.error.clone().unwrap();
        assert!(error.contains("initialize failed on purpose") || error.contains("guest trapped"), "{error}");
        let env = exec(&sb, &w, "faulty:echo", json!({"value": 1})).await;
        assert_eq!(env.code, codes::RESOURCE_NOT_INITIALIZED);
        assert_eq!(env.data["resource_type"], "faulty");
        sb.destroy_session(&w, "faulty").await.unwrap();
    }
    // A temporary session whose initialize fails answers 4007 and leaves nothing.
    let bad = sandbox_with(json!({"resources": {"faulty": {"config": {"fail_initialize": true}}}})).await;
    let w = worker("tmpbad");
    assert_eq!(exec(&bad, &w, "faulty:echo", json!({"value": 1})).await.code, codes::RESOURCE_NOT_INITIALIZED);
    assert!(bad.list_sessions(&w).is_empty());
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn a_failing_warmup_is_reported_and_the_backend_stays_usable() {
    let sb = sandbox_with(json!({"resources": {"faulty": {"config": {"fail_warmup": true}}}})).await;
    let out = sb.warmup(Some(&["faulty".to_string()])).await;
    assert_eq!(out.status, "partial_error");
    assert!(out.errors.unwrap()["faulty"].contains("warmup failed on purpose"));
    let report = &sb.warmup_status().backends["faulty"];
    assert_eq!((report.mode, report.warmed_up), ("failed", false));
    // Instances start cold; tools still answer.
    let data = ok(exec(&sb, &worker("cold"), "faulty:fresh", json!({})).await);
    assert_eq!(data["warmed"], false);
    ok(exec(&sb, &worker("kv"), "kv:set", json!({"key": "k", "value": 1})).await);
}

#[tokio::test]
async fn faults_in_stateless_and_temporary_calls_harm_nothing() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    let w = worker("temp");
    let env = exec(&sb, &w, "faulty:trap", json!({})).await;
    assert_eq!(env.code, codes::GUEST_TRAPPED);
    assert_eq!(env.meta.temporary_session, Some(true));
    assert_eq!(env.data["session_ended"], false, "there was no explicit session to end");
    assert!(sb.list_sessions(&w).is_empty());
    ok(exec(&sb, &w, "faulty:fresh", json!({})).await);
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn without_grants_a_component_reaches_no_directory_variable_or_socket() {
    // A real listener on loopback, so a refused connection is the sandbox's doing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // A variable every host process has (no need to set one, which is unsafe).
    assert!(std::env::var("PATH").is_ok());
    let sb = sandbox().await;
    let probe = json!({"dir": "/", "env": "PATH", "addr": addr});
    let seen = ok(exec(&sb, &worker("probe"), "faulty:probe", probe.clone()).await);
    assert_eq!(seen["dir"]["ok"], false, "no directory without a grant: {seen}");
    assert_eq!(seen["env"]["ok"], false, "no host environment: {seen}");
    assert_eq!(seen["env_names"], json!([]), "no environment at all: {seen}");
    assert_eq!(seen["socket"]["ok"], false, "no network: {seen}");

    // With grants: the granted directory (read-only) and the named variable, nothing more.
    let granted = sandbox_with(json!({"resources": {"faulty": {"grants": {
        "dirs": [{"host": "examples/data", "guest": "/data"}],
        "env": {"GREETING": "hello"}
    }}}}))
    .await;
    let probe = json!({"dir": "/data", "env": "GREETING", "addr": addr});
    let seen = ok(exec(&granted, &worker("probe2"), "faulty:probe", probe).await);
    assert_eq!(seen["dir"]["value"], json!(["glossary.json"]), "{seen}");
    assert_eq!(seen["env"]["value"], "hello");
    assert_eq!(seen["env_names"], json!(["GREETING"]), "CELLA_PROBE_SECRET stays on the host");
    assert_eq!(seen["socket"]["ok"], false, "still no network");
    drop(listener);
}

#[tokio::test]
async fn a_guest_writing_gigabytes_to_stdout_is_cut_at_its_deadline() {
    let sb = sandbox().await;
    let other = bystander(&sb).await;
    // stdout goes nowhere (no grant), so the flood only burns its own time.
    fault_ends_session(&sb, "faulty:spew", json!({}), Some(Duration::from_millis(500)), codes::TIMEOUT_ERROR).await;
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn each_session_gets_its_own_scratch_directory_within_its_quota() {
    let cache = tempfile::tempdir().unwrap();
    let sb = sandbox_with(json!({
        "server": {"cache_dir": cache.path()},
        "resources": {"faulty": {"grants": {"scratch": {"guest": "/scratch", "quota_mb": 2}}}}
    }))
    .await;
    let (a, b) = (worker("scratch-a"), worker("scratch-b"));
    let id_a = sb.create_session(&a, "faulty", json!({}), None).await.unwrap().session.session_id;
    sb.create_session(&b, "faulty", json!({}), None).await.unwrap();
    ok(exec(&sb, &a, "faulty:write", json!({"path": "/scratch/a.bin", "mb": 1})).await);
    assert_eq!(ok(exec(&sb, &a, "faulty:stat", json!({"path": "/scratch/a.bin"})).await)["bytes"], 1 << 20);
    let other = exec(&sb, &b, "faulty:stat", json!({"path": "/scratch/a.bin"})).await;
    assert_eq!(other.code, codes::NO_RESULTS_FOUND, "b's scratch is its own: {other:?}");
    let host_dir = cache.path().join("scratch").join(&id_a);
    assert!(host_dir.join("a.bin").exists());
    // Going over the quota ends the session and removes its directory.
    let over = exec(&sb, &a, "faulty:write", json!({"path": "/scratch/big.bin", "mb": 3})).await;
    assert_eq!(over.code, codes::QUOTA_EXCEEDED, "{over:?}");
    assert!(over.message.contains("quota of 2 MiB"), "{}", over.message);
    assert!(!host_dir.exists(), "the directory is removed");
    assert_eq!(
        exec(&sb, &a, "faulty:stat", json!({"path": "/scratch/a.bin"})).await.code,
        codes::RESOURCE_NOT_INITIALIZED
    );
    // Destroying a session removes its directory; temporary sessions leave none.
    sb.destroy_session(&b, "faulty").await.unwrap();
    ok(exec(&sb, &worker("temp"), "faulty:write", json!({"path": "/scratch/t.bin", "mb": 1})).await);
    sb.destroy_session(&a, "faulty").await.unwrap();
    let left: Vec<_> = std::fs::read_dir(cache.path().join("scratch")).unwrap().flatten().collect();
    assert!(left.is_empty(), "no scratch directory is left behind: {left:?}");
}

#[tokio::test]
async fn with_fuel_an_endless_loop_runs_out_of_fuel() {
    let sb = sandbox_with(json!({"server": {"limits": {"fuel": 50_000_000u64}}})).await;
    let other = bystander(&sb).await;
    let env = fault_ends_session(&sb, "faulty:loop", json!({}), None, codes::FUEL_EXHAUSTED).await;
    assert_eq!(env.data["fault"], "fuel_exhausted");
    // Ordinary calls fit in the budget, every call getting it afresh.
    for _ in 0..3 {
        ok(exec(&sb, &worker("fueled"), "kv:incr", json!({"key": "n"})).await);
    }
    bystander_unharmed(&sb, &other).await;
}

#[tokio::test]
async fn a_full_instance_pool_refuses_new_sessions_and_leaves_nothing_behind() {
    // One configured instance (plus the pool's spares): fill it.
    let sb = sandbox_with(json!({"server": {"limits": {"max_instances": 1}}})).await;
    let (holders, w, refusal) = fill_pool(&sb, "kv").await;
    assert_eq!(refusal.code, codes::CAPACITY_EXHAUSTED, "{refusal:?}");
    assert!(sb.list_sessions(&w).is_empty(), "a refused session is not left in the table");
    // Stateless and temporary calls get the same clear answer, then work once there is room.
    assert_eq!(exec(&sb, &w, "kv:keys", json!({})).await.code, codes::CAPACITY_EXHAUSTED);
    sb.destroy_session(&holders[0], "kv").await.unwrap();
    assert_eq!(sb.create_session(&w, "kv", json!({}), None).await.unwrap().status, CreateStatus::Created);
}

/// Fills the pool with sessions of `resource` (one worker each) until one is refused; gives
/// the workers holding them, the worker refused and the refusal.
async fn fill_pool(sb: &Sandbox, resource: &str) -> (Vec<Caller>, Caller, cella_runtime::sandbox::Refusal) {
    let mut holders = Vec::new();
    loop {
        assert!(holders.len() < 200, "the pool never filled with {resource}");
        let w = worker("fill");
        match sb.create_session(&w, resource, json!({}), None).await {
            Ok(c) => {
                assert_eq!(c.status, CreateStatus::Created);
                holders.push(w);
            }
            Err(r) => return (holders, w, r),
        }
    }
}

/// An interpreter session takes one slot of the pool, as a kv session does: the Python
/// component is 16 core instances (CPython and its libraries linked dynamically), and the
/// pool once counted 4 per slot, so a pool of 1,000 held 258 Python sessions, refused with a
/// message about "core instances".
#[tokio::test]
async fn a_python_session_takes_one_pool_slot_like_a_kv_session() {
    let sb = sandbox_with(json!({
        "server": {"limits": {"max_instances": 1}},
        "resources": {"python": {"component": "builtin:python"}}
    }))
    .await;
    let (kv, _, refusal) = fill_pool(&sb, "kv").await;
    assert_eq!(refusal.code, codes::CAPACITY_EXHAUSTED, "{refusal:?}");
    for w in &kv {
        sb.destroy_session(w, "kv").await.unwrap();
    }
    let (python, _, refusal) = fill_pool(&sb, "python").await;
    assert_eq!(refusal.code, codes::CAPACITY_EXHAUSTED, "{refusal:?}");
    assert!(!refusal.message.contains("core instances"), "the refusal is the pool's, not a count's: {refusal:?}");
    assert_eq!(python.len(), kv.len(), "as many Python sessions as kv sessions fill the pool");
    let last = python.last().expect("Python sessions were held");
    let data = ok(exec(&sb, last, "python:run", json!({"code": "6 * 7"})).await);
    assert_eq!(data["result"], "42", "{data}");
}
