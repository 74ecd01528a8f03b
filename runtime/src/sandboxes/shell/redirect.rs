//! Redirections: `<`, `>`, `>>`, `2>&1`, `&>`, here-documents and here-strings.

use super::io::{Channel, Input, Io, Stream};
use super::{Shell, fileutils};
use brush_parser::ast::{IoFileRedirectKind, IoFileRedirectTarget, IoRedirect};

/// A redirection's file, written once its command ends.
pub(super) struct Pending {
    path: String,
    stream: Stream,
    append: bool,
}

impl Shell {
    /// Applies redirections to `io`; `None` (after reporting it) when one cannot be made.
    pub(super) async fn redirect(&mut self, redirects: &[&IoRedirect], io: &Io) -> Option<(Io, Vec<Pending>)> {
        let mut io = io.clone();
        let mut pending: Vec<Pending> = Vec::new();
        for r in redirects {
            let made = self.redirect_one(r, &mut io, &mut pending).await;
            if let Err(e) = made {
                self.write(&io.err, format!("sh: {e}\n").as_bytes());
                self.status = 1;
                self.flush(pending, &io).await;
                return None;
            }
        }
        Some((io, pending))
    }

    async fn redirect_one(&mut self, r: &IoRedirect, io: &mut Io, pending: &mut Vec<Pending>) -> Result<(), String> {
        match r {
            IoRedirect::File(fd, kind, target) => {
                let fd = fd.unwrap_or(match kind {
                    IoFileRedirectKind::Read
                    | IoFileRedirectKind::DuplicateInput
                    | IoFileRedirectKind::ReadAndWrite => 0,
                    _ => 1,
                });
                let word = match target {
                    IoFileRedirectTarget::Filename(w) | IoFileRedirectTarget::Duplicate(w) => {
                        self.expand_one(&w.value, io).await?
                    }
                    IoFileRedirectTarget::Fd(n) => n.to_string(),
                    IoFileRedirectTarget::ProcessSubstitution(..) => {
                        return Err("process substitution is not offered".into());
                    }
                };
                match kind {
                    IoFileRedirectKind::Read | IoFileRedirectKind::ReadAndWrite => {
                        io.stdin = Input::new(self.read_file(&word).await?);
                    }
                    IoFileRedirectKind::Write | IoFileRedirectKind::Clobber | IoFileRedirectKind::Append => {
                        let append = matches!(kind, IoFileRedirectKind::Append);
                        let stream = self.open_out(&word, append, pending).await?;
                        set_fd(io, fd, stream)?;
                    }
                    IoFileRedirectKind::DuplicateOutput => {
                        let stream = match word.as_str() {
                            "1" => io.out.clone(),
                            "2" => io.err.clone(),
                            "-" => Stream::Null,
                            _ if matches!(target, IoFileRedirectTarget::Duplicate(_)) && fd == 1 => {
                                // `>&file` is bash's `&>file`.
                                let stream = self.open_out(&word, false, pending).await?;
                                io.err = stream.clone();
                                stream
                            }
                            other => return Err(format!("{other}: bad file descriptor")),
                        };
                        set_fd(io, fd, stream)?;
                    }
                    IoFileRedirectKind::DuplicateInput => {
                        if word != "0" {
                            return Err(format!("{word}: bad file descriptor"));
                        }
                    }
                }
            }
            IoRedirect::OutputAndError(w, append) => {
                let word = self.expand_one(&w.value, io).await?;
                let stream = self.open_out(&word, *append, pending).await?;
                io.out = stream.clone();
                io.err = stream;
            }
            IoRedirect::HereDocument(fd, doc) => {
                let text = if doc.requires_expansion {
                    self.expand_heredoc(&doc.doc.value, io).await?
                } else {
                    doc.doc.value.clone()
                };
                let text = if doc.remove_tabs {
                    text.lines().map(|l| format!("{}\n", l.trim_start_matches('\t'))).collect()
                } else {
                    text
                };
                if fd.unwrap_or(0) == 0 {
                    io.stdin = Input::new(text.into_bytes());
                }
            }
            IoRedirect::HereString(fd, w) => {
                let text = self.expand_one(&w.value, io).await?;
                if fd.unwrap_or(0) == 0 {
                    io.stdin = Input::new(format!("{text}\n").into_bytes());
                }
            }
        }
        Ok(())
    }

    /// A file's bytes for `<` (`/dev/null` is empty).
    pub(super) async fn read_file(&self, word: &str) -> Result<Vec<u8>, String> {
        if word == "/dev/null" {
            return Ok(Vec::new());
        }
        let path = fileutils::at(&self.cwd, word);
        self.files.run(move |f| f.read(&path)).await.map_err(|e| format!("{word}: {}", fileutils::reason(&e)))
    }

    /// A stream for `>` or `>>`: the file is truncated (or made) now, as sh does, and
    /// written when the command ends.
    pub(super) async fn open_out(
        &self,
        word: &str,
        append: bool,
        pending: &mut Vec<Pending>,
    ) -> Result<Stream, String> {
        if word == "/dev/null" {
            return Ok(Stream::Null);
        }
        if word == "/dev/stdout" || word == "/dev/stderr" {
            return Ok(Stream::Term(if word == "/dev/stdout" { Channel::Out } else { Channel::Err }));
        }
        let path = fileutils::at(&self.cwd, word);
        let p = path.clone();
        let made = self.files.run(move |f| if append { f.append(&p, b"") } else { f.write(&p, b"").map(|_| ()) }).await;
        made.map_err(|e| format!("cannot create {word}: {}", fileutils::reason(&e)))?;
        let stream = Stream::buffer();
        pending.push(Pending { path, stream: stream.clone(), append: true });
        Ok(stream)
    }

    /// Writes the redirections' files.
    pub(super) async fn flush(&mut self, pending: Vec<Pending>, io: &Io) {
        for p in pending {
            let bytes = p.stream.take();
            let (path, append) = (p.path.clone(), p.append);
            let done = self
                .files
                .run(move |f| if append { f.append(&path, &bytes) } else { f.write(&path, &bytes).map(|_| ()) });
            if let Err(e) = done.await {
                self.write(&io.err, format!("sh: {}: {}\n", p.path, fileutils::reason(&e)).as_bytes());
                self.status = 1;
            }
        }
    }
}

/// Points file descriptor `fd` (1 or 2) at `stream`.
fn set_fd(io: &mut Io, fd: i32, stream: Stream) -> Result<(), String> {
    match fd {
        1 => io.out = stream,
        2 => io.err = stream,
        n => return Err(format!("{n}: file descriptors other than 0, 1 and 2 are not offered")),
    }
    Ok(())
}
