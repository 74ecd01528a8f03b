//! `rag`: a shared backend. `warmup` builds a BM25 full-text index over the documents named
//! in the backend config; `rag:search` ranks passages against a query. Stateless: every call
//! runs in a fresh instance of the warm image, which already holds the index.
use cella_guest::prelude::*;

mod bm25;

use bm25::Index;

#[derive(Default)]
struct Rag {
    index: Option<Index>,
}

/// The backend config: documents to index, each a path (read through a directory the
/// operator granted) or an inline `{title, text}` object.
#[derive(Deserialize)]
struct RagConfig {
    #[serde(default)]
    documents: Vec<Document>,
    /// BM25 parameters.
    #[serde(default = "default_k1")]
    k1: f64,
    #[serde(default = "default_b")]
    b: f64,
}

fn default_k1() -> f64 {
    1.2
}

fn default_b() -> f64 {
    0.75
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Document {
    Path(String),
    Inline { title: String, text: String },
}

#[derive(Deserialize, JsonSchema)]
struct Search {
    /// Free text to search for.
    query: String,
    /// How many passages to return (default 3, at most 50).
    #[serde(default = "default_top_k")]
    top_k: usize,
}

fn default_top_k() -> usize {
    3
}

#[derive(Deserialize, JsonSchema)]
struct Stats {}

impl Rag {
    fn search(&mut self, p: Search) -> Result<Value, Error> {
        let Some(index) = &self.index else {
            return Err(Error::new(5011, "the index is not built: warmup has not run"));
        };
        if p.query.trim().is_empty() {
            return Err(Error::invalid_param("query must not be empty"));
        }
        let top_k = p.top_k.clamp(1, 50);
        let hits = index.search(&p.query, top_k);
        let context = hits.iter().map(|h| h.text.as_str()).collect::<Vec<_>>().join("\n\n");
        let results: Vec<Value> = hits
            .iter()
            .map(|h| json!({"document": h.document, "passage": h.passage, "score": h.score, "text": h.text}))
            .collect();
        Ok(json!({"query": p.query, "results": results, "context": context}))
    }
}

impl Backend for Rag {
    fn info() -> Info {
        Info::new("rag", "BM25 full-text search over a document corpus", env!("CARGO_PKG_VERSION"))
    }

    fn tools(t: &mut Tools<Self>) {
        t.stateless(
            "rag:search",
            "Rank corpus passages against a query with BM25; returns passages with scores",
            Rag::search,
        )
        .stateless("rag:stats", "Size of the index: documents, passages, distinct terms", |rag, _: Stats| {
            let index = rag.index.as_ref().ok_or_else(|| Error::new(5011, "the index is not built"))?;
            Ok(index.stats())
        });
    }

    fn warmup(&mut self, config: Value) -> Result<(), Error> {
        let config: RagConfig =
            serde_json::from_value(config).map_err(|e| Error::invalid_input(format!("rag config: {e}")))?;
        let mut docs: Vec<(String, String)> = Vec::new();
        for doc in config.documents {
            match doc {
                Document::Inline { title, text } => docs.push((title, text)),
                Document::Path(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        Error::new(5012, format!("cannot read document {path}: {e} (is its directory granted?)"))
                    })?;
                    let title = path.rsplit('/').next().unwrap_or(&path).to_string();
                    docs.push((title, text));
                }
            }
        }
        let index = Index::build(&docs, config.k1, config.b);
        cella_guest::log::info(&format!("rag index built: {} documents, {} passages", docs.len(), index.passages()));
        self.index = Some(index);
        Ok(())
    }
}

cella_guest::export_backend!(Rag);
