//! An agent-style client: it researches a question with the `rag` backend, keeps notes in a
//! `notebook` session, counts its steps in a `kv` session, and cleans up.
//!
//! Run with: `cargo run --release -p cella-example-agent -- [http://127.0.0.1:18890] ["question"]`
//! against a running `cargo run --release -- serve`.

use anyhow::Context;
use cella_sdk::Sandbox;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:18890".into());
    let question = args.next().unwrap_or_else(|| "How does a sandbox stop a guest that loops forever?".into());

    let sandbox = Sandbox::builder(&url)
        .warmup(&["rag"])
        .start()
        .await
        .with_context(|| format!("is `cella serve` running at {url}?"))?;
    println!("worker {} connected to {url}", sandbox.worker_id());

    let notes = sandbox.create_session("notebook", json!({"max_notes": 10})).await?;
    let steps = sandbox.create_session("kv", json!({})).await?;

    // Step 1: retrieve passages (a stateless tool: no session needed).
    let found = sandbox.execute("rag:search", json!({"query": question, "top_k": 2})).await?;
    steps.execute("kv:incr", json!({"key": "steps"})).await?;
    for hit in found.data["results"].as_array().into_iter().flatten() {
        println!(
            "  [{:.2}] {}: {:.90}…",
            hit["score"].as_f64().unwrap_or(0.0),
            hit["document"].as_str().unwrap_or(""),
            hit["text"].as_str().unwrap_or("")
        );
    }

    // Step 2: write what was learnt into the session's notebook.
    let context = found.data["context"].as_str().unwrap_or_default();
    let written = notes.execute("notebook:write", json!({"title": "answer", "text": context})).await?;
    steps.execute("kv:incr", json!({"key": "steps"})).await?;
    println!("note written; it mentions glossary terms {}", written.data["glossary_terms"]);

    // Step 3: look a term up in the shared glossary and in the notes.
    let term = written.data["glossary_terms"][0].as_str().unwrap_or("epoch").to_string();
    let lookup = notes.execute("notebook:lookup", json!({"term": term})).await?;
    steps.execute("kv:incr", json!({"key": "steps"})).await?;
    println!("{term}: {}", lookup.data["definition"].as_str().unwrap_or("(not in the glossary)"));

    // A tool error comes back typed, with its code.
    if let Err(e) = notes.execute("notebook:read", json!({"title": "missing"})).await {
        println!("expected error: {e} (code {:?})", e.code());
    }

    let count = steps.execute("kv:get", json!({"key": "steps"})).await?;
    println!("done in {} steps", count.data["value"]);
    notes.destroy().await?;
    steps.destroy().await?;
    sandbox.close().await;
    Ok(())
}
