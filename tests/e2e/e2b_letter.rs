//! E2B's API to the letter, through its unmodified SDK (`tests/e2b/letter.py`): each
//! assertion is a place where Cella once answered otherwise than E2B.

use cella_e2e::{code_server, e2b_script};
use serde_json::{Value, json};

async fn scenario(name: &str) -> Value {
    let s = code_server(json!({})).await;
    e2b_script(&s, "any-key", "letter.py", name, &Value::Null).await
}

#[tokio::test]
async fn list_orders_by_start_pages_in_order_and_filters_by_start_time() {
    let out = scenario("listing").await;
    let made = out["made"].as_array().expect("three ids").clone();
    let reversed: Vec<Value> = made.iter().rev().cloned().collect();
    assert_eq!(out["asc"], json!(made), "asc: oldest first, running and paused together: {out}");
    assert_eq!(out["desc"], json!(reversed), "desc: newest first: {out}");
    assert_eq!(out["asc_pages"], json!(made), "pages of one keep the order: {out}");
    assert_eq!(out["desc_pages"], json!(reversed), "{out}");
    assert_eq!(out["started_after"], json!(made[1..]), "started_after is inclusive: {out}");
    assert_eq!(out["paused"], json!([made[1]]), "{out}");
    assert_eq!(out["none_after"], json!([]), "{out}");
}

#[tokio::test]
async fn a_paused_sandbox_is_not_running_until_connect_resumes_it() {
    let out = scenario("paused").await;
    assert_eq!(out["running_before"], true, "{out}");
    assert_eq!(out["running_paused"], false, "envd answers nothing while paused: {out}");
    assert_eq!(out["running_connected"], true, "{out}");
    assert_eq!(out["kept"], "42", "{out}");
}

#[tokio::test]
async fn files_and_contexts_answer_as_e2b_does() {
    let out = scenario("files").await;
    assert_eq!(out["contexts"], json!(["javascript", "python"]), "the default contexts are listed: {out}");
    assert_eq!(out["remove_missing"], "no error", "{out}");
    assert_eq!(out["dir_size"], 4096, "a directory's size is Linux's: {out}");
    assert_eq!(out["file_size"], 5, "{out}");
}

#[tokio::test]
async fn file_metadata_is_written_listed_kept_over_rename_and_cleared_by_an_overwrite() {
    let out = scenario("metadata").await;
    let meta = json!({"owner": "ada", "step": "1"});
    assert_eq!(out["written"], meta, "keys are lowercased, as envd stores them: {out}");
    assert_eq!(out["info"], meta, "{out}");
    assert_eq!(out["many"], json!([{"batch": "7"}, {"batch": "7"}]), "one map for every file: {out}");
    assert_eq!(out["listed"], json!({"a.txt": {"batch": "7"}, "b.txt": {"batch": "7"}}), "{out}");
    assert_eq!(out["renamed"], meta, "a rename keeps it: {out}");
    assert_eq!(out["renamed_info"], meta, "{out}");
    assert_eq!(out["overwritten"], Value::Null, "an upload without metadata clears it: {out}");
    assert_eq!(out["plain"], Value::Null, "{out}");
    assert_eq!(out["bad_key"], "InvalidArgumentException", "{out}");
}

#[tokio::test]
async fn background_commands_are_listed_killed_joined_and_fed_stdin() {
    let out = scenario("processes").await;
    assert_eq!(out["listed"], true, "a background command is listed while it runs: {out}");
    assert_eq!(out["listed_args"], json!(["-l", "-c", "sleep 30"]), "{out}");
    assert_eq!(out["killed"], true, "{out}");
    assert_eq!(out["killed_wait"], -1, "a killed command's wait raises with exit code -1: {out}");
    assert_eq!(out["listed_after_kill"], false, "{out}");
    assert_eq!(out["kill_again"], false, "killing an ended process answers not found: {out}");
    assert_eq!(out["first_line_before_the_end"], json!(["got:a\n"]), "read answers each line as it comes: {out}");
    assert_eq!(out["reader_stdout"], "got:a\ngot:b\nend\n", "{out}");
    assert_eq!(out["joined_stdout"], "got:b\nend\n", "connect(pid) sees what follows: {out}");
    assert_eq!(out["stdin_to_ended"], "NotFoundException", "{out}");
    assert_eq!(out["python_running"], json!(["javascript", "python", "python"]), "the command's own context: {out}");
    assert_eq!(out["python_killed"], true, "{out}");
    assert_eq!(
        out["contexts_after"],
        json!(["javascript", "python"]),
        "a killed python command leaves no context: {out}"
    );
}

#[tokio::test]
async fn kill_ends_a_run_code_that_is_mid_cell() {
    let out = scenario("killed").await;
    assert_eq!(out["started"], true, "{out}");
    assert_eq!(out["ended"], true, "{out}");
    // Without the kill the cell would run into the server's 10 s deadline (TimeoutError).
    assert_eq!(out["result"], "SandboxKilled", "{out}");
}
