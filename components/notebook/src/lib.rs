//! `notebook`: a hybrid backend. `warmup` loads shared reference data (a glossary) once,
//! into the warm image; `initialize` gives each session its own notes; the tools use both.
use cella_guest::prelude::*;
use std::collections::BTreeMap;

#[derive(Default)]
struct Notebook {
    /// Shared, read-only: term -> definition, loaded by warmup.
    glossary: BTreeMap<String, String>,
    /// Per session: title -> text.
    notes: BTreeMap<String, String>,
    /// Per session: who owns the notes.
    owner: String,
    /// Per session: the most notes allowed.
    max_notes: usize,
}

#[derive(Deserialize)]
struct NotebookConfig {
    /// Inline glossary entries.
    #[serde(default)]
    glossary: BTreeMap<String, String>,
    /// A JSON file (object of term -> definition) read through a granted directory.
    glossary_file: Option<String>,
}

#[derive(Deserialize)]
struct SessionConfig {
    #[serde(default = "default_max_notes")]
    max_notes: usize,
}

fn default_max_notes() -> usize {
    100
}

#[derive(Deserialize, JsonSchema)]
struct Write {
    /// The note's title; writing an existing title replaces the note.
    title: String,
    /// The note's text.
    text: String,
}

#[derive(Deserialize, JsonSchema)]
struct Read {
    /// The note's title.
    title: String,
}

#[derive(Deserialize, JsonSchema)]
struct Lookup {
    /// A term to define (case-insensitive).
    term: String,
}

impl Notebook {
    fn write(&mut self, p: Write) -> Result<Value, Error> {
        if !self.notes.contains_key(&p.title) && self.notes.len() >= self.max_notes {
            return Err(Error::business(format!("note limit reached ({})", self.max_notes)));
        }
        let linked = self.linked_terms(&p.text);
        self.notes.insert(p.title.clone(), p.text);
        Ok(json!({"title": p.title, "notes": self.notes.len(), "glossary_terms": linked}))
    }

    /// Glossary terms that a text mentions.
    fn linked_terms(&self, text: &str) -> Vec<String> {
        let lower = text.to_lowercase();
        self.glossary.keys().filter(|t| lower.contains(t.as_str())).cloned().collect()
    }

    fn lookup(&mut self, p: Lookup) -> Result<Value, Error> {
        let term = p.term.to_lowercase();
        let definition = self.glossary.get(&term).cloned();
        let mentioned_in: Vec<&String> =
            self.notes.iter().filter(|(_, text)| text.to_lowercase().contains(&term)).map(|(t, _)| t).collect();
        if definition.is_none() && mentioned_in.is_empty() {
            return Err(Error::not_found(format!("'{}' is neither in the glossary nor in your notes", p.term)));
        }
        Ok(json!({"term": term, "definition": definition, "mentioned_in": mentioned_in}))
    }
}

impl Backend for Notebook {
    fn info() -> Info {
        Info::new("notebook", "Private notes per session, linked to a shared glossary", env!("CARGO_PKG_VERSION"))
    }

    fn tools(t: &mut Tools<Self>) {
        t.session("notebook:write", "Write a note; returns the glossary terms it mentions", Notebook::write)
            .session("notebook:read", "Read a note by title", |nb, p: Read| match nb.notes.get(&p.title) {
                Some(text) => Ok(json!({"title": p.title, "text": text, "glossary_terms": nb.linked_terms(text)})),
                None => Err(Error::not_found(format!("no note titled '{}'", p.title))),
            })
            .session("notebook:list", "List note titles and the session's owner", |nb, _: NoParams| {
                Ok(json!({"owner": nb.owner, "titles": nb.notes.keys().collect::<Vec<_>>()}))
            })
            .session(
                "notebook:lookup",
                "Define a term from the shared glossary and list your notes that mention it",
                Notebook::lookup,
            )
            .stateless("notebook:glossary", "List the shared glossary's terms", |nb, _: NoParams| {
                Ok(json!({"terms": nb.glossary.keys().collect::<Vec<_>>()}))
            });
    }

    fn warmup(&mut self, config: Value) -> Result<(), Error> {
        let config: NotebookConfig =
            serde_json::from_value(config).map_err(|e| Error::invalid_input(format!("notebook config: {e}")))?;
        let mut glossary = config.glossary;
        if let Some(path) = config.glossary_file {
            let text =
                std::fs::read_to_string(&path).map_err(|e| Error::new(5012, format!("cannot read {path}: {e}")))?;
            let extra: BTreeMap<String, String> =
                serde_json::from_str(&text).map_err(|e| Error::invalid_input(format!("{path}: {e}")))?;
            glossary.extend(extra);
        }
        self.glossary = glossary.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
        Ok(())
    }

    fn initialize(&mut self, worker_id: &str, config: Value) -> Result<Value, Error> {
        let config: SessionConfig = serde_json::from_value(config)?;
        self.owner = worker_id.to_string();
        self.max_notes = config.max_notes;
        Ok(json!({"owner": worker_id, "max_notes": self.max_notes, "glossary_terms": self.glossary.len()}))
    }

    fn shutdown(&mut self) {
        cella_guest::log::info(&format!("notebook shutting down with {} glossary terms", self.glossary.len()));
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        cella_guest::log::info(&format!("notebook closed with {} notes", self.notes.len()));
        Ok(())
    }
}

cella_guest::export_backend!(Notebook);
