//! The MCP front door: every tool of every backend as a Model Context Protocol tool, over
//! Streamable HTTP (`/mcp`, mounted by [`crate::http`]) or stdin/stdout (`cella mcp-stdio`).
//!
//! One MCP session is one Cella worker ([`McpWorker`]). A stateful tool called in it runs in
//! an explicit Cella session of that worker, created on first use and kept alive by every
//! request of the MCP session; when the MCP session ends (HTTP `DELETE`, idle expiry, or the
//! end of the stdio stream) the worker is dropped and its Cella sessions are ended.
//!
//! Tool names: MCP allows only `[A-Za-z0-9_.-]`, so `kv:get` is served as `kv.get` (any
//! other character becomes `_`); [`McpTools`] maps the names both ways.

use crate::envelope::Envelope;
use crate::sandbox::session::Caller;
use crate::sandbox::tenancy::Identity;
use crate::sandbox::{ExecOptions, Sandbox};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The protocol revision Cella implements. Later revisions drop sessions, which stateful
/// tools need, so negotiation stops here.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion::V_2025_11_25;

/// The `_meta` key of a tool result that names the Cella worker of the MCP session, so the
/// same sessions can be reached over `/api/v1` (with the same tenant's key).
pub const WORKER_META: &str = "cella/worker_id";

/// The MCP name of a Cella tool: `kv:get` → `kv.get`; characters MCP does not allow become `_`.
pub fn mcp_name(full_name: &str) -> String {
    full_name
        .chars()
        .map(|c| match c {
            ':' => '.',
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' => c,
            _ => '_',
        })
        .collect()
}

/// One served tool.
#[derive(Debug, Clone)]
struct Entry {
    /// The Cella name (`kv:get`).
    full_name: String,
    /// The resource type, for the tenant's resource check.
    resource_type: String,
    /// Whether it runs in a session.
    needs_session: bool,
    /// The MCP description of the tool.
    tool: Tool,
}

/// The tools served over MCP, by MCP name, in the order Cella lists them.
#[derive(Debug, Default)]
pub struct McpTools {
    order: Vec<String>,
    by_name: HashMap<String, Entry>,
}

impl McpTools {
    /// The listed (not hidden) tools of `sandbox`. Hidden tools stay callable by name, as on
    /// `/api/v1`. A name that would collide after mapping is skipped with a warning.
    pub fn of(sandbox: &Sandbox) -> McpTools {
        let listed: std::collections::HashSet<String> =
            sandbox.tools(false).iter().map(|t| t.full_name.clone()).collect();
        let mut tools = McpTools::default();
        for spec in sandbox.tools(true) {
            let name = mcp_name(&spec.full_name);
            if tools.by_name.contains_key(&name) {
                tracing::warn!(tool = %spec.full_name, mcp_name = %name, "two tools map to one MCP name; the second is not served");
                continue;
            }
            let schema: JsonObject = match &spec.input_schema {
                Value::Object(o) => o.clone(),
                _ => serde_json::Map::from_iter([("type".to_string(), json!("object"))]),
            };
            let tool =
                Tool::new(name.clone(), spec.description.clone(), Arc::new(schema)).with_title(spec.full_name.clone());
            if listed.contains(&spec.full_name) {
                tools.order.push(name.clone());
            }
            tools.by_name.insert(
                name,
                Entry {
                    full_name: spec.full_name.clone(),
                    resource_type: spec.resource_type.clone(),
                    needs_session: spec.needs_session,
                    tool,
                },
            );
        }
        tools
    }
}

/// Where an MCP session's tenant comes from.
#[derive(Debug, Clone)]
pub enum TenantSource {
    /// Every request acts for this tenant (`cella mcp-stdio`).
    Fixed(Arc<str>),
    /// The [`Identity`] the front door authenticated, found in each request's extensions by
    /// the door's own function (so this module never names the HTTP types).
    Request(IdentityOf),
}

/// How a front door finds the [`Identity`] of an MCP request in its extensions.
pub type IdentityOf = fn(&rmcp::model::Extensions) -> Option<Identity>;

/// One MCP session: a Cella worker with its own id, bound to one tenant on first use.
pub struct McpWorker {
    sandbox: Sandbox,
    tools: Arc<McpTools>,
    source: TenantSource,
    worker_id: String,
    /// The tenant this session acts for, once known; a later request with another tenant's
    /// key is refused.
    tenant: Mutex<Option<Arc<str>>>,
}

impl McpWorker {
    /// A new MCP session's worker.
    pub fn new(sandbox: Sandbox, tools: Arc<McpTools>, source: TenantSource) -> McpWorker {
        let worker_id = format!("mcp-{}", uuid::Uuid::new_v4().simple());
        let tenant = match &source {
            TenantSource::Fixed(t) => Some(t.clone()),
            TenantSource::Request(_) => None,
        };
        McpWorker { sandbox, tools, source, worker_id, tenant: Mutex::new(tenant) }
    }

    /// The worker id of this MCP session's Cella sessions.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The caller this request acts as.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        let presented = match &self.source {
            TenantSource::Fixed(t) => t.clone(),
            TenantSource::Request(identity_of) => {
                let identity = identity_of(&context.extensions).unwrap_or(Identity::Open);
                identity.tenant().ok_or_else(|| {
                    ErrorData::invalid_request(
                        "admin keys manage the server; use a tenant key for tools",
                        Some(json!({"code": crate::codes::FORBIDDEN})),
                    )
                })?
            }
        };
        let mut bound = self.tenant.lock().unwrap_or_else(|e| e.into_inner());
        match &*bound {
            Some(t) if *t != presented => Err(ErrorData::invalid_request(
                "this MCP session belongs to another tenant",
                Some(json!({"code": crate::codes::FORBIDDEN})),
            )),
            Some(_) => Ok(Caller { tenant: presented, worker_id: self.worker_id.clone() }),
            None => {
                *bound = Some(presented.clone());
                Ok(Caller { tenant: presented, worker_id: self.worker_id.clone() })
            }
        }
    }

    /// Runs one tool call and shapes its envelope as an MCP result.
    async fn call(&self, caller: &Caller, entry: &Entry, arguments: crate::sandbox::Params) -> CallToolResult {
        if entry.needs_session
            && let Err(refusal) = self.sandbox.create_session(caller, &entry.resource_type, json!({}), None).await
        {
            let envelope = Envelope::error(refusal.code, refusal.message, refusal.data, Default::default());
            return tool_result(envelope);
        }
        let envelope = self.sandbox.execute(caller, &entry.full_name, arguments, ExecOptions::default()).await;
        let meta = rmcp::model::MetaObject(JsonObject::from_iter([(WORKER_META.to_string(), json!(self.worker_id))]));
        tool_result(envelope).with_meta(Some(meta))
    }
}

/// An envelope as an MCP tool result: `structuredContent` is the whole envelope (code,
/// message, data, meta); the text is the data as JSON on success, the code and message on
/// error (`isError: true`).
fn tool_result(envelope: Envelope) -> CallToolResult {
    let success = envelope.is_success();
    let text = if success {
        serde_json::to_string(&envelope.data).unwrap_or_default()
    } else {
        format!("error {}: {}", envelope.code, envelope.message)
    };
    let structured = serde_json::to_value(&envelope).unwrap_or(Value::Null);
    let mut result =
        if success { CallToolResult::structured(structured) } else { CallToolResult::structured_error(structured) };
    result.content = vec![ContentBlock::text(text)];
    result
}

impl Drop for McpWorker {
    /// Ends the MCP session's Cella sessions (in the background: drop cannot wait).
    fn drop(&mut self) {
        let tenant = self.tenant.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        let Some(tenant) = tenant else { return };
        let caller = Caller { tenant, worker_id: std::mem::take(&mut self.worker_id) };
        let sandbox = self.sandbox.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let ended = sandbox.disconnect(&caller).await;
                tracing::info!(tenant = %caller.tenant, worker_id = %caller.worker_id, sessions_ended = ended, "MCP session ended");
            });
        }
    }
}

impl ServerHandler for McpWorker {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(PROTOCOL_VERSION)
            .with_server_info(Implementation::new("cella", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Cella serves WebAssembly backend tools. Tool names are `<backend>.<tool>`. \
                 Stateful tools keep their state for the life of this MCP session.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&PROTOCOL_VERSION))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context)?;
        // Listing is activity too: keep this MCP session's Cella sessions alive.
        let _ = self.sandbox.refresh_sessions(&caller, None);
        let tenancy = self.sandbox.tenancy();
        let tools = self
            .tools
            .order
            .iter()
            .filter_map(|name| self.tools.by_name.get(name))
            .filter(|e| tenancy.check_resource(&caller.tenant, &e.resource_type).is_ok())
            .map(|e| e.tool.clone())
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let Some(entry) = self.tools.by_name.get(request.name.as_ref()) else {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {}", request.name),
                Some(json!({"tool": request.name})),
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        let _ = self.sandbox.refresh_sessions(&caller, None);
        Ok(self.call(&caller, entry, arguments).await.into())
    }
}

/// Serves MCP over one byte stream pair (stdin/stdout for `cella mcp-stdio`) until the client
/// closes it, acting for `tenant`; then ends the worker's sessions. Log to stderr only:
/// stdout carries the protocol.
pub async fn serve_stream<R, W>(sandbox: Sandbox, tenant: Arc<str>, transport: (R, W)) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    use rmcp::ServiceExt;
    let tools = Arc::new(McpTools::of(&sandbox));
    let worker = McpWorker::new(sandbox.clone(), tools, TenantSource::Fixed(tenant.clone()));
    let caller = Caller { tenant, worker_id: worker.worker_id().to_string() };
    let running = worker.serve(transport).await.map_err(std::io::Error::other)?;
    let reason = running.waiting().await.map_err(std::io::Error::other)?;
    tracing::info!(?reason, "MCP client closed the stream");
    sandbox.disconnect(&caller).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::mcp_name;

    #[test]
    fn tool_names_map_to_the_characters_mcp_allows() {
        assert_eq!(mcp_name("kv:get"), "kv.get");
        assert_eq!(mcp_name("my-rag:search_v2"), "my-rag.search_v2");
        assert_eq!(mcp_name("vm:screen shot/π"), "vm.screen_shot__");
    }
}
