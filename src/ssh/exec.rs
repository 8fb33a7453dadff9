//! Running one command on an open session channel.
//!
//! The channel is read until it is gone, not until the exit status arrives: sshd may send output
//! after the status, and only the end of the channel proves nothing more is coming. Stdin is
//! written while output is read, so a command that answers as it reads cannot deadlock on full
//! windows.

use russh::client::Msg;
use russh::{Channel, ChannelMsg, Sig};
use tokio::sync::OwnedSemaphorePermit;

use super::{Endpoint, ExecOutput, ExecRequest, OutputStream, SshError};

pub(crate) async fn run(
    channel: Channel<Msg>,
    // Held until the channel is finished, freeing the session slot for the next command.
    _permit: OwnedSemaphorePermit,
    endpoint: &Endpoint,
    request: ExecRequest<'_>,
) -> Result<ExecOutput, SshError> {
    let lost = || SshError::ConnectionLost {
        node: endpoint.name.clone(),
        command: request.command.to_string(),
    };
    if channel.exec(true, request.command).await.is_err() {
        return Err(lost());
    }
    let (mut reader, writer) = channel.split();

    let feed_stdin = async {
        if let Some(input) = request.stdin {
            writer.data(input).await?;
        }
        writer.eof().await
    };
    tokio::pin!(feed_stdin);
    let mut stdin_done = false;

    let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
    let expired = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);

    let mut output = ExecOutput::default();
    let mut stdout_lines = LineBuffer::new(OutputStream::Stdout);
    let mut stderr_lines = LineBuffer::new(OutputStream::Stderr);

    loop {
        tokio::select! {
            biased;
            () = request.cancel.cancelled() => {
                stop(&writer).await;
                return Err(SshError::Cancelled {
                    node: endpoint.name.clone(),
                    command: request.command.to_string(),
                    root_login: endpoint.user == "root",
                });
            }
            () = &mut expired => {
                stop(&writer).await;
                return Err(SshError::Timeout {
                    node: endpoint.name.clone(),
                    command: request.command.to_string(),
                    timeout: request.timeout.unwrap_or_default(),
                    root_login: endpoint.user == "root",
                });
            }
            // A command that exits without reading its stdin closes the channel under us;
            // the exit status still tells what happened, so a failed write is not an error.
            _ = &mut feed_stdin, if !stdin_done => stdin_done = true,
            message = reader.wait() => match message {
                None => break,
                Some(ChannelMsg::Data { data }) => {
                    output.stdout.extend_from_slice(&data);
                    stdout_lines.push(&data, request.on_output);
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    output.stderr.extend_from_slice(&data);
                    stderr_lines.push(&data, request.on_output);
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => output.exit_code = Some(exit_status),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    output.signal = Some(signal_text(&signal_name));
                }
                // The only request sent with want_reply is the exec; sshd keeps a refused
                // channel open for another request, so close it rather than wait.
                Some(ChannelMsg::Failure) => {
                    let _ = writer.close().await;
                    return Err(SshError::ExecRefused {
                        node: endpoint.name.clone(),
                        command: request.command.to_string(),
                    });
                }
                Some(_) => {}
            },
        }
    }
    stdout_lines.finish(request.on_output);
    stderr_lines.finish(request.on_output);

    if output.exit_code.is_some() || output.signal.is_some() {
        return Ok(output);
    }
    Err(lost())
}

/// Asks sshd to signal the command's process group, then closes the channel. Closing alone
/// leaves a command that writes nothing (a `sleep`, a stuck `apt-get`) running, as with
/// `ssh host cmd` without a tty; sshd honours the signal only for non-root logins.
async fn stop(writer: &russh::ChannelWriteHalf<Msg>) {
    let _ = writer.signal(Sig::TERM).await;
    let _ = writer.close().await;
}

fn signal_text(signal: &Sig) -> String {
    let name = match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    };
    name.to_string()
}

/// Cuts a byte stream into lines for the live log; a final line without newline is flushed
/// at the end.
struct LineBuffer {
    stream: OutputStream,
    pending: Vec<u8>,
}

impl LineBuffer {
    fn new(stream: OutputStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8], sink: &(dyn Fn(OutputStream, &str) + Send + Sync)) {
        self.pending.extend_from_slice(data);
        let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = self.pending.split_off(last_newline + 1);
        for line in self.pending[..last_newline].split(|&b| b == b'\n') {
            emit(self.stream, line, sink);
        }
        self.pending = rest;
    }

    fn finish(&mut self, sink: &(dyn Fn(OutputStream, &str) + Send + Sync)) {
        if !self.pending.is_empty() {
            emit(self.stream, &self.pending, sink);
            self.pending.clear();
        }
    }
}

fn emit(stream: OutputStream, line: &[u8], sink: &(dyn Fn(OutputStream, &str) + Send + Sync)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    sink(stream, &String::from_utf8_lossy(line));
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<String> {
        let seen = Mutex::new(Vec::new());
        let sink = |_: OutputStream, line: &str| seen.lock().unwrap().push(line.to_string());
        let mut buffer = LineBuffer::new(OutputStream::Stdout);
        for chunk in chunks {
            buffer.push(chunk, &sink);
        }
        buffer.finish(&sink);
        seen.into_inner().unwrap()
    }

    #[test]
    fn lines_are_reassembled_across_chunks() {
        assert_eq!(lines_of(&[b"he", b"llo\nwor", b"ld\n"]), ["hello", "world"]);
    }

    #[test]
    fn empty_lines_and_crlf_are_kept_as_lines() {
        assert_eq!(lines_of(&[b"a\r\n\nb\n"]), ["a", "", "b"]);
    }

    #[test]
    fn a_last_line_without_newline_is_flushed() {
        assert_eq!(lines_of(&[b"done\npartial"]), ["done", "partial"]);
    }
}
