//! Child processes that never outlive the test binary.
//!
//! Fleets are killed on Drop, but the shared fleet lives in a static that is never dropped, and a
//! panic can abort the process. So every server is started with `PR_SET_PDEATHSIG = SIGKILL`.
//! The kernel sends that signal when the *thread* that forked the child exits, and test threads
//! come and go, so all spawning happens on one thread that lives as long as the process.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Starts `command` so that it is killed when the test process exits, however it exits.
pub fn spawn_tied(mut command: Command) -> io::Result<Child> {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((command, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("test-process-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the process spawner thread");
        Mutex::new(requests)
    })
}

/// Kills `root` and every process descended from it (sshd forks a process per connection and
/// per session, and those call setsid, so a process group would miss them).
pub fn kill_tree(root: u32) {
    // Collect first: once the root is dead its children are re-parented and untraceable.
    let mut victims = vec![root];
    let children = children_by_parent();
    let mut index = 0;
    while index < victims.len() {
        if let Some(kids) = children.get(&victims[index]) {
            victims.extend(kids.iter().copied());
        }
        index += 1;
    }
    for pid in victims {
        // SAFETY: plain syscall on a pid we found in /proc; a vanished pid only yields ESRCH.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

fn children_by_parent() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return map;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may contain spaces and parentheses; fields restart after the last ')'.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|f| f.parse().ok()) {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}
