//! A sandbox's processes: each command line runs as one, with a pid, as E2B's envd runs
//! `commands.run` (foreground or `background=True`): listed while it runs, killed by pid,
//! joined from another connection, fed standard input while it reads it.
//!
//! A process is a shell line ([`super::shell`]) in a task of its own. Its output goes, line
//! by line, to every subscriber (the connection that started it and any that joined);
//! nothing is lost for a subscriber that is slow. It ends at its deadline, when killed, or
//! when its sandbox ends, whatever its connections do.

use super::{Sandboxes, Sbx, SbxError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// At most this many processes run in one sandbox at once.
pub const MAX_PROCESSES: usize = 64;

/// The first pid a sandbox hands out (low pids belong to the init a Linux sandbox has).
const FIRST_PID: u32 = 1000;

/// What a process runs, as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// The program the client named (`/bin/bash` for E2B's `commands.run`).
    pub cmd: String,
    /// Its arguments (`-l -c LINE`).
    pub args: Vec<String>,
    /// The shell line that runs.
    pub line: String,
    /// The working directory (the sandbox's home when absent).
    pub cwd: Option<String>,
    /// Environment variables over the sandbox's.
    pub envs: BTreeMap<String, String>,
    /// A name the client can select it by.
    pub tag: Option<String>,
    /// Whether its standard input stays open for [`Process::send_stdin`].
    pub stdin: bool,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Its exit status (-1 when killed).
    pub exit_code: i32,
    /// Whether a kill ended it.
    pub killed: bool,
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    /// A piece of output, a line or the rest of one: `stdout` or `stderr`.
    Output {
        /// `stdout` or `stderr`.
        channel: String,
        /// The text.
        text: String,
    },
    /// The end; nothing follows.
    End(Ended),
}

/// One running (or just ended) process.
pub struct Process {
    /// Its pid, unique within the sandbox.
    pub pid: u32,
    /// What it runs.
    pub spec: ProcessSpec,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    subscribers: Vec<UnboundedSender<ProcessEvent>>,
    stdin: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    abort: Option<tokio::task::AbortHandle>,
    /// A kill came before the line's task was there to abort.
    killed: bool,
    ended: Option<Ended>,
}

impl Process {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new subscriber: what the process prints from now on, then its end (at once when it
    /// has ended already).
    pub fn subscribe(&self) -> UnboundedReceiver<ProcessEvent> {
        let (tx, rx) = unbounded_channel();
        let mut state = self.state();
        match state.ended {
            Some(ended) => {
                let _ = tx.send(ProcessEvent::End(ended));
            }
            None => state.subscribers.push(tx),
        }
        rx
    }

    fn publish(&self, event: ProcessEvent) {
        let mut state = self.state();
        state.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    /// Ends the process at once (its standard input closes, its line stops where it is);
    /// false when it had ended.
    pub fn kill(&self) -> bool {
        let abort = {
            let mut state = self.state();
            if state.ended.is_some() {
                return false;
            }
            state.stdin = None;
            state.killed = true;
            state.abort.take()
        };
        if let Some(abort) = abort {
            abort.abort();
        }
        true
    }

    /// Writes to the process's standard input.
    pub fn send_stdin(&self, bytes: Vec<u8>) -> Result<(), SbxError> {
        let state = self.state();
        match &state.stdin {
            Some(stdin) => stdin
                .send(bytes)
                .map_err(|_| SbxError::Invalid(format!("process {}'s standard input is closed", self.pid))),
            None if !self.spec.stdin => Err(SbxError::Invalid(format!(
                "process {} was started without standard input (run it with stdin=True)",
                self.pid
            ))),
            None => Err(SbxError::Invalid(format!("process {}'s standard input is closed", self.pid))),
        }
    }

    /// Closes the process's standard input (what it reads next is the end).
    pub fn close_stdin(&self) {
        self.state().stdin = None;
    }

    fn finish(&self, ended: Ended) {
        let mut state = self.state();
        state.ended = Some(ended);
        state.stdin = None;
        state.abort = None;
        for s in state.subscribers.drain(..) {
            let _ = s.send(ProcessEvent::End(ended));
        }
    }
}

/// The processes of one sandbox.
#[derive(Default)]
pub(super) struct Processes {
    next_pid: u32,
    running: BTreeMap<u32, Arc<Process>>,
}

impl Sbx {
    fn processes(&self) -> MutexGuard<'_, Processes> {
        self.processes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Kills every process of the sandbox (it ends).
    pub(super) fn kill_processes(&self) {
        let all: Vec<Arc<Process>> = std::mem::take(&mut self.processes().running).into_values().collect();
        for p in all {
            p.kill();
        }
    }
}

impl Sandboxes {
    /// Starts `spec` in `sbx`; `deadline` bounds it (none: the server's longest). Answers
    /// the process and a subscription taken before it printed anything.
    pub fn start_process(
        &self,
        sbx: &Arc<Sbx>,
        spec: ProcessSpec,
        deadline: Option<Duration>,
    ) -> Result<(Arc<Process>, UnboundedReceiver<ProcessEvent>), SbxError> {
        if sbx.ended() {
            return Err(SbxError::NotFound(format!("sandbox '{}' ended", sbx.id)));
        }
        let (stdin_tx, stdin_rx) = std::sync::mpsc::channel();
        let process = {
            let mut all = sbx.processes();
            if all.running.len() >= MAX_PROCESSES {
                return Err(SbxError::Quota(format!(
                    "sandbox '{}' runs {MAX_PROCESSES} processes, as many as it may; kill one or wait for one to end",
                    sbx.id
                )));
            }
            let pid = FIRST_PID + all.next_pid;
            all.next_pid += 1;
            let state = State { stdin: spec.stdin.then_some(stdin_tx), ..State::default() };
            let process = Arc::new(Process { pid, spec, state: Mutex::new(state) });
            all.running.insert(pid, process.clone());
            process
        };
        let events = process.subscribe();
        let stdin = process.spec.stdin.then_some(stdin_rx);
        let (sink, output) = unbounded_channel();
        let forwarding = process.clone();
        let forward = tokio::spawn(super::by_line(output, move |channel, text| {
            forwarding.publish(ProcessEvent::Output { channel: channel.to_string(), text: text.to_string() });
        }));
        let (this, sbx2, spec) = (self.clone(), sbx.clone(), process.spec.clone());
        let line = tokio::spawn(async move {
            let ran =
                this.command(&sbx2, &spec.line, spec.cwd.as_deref(), &spec.envs, deadline, Some(sink), stdin).await;
            match ran {
                Ok(r) => r.exit_code,
                Err(e) => {
                    tracing::warn!(sandbox_id = %sbx2.id, error = %e, "a command could not run");
                    1
                }
            }
        });
        {
            let mut state = process.state();
            if state.killed {
                line.abort();
            }
            state.abort = Some(line.abort_handle());
        }
        let (done, sbx3) = (process.clone(), sbx.clone());
        // A line blocked on its standard input does not see its deadline: past it (and a
        // moment for the line to stop by itself), the process is killed.
        let hard_stop = deadline.map(|d| d + Duration::from_secs(1));
        tokio::spawn(async move {
            let abort = line.abort_handle();
            let joined = match hard_stop {
                Some(d) => match tokio::time::timeout(d, line).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        abort.abort();
                        Ok(124)
                    }
                },
                None => line.await,
            };
            let _ = forward.await;
            let ended = match joined {
                Ok(code) => Ended { exit_code: code, killed: false },
                Err(_) => Ended { exit_code: -1, killed: true },
            };
            sbx3.processes().running.remove(&done.pid);
            done.finish(ended);
        });
        Ok((process, events))
    }

    /// The sandbox's running processes, by pid.
    pub fn processes(&self, sbx: &Sbx) -> Vec<Arc<Process>> {
        sbx.processes().running.values().cloned().collect()
    }

    /// The running process with `pid`, or with `tag`.
    pub fn process(&self, sbx: &Sbx, pid: Option<u32>, tag: Option<&str>) -> Result<Arc<Process>, SbxError> {
        let all = sbx.processes();
        let found = match (pid, tag) {
            (Some(pid), _) => all.running.get(&pid).cloned(),
            (None, Some(tag)) => all.running.values().find(|p| p.spec.tag.as_deref() == Some(tag)).cloned(),
            (None, None) => return Err(SbxError::Invalid("name the process by its pid or its tag".into())),
        };
        found.ok_or_else(|| {
            let which = pid.map_or_else(|| format!("tagged '{}'", tag.unwrap_or_default()), |p| p.to_string());
            SbxError::NotFound(format!("process {which} not found in sandbox '{}' (it ended, or never ran)", sbx.id))
        })
    }
}
