//! `cella inspect`: a component's manifest and tools, without a server.

use super::*;

pub(crate) async fn inspect(component: PathBuf, json: bool, cache_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let _log = init_logging(false, "warn");
    let local = Local::open(&component, serde_json::json!({}), cache_dir.as_deref()).await?;
    let manifest = local.manifest()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
        return Ok(());
    }
    println!(
        "{} {} — {}",
        manifest["name"].as_str().unwrap_or(""),
        manifest["version"].as_str().unwrap_or(""),
        manifest["description"].as_str().unwrap_or("")
    );
    println!(
        "component: {} ({} bytes, sha256 {})",
        component.display(),
        manifest["size_bytes"],
        manifest["sha256"].as_str().unwrap_or("")
    );
    for tool in manifest["tools"].as_array().into_iter().flatten() {
        let kind = if tool["needs_session"] == true { "session" } else { "stateless" };
        println!(
            "\n  {}  [{kind}]{}",
            tool["name"].as_str().unwrap_or(""),
            if tool["hidden"] == true { " [hidden]" } else { "" }
        );
        println!("    {}", tool["description"].as_str().unwrap_or(""));
        let schema = &tool["input_schema"];
        let required: Vec<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
            let ty = prop.get("type").map(|t| t.to_string().replace('"', "")).unwrap_or_else(|| "any".into());
            let req = if required.contains(&name.as_str()) { "required" } else { "optional" };
            println!("      {name}: {ty} ({req}) {}", prop["description"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}
