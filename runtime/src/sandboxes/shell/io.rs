//! What a shell command reads and writes: its standard input (bytes, or a process's live
//! input), its outputs (the line's own, a buffer, nothing), and the line's own output as
//! the caller receives it.

use crate::engine::host::{Output, OutputSink};
use std::sync::{Arc, Mutex};

/// Which of the line's two outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Channel {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// Where a command writes.
#[derive(Clone)]
pub(super) enum Stream {
    /// The line's own output, streamed to the caller as it is written.
    Term(Channel),
    /// Captured: a pipe, a file redirection, a substitution.
    Buf(Arc<Mutex<Vec<u8>>>),
    /// Discarded (`/dev/null`).
    Null,
}

impl Stream {
    pub(super) fn buffer() -> Stream {
        Stream::Buf(Arc::new(Mutex::new(Vec::new())))
    }

    /// What a buffer holds (emptied); nothing for the others.
    pub(super) fn take(&self) -> Vec<u8> {
        match self {
            Stream::Buf(b) => std::mem::take(&mut *b.lock().unwrap_or_else(|p| p.into_inner())),
            _ => Vec::new(),
        }
    }
}

/// A command's standard input: bytes read from the front (`read` takes a line, `cat` the
/// rest), shared by the commands of a loop or a group as a file descriptor is. A live one
/// (a process's, fed by `send_stdin`) receives its bytes as they are sent; reading it waits
/// for them, until every sender is gone (closed, killed, or past the deadline).
#[derive(Default)]
pub(super) struct Input {
    buffer: Mutex<Vec<u8>>,
    live: Option<Mutex<std::sync::mpsc::Receiver<Vec<u8>>>>,
}

impl Input {
    pub(super) fn new(bytes: Vec<u8>) -> Arc<Input> {
        Arc::new(Input { buffer: Mutex::new(bytes), live: None })
    }

    /// A live input, fed through `rx`.
    pub(super) fn live(rx: std::sync::mpsc::Receiver<Vec<u8>>) -> Arc<Input> {
        Arc::new(Input { buffer: Mutex::default(), live: Some(Mutex::new(rx)) })
    }

    /// Whether reading may wait for bytes yet to be sent (read it off the async threads).
    pub(super) fn is_live(&self) -> bool {
        self.live.is_some()
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the next piece sent; false at the end.
    fn receive(&self) -> bool {
        let Some(live) = &self.live else { return false };
        let piece = live.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match piece {
            Ok(bytes) => {
                self.buffer().extend_from_slice(&bytes);
                true
            }
            Err(_) => false,
        }
    }

    /// What is left to read, all of it (a live input: up to its end).
    pub(super) fn rest(&self) -> Vec<u8> {
        while self.receive() {}
        std::mem::take(&mut *self.buffer())
    }

    /// What can be read without waiting.
    pub(super) fn available(&self) -> Vec<u8> {
        if let Some(live) = &self.live {
            let rx = live.lock().unwrap_or_else(|p| p.into_inner());
            while let Ok(bytes) = rx.try_recv() {
                self.buffer().extend_from_slice(&bytes);
            }
        }
        std::mem::take(&mut *self.buffer())
    }

    /// What can be read now, or (a live input) the next piece sent; `None` at the end.
    pub(super) fn chunk(&self) -> Option<Vec<u8>> {
        let now = std::mem::take(&mut *self.buffer());
        if !now.is_empty() {
            return Some(now);
        }
        if self.receive() { Some(std::mem::take(&mut *self.buffer())) } else { None }
    }

    /// The next line, without its newline; `None` at the end.
    pub(super) fn line(&self) -> Option<String> {
        loop {
            {
                let mut buffer = self.buffer();
                if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    return Some(String::from_utf8_lossy(&line[..end]).into_owned());
                }
            }
            if !self.receive() {
                let rest = std::mem::take(&mut *self.buffer());
                return (!rest.is_empty()).then(|| String::from_utf8_lossy(&rest).into_owned());
            }
        }
    }

    /// [`line`](Self::line), waiting off the async threads when the input is live.
    pub(super) async fn line_async(self: &Arc<Self>) -> Option<String> {
        if !self.is_live() {
            return self.line();
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.line()).await.unwrap_or(None)
    }

    /// [`chunk`](Self::chunk), waiting off the async threads when the input is live.
    pub(super) async fn chunk_async(self: &Arc<Self>) -> Option<Vec<u8>> {
        if !self.is_live() {
            return self.chunk();
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.chunk()).await.unwrap_or(None)
    }
}

/// A command's standard input and outputs.
#[derive(Clone)]
pub(super) struct Io {
    pub(super) stdin: Arc<Input>,
    pub(super) out: Stream,
    pub(super) err: Stream,
}

/// What a utility did, written to its outputs by the shell.
#[derive(Debug, Default)]
pub(super) struct Ran {
    /// Its standard output.
    pub out: Vec<u8>,
    /// Its standard error.
    pub err: Vec<u8>,
    /// Its exit status.
    pub status: i32,
}

impl Ran {
    pub(super) fn ok(out: impl Into<Vec<u8>>) -> Ran {
        Ran { out: out.into(), err: Vec::new(), status: 0 }
    }

    pub(super) fn fail(status: i32, err: String) -> Ran {
        Ran { out: Vec::new(), err: err.into_bytes(), status }
    }
}

/// The line's own output: what the caller is sent as it comes, and what the result holds.
pub(super) struct Term {
    pub(super) sink: Option<OutputSink>,
    pub(super) stdout: Mutex<String>,
    pub(super) stderr: Mutex<String>,
}

impl Term {
    pub(super) fn write(&self, channel: Channel, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (name, all) = match channel {
            Channel::Out => ("stdout", &self.stdout),
            Channel::Err => ("stderr", &self.stderr),
        };
        all.lock().unwrap_or_else(|p| p.into_inner()).push_str(&text);
        if let Some(sink) = &self.sink {
            let _ = sink.send(Output { channel: name.into(), text });
        }
    }
}
