//! A BM25 (Okapi) index over passages: paragraphs of the documents.

use cella_guest::prelude::{Value, json};
use std::collections::HashMap;

/// One passage: a paragraph of a document.
struct Passage {
    document: String,
    ordinal: usize,
    text: String,
    length: usize,
}

/// A search hit.
pub struct Hit {
    pub document: String,
    pub passage: usize,
    pub text: String,
    pub score: f64,
}

/// An inverted index with BM25 scoring.
pub struct Index {
    passages: Vec<Passage>,
    /// term -> (passage index, term frequency)
    postings: HashMap<String, Vec<(usize, u32)>>,
    documents: usize,
    avg_length: f64,
    k1: f64,
    b: f64,
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "in", "is", "it", "its", "of", "on", "or",
    "that", "the", "to", "was", "were", "will", "with", "this", "which", "can", "not", "but", "into",
];

/// Splits text into lowercase terms, drops stop words, and strips a plural `s`.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") { w[..w.len() - 1].to_string() } else { w })
        .collect()
}

impl Index {
    /// Indexes every paragraph of every `(title, text)` document.
    pub fn build(docs: &[(String, String)], k1: f64, b: f64) -> Index {
        let mut passages = Vec::new();
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        for (title, text) in docs {
            for (ordinal, para) in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).enumerate() {
                let id = passages.len();
                let words = terms(para);
                let mut tf: HashMap<&str, u32> = HashMap::new();
                for w in &words {
                    *tf.entry(w.as_str()).or_insert(0) += 1;
                }
                for (term, count) in tf {
                    postings.entry(term.to_string()).or_default().push((id, count));
                }
                passages.push(Passage {
                    document: title.clone(),
                    ordinal,
                    text: para.to_string(),
                    length: words.len(),
                });
            }
        }
        let total: usize = passages.iter().map(|p| p.length).sum();
        let avg_length = if passages.is_empty() { 0.0 } else { total as f64 / passages.len() as f64 };
        Index { passages, postings, documents: docs.len(), avg_length, k1, b }
    }

    /// The number of passages indexed.
    pub fn passages(&self) -> usize {
        self.passages.len()
    }

    /// The index's size as JSON.
    pub fn stats(&self) -> Value {
        json!({"documents": self.documents, "passages": self.passages.len(), "terms": self.postings.len(), "avg_passage_terms": self.avg_length})
    }

    /// The `top_k` passages with the highest BM25 score for `query` (only those scoring > 0).
    pub fn search(&self, query: &str, top_k: usize) -> Vec<Hit> {
        let n = self.passages.len() as f64;
        let mut scores: HashMap<usize, f64> = HashMap::new();
        let mut query_terms = terms(query);
        query_terms.sort();
        query_terms.dedup();
        for term in &query_terms {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(id, tf) in list {
                let tf = tf as f64;
                let len = self.passages[id].length as f64;
                let norm = self.k1 * (1.0 - self.b + self.b * len / self.avg_length.max(1.0));
                *scores.entry(id).or_insert(0.0) += idf * tf * (self.k1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(top_k)
            .map(|(id, score)| {
                let p = &self.passages[id];
                Hit {
                    document: p.document.clone(),
                    passage: p.ordinal,
                    text: p.text.clone(),
                    score: (score * 1e4).round() / 1e4,
                }
            })
            .collect()
    }
}
